"""Training loop, evaluation, resume and the results store."""
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from srs_core.training import loop as train_mod
from srs_core.cli import main as cli_main
from srs_core.data.dataset import ProcessedDataset
from srs_core.data.integrity import save_dataset
from srs_core.metrics import metrics_from_ranks, ranks_from_scores
from srs_core.results import ResultsStore, atomic_write_json, read_record
from srs_core.scoring import prepare_session
from srs_core.training import TrainConfig, evaluate, fit, run_in_store


def write_dataset(path: Path, n_items: int = 60, n_train: int = 300, n_test: int = 40, seed: int = 0,
                  n_valid: int = 0) -> Path:
    """A learnable toy dataset: sessions walk i -> i+1 (mod N) with some noise
    (with a validation split of ``n_valid`` sessions when it is positive)."""
    rng = np.random.default_rng(seed)

    def sessions(n):
        out = []
        for _ in range(n):
            length = int(rng.integers(2, 8))
            start = int(rng.integers(1, n_items + 1))
            s = [(start - 1 + j) % n_items + 1 for j in range(length)]
            if rng.random() < 0.2:
                s[int(rng.integers(0, length))] = int(rng.integers(1, n_items + 1))
            out.append(s)
        return out

    stats, splits = {}, {}
    for split, n in (("train", n_train), ("test", n_test)) + ((("valid", n_valid),) if n_valid else ()):
        ss = sessions(n)
        splits[split] = (np.concatenate(ss), np.concatenate([[0], np.cumsum([len(s) for s in ss])]), np.arange(n))
        stats[f"n_{split}_sessions"] = n
        stats[f"n_{split}_samples"] = int(sum(len(s) - 1 for s in ss))
    stats["n_items"] = n_items
    stats["avg_train_session_length"] = 0.0
    save_dataset(path, splits, range(1, n_items + 1), stats, {"dataset": "toy"})
    return path


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("toy") / "data")


def cfg(data, **kw):
    base = dict(data=str(data), model="stamp", loss="ce", optimizer="dense", epochs=2, batch_size=32, dim=16,
                negatives=8, device="cpu", seed=0)
    base.update(kw)
    return TrainConfig(**base)


def test_evaluate_in_chunks_equals_the_full_score_matrix(toy):
    torch.manual_seed(0)
    ds = ProcessedDataset.load(toy)
    from srs_core.models import build_model
    from srs_core.data.dataset import make_batch

    model = build_model("stamp", ds.n_items, dim=16)
    for l2 in (False, True):
        chunked = evaluate(model, ds.test, l2=l2, item_chunk=7, batch_size=13)
        batch = make_batch(ds.test, *ds.test.sample_index(), max_len=25)
        with torch.no_grad():
            s = prepare_session(model(batch.items, batch.lengths), l2)
            w = model.item_weight
            w = torch.nn.functional.normalize(w, dim=-1) if l2 else w
            full = metrics_from_ranks(ranks_from_scores(s @ w.T, batch.targets - 1))
        assert chunked["mrr_at_20"] == pytest.approx(full["mrr_at_20"], abs=1e-9)
        assert chunked["p_at_20"] == pytest.approx(full["p_at_20"], abs=1e-9)


def test_same_seed_same_metrics_and_record_fields(toy, tmp_path):
    a = fit(cfg(toy), tmp_path / "a", quiet=True)
    b = fit(cfg(toy), tmp_path / "b", quiet=True)
    assert [e["mrr_at_20"] for e in a["epochs"]] == [e["mrr_at_20"] for e in b["epochs"]]
    assert a["status"] == "complete" and len(a["epochs"]) == 2
    assert a["best"]["mrr_at_20"] == max(e["mrr_at_20"] for e in a["epochs"])
    for key in ("config", "config_hash", "environment", "peak_rss_bytes"):
        assert key in a
    assert {"torch", "git_commit", "device"} <= set(a["environment"])


def test_stamp_learns_far_beyond_popularity(toy, tmp_path):
    from srs_core.baselines import evaluate_baseline

    rec = fit(cfg(toy, epochs=6, lr=0.01), tmp_path / "run", quiet=True)
    pop = evaluate_baseline("popularity", ProcessedDataset.load(toy))
    assert rec["best"]["mrr_at_20"] >= 2 * max(pop["mrr_at_20"], 1e-3)


def test_kill_and_resume_ends_like_an_uninterrupted_run(toy, tmp_path, monkeypatch):
    # NARM uses dropout, so this also checks that the global RNG is restored
    config = cfg(toy, model="narm", epochs=3, loss="ns", optimizer="sparse", l2=True)
    straight = fit(config, tmp_path / "straight", quiet=True)

    real_evaluate = train_mod.evaluate
    calls = {"n": 0}

    def dying_evaluate(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 2:  # killed while finishing epoch 2
            raise KeyboardInterrupt
        return real_evaluate(*a, **kw)

    monkeypatch.setattr(train_mod, "evaluate", dying_evaluate)
    with pytest.raises(KeyboardInterrupt):
        fit(config, tmp_path / "killed", quiet=True)
    partial = read_record(tmp_path / "killed")
    assert partial["status"] == "running" and [e["epoch"] for e in partial["epochs"]] == [1]
    monkeypatch.setattr(train_mod, "evaluate", real_evaluate)
    resumed = fit(config, tmp_path / "killed", quiet=True)
    assert [e["epoch"] for e in resumed["epochs"]] == [1, 2, 3]
    for x, y in zip(straight["epochs"], resumed["epochs"]):
        assert (x["mrr_at_20"], x["p_at_20"], x["loss"]) == (y["mrr_at_20"], y["p_at_20"], y["loss"])


def test_store_skips_complete_runs(toy, tmp_path, monkeypatch):
    store = ResultsStore(tmp_path / "store")
    first = run_in_store(store, cfg(toy, epochs=1))

    def boom(*a, **kw):
        raise AssertionError("a complete run was trained again")

    monkeypatch.setattr(train_mod, "build_model", boom)
    again = run_in_store(store, cfg(toy, epochs=1, device="cpu", eval_batch_size=7))  # runtime fields don't matter
    assert again == first
    assert len(store.records()) == 1
    with pytest.raises(AssertionError, match="trained again"):
        run_in_store(store, cfg(toy, epochs=1), force=True)


def test_atomic_write_survives_a_crash_mid_write(tmp_path, monkeypatch):
    target = tmp_path / "result.json"
    atomic_write_json(target, {"status": "complete", "v": 1})

    def crash(fd):
        raise OSError("disk died")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk died"):
        atomic_write_json(target, {"status": "complete", "v": 2})
    assert json.loads(target.read_text()) == {"status": "complete", "v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # no temporary file left


@pytest.mark.parametrize("kw, message", [
    ({"loss": "ce", "optimizer": "sparse"}, "every item"),
    ({"model": "bert4rec"}, "unknown model"),
    ({"loss": "bpr"}, "unknown loss"),
    ({"epochs": 0}, "epochs"),
])
def test_bad_configs_are_rejected_clearly(toy, kw, message):
    with pytest.raises(ValueError, match=message):
        cfg(toy, **kw)


def test_cli_train_writes_the_documented_record(toy, tmp_path, capsys):
    out = tmp_path / "run"
    code = cli_main(["train", "--data", str(toy), "--model", "gru4rec", "--loss", "ns", "--optimizer", "sparse_fast",
                     "--l2", "--epochs", "1", "--batch-size", "64", "--dim", "8", "--negatives", "5", "--device", "cpu",
                     "--output", str(out), "--quiet"])
    assert code == 0
    rec = json.loads((out / "result.json").read_text())
    assert set(rec["epochs"][0]) >= {"epoch", "p_at_20", "mrr_at_20", "train_seconds"}
    assert 0.0 <= rec["epochs"][0]["mrr_at_20"] <= rec["epochs"][0]["p_at_20"] <= 1.0
    assert rec["best"]["epoch"] == 1 and rec["config"]["l2"] is True
    assert "best epoch 1" in capsys.readouterr().out


def test_cli_errors_name_the_problem(tmp_path, capsys):
    code = cli_main(["train", "--data", str(tmp_path / "nope"), "--model", "stamp", "--output", str(tmp_path / "o")])
    assert code == 2
    assert "not a processed dataset" in capsys.readouterr().err
    code = cli_main(["train", "--data", str(tmp_path), "--model", "stamp", "--loss", "ce", "--optimizer", "sparse",
                     "--output", str(tmp_path / "o")])
    assert code == 2
    assert "every item" in capsys.readouterr().err


PAIRINGS = [("ce", "dense")] + [(l, o) for l in ("ns", "triplet", "sampled_softmax") for o in ("dense", "sparse", "sparse_fast")]


@pytest.mark.parametrize("model", ["gru4rec", "narm", "stamp", "srgnn"])
def test_every_model_loss_optimizer_pairing_trains(toy, tmp_path, model):
    for loss, opt in PAIRINGS:
        for l2 in {loss != "ce", False}:
            rec = fit(cfg(toy, model=model, loss=loss, optimizer=opt, l2=l2, epochs=1, batch_size=128, dim=8),
                      tmp_path / f"{loss}-{opt}-{l2}", quiet=True)
            e = rec["epochs"][0]
            assert np.isfinite(e["loss"]), (model, loss, opt, l2)
            assert 0.0 <= e["mrr_at_20"] <= e["p_at_20"] <= 1.0
