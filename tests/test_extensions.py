"""The loss extensions (score scale, shared negatives, mixed
sampling), early stopping, the diagnosis grid, verdicts, and real-data
plumbing (yoochoose-100k, convert-session-rec)."""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from srs_core import experiments as ex
from srs_core.cli import main as cli_main
from srs_core.diagnosis import (chosen_on_validation, compare, diagnosis_grid, extension_setting, is_extension,
                                ns_loss_floor, ns_loss_orthogonal, variant)
from srs_core.losses import NegativeSampler, build_loss
from srs_core.training import TrainConfig, fit, stopped_early

from test_losses import N, log_sigmoid, prep, torch_inputs  # noqa: F401  (the hand-computation helpers)
from test_losses import setup  # noqa: F401  (fixture)
from test_train import cfg, write_dataset

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT.parent / "shared" / "data" / "yoochoose-100k-dev" / "yoochoose-clicks.dat"
S = 5.0


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("toy-ext") / "data")


# -- score scale, by hand --------------------------------------------------------


def test_negative_sampling_with_score_scale_by_hand(setup):
    session, table, targets = setup
    s, e = prep(session, table, True)
    neg = np.array([[1, 2, 7], [3, 5, 5], [8, 9, 4]])
    per_row = [-(log_sigmoid(S * s[b] @ e[targets[b]])
                 + np.mean([log_sigmoid(-S * (s[b] @ e[n])) for n in neg[b] if n != targets[b]])) for b in range(3)]
    loss = build_loss("ns", N, negatives=3, score_scale=S).compute(*torch_inputs(session, table, targets),
                                                                   torch.from_numpy(neg), True)
    assert loss.item() == pytest.approx(np.mean(per_row), rel=1e-10)
    plain = build_loss("ns", N, negatives=3).compute(*torch_inputs(session, table, targets), torch.from_numpy(neg), True)
    assert abs(plain.item() - loss.item()) > 1e-3  # the scale is not a no-op


@pytest.mark.parametrize("shared", [False, True])
def test_triplet_with_score_scale_is_the_margin_divided_by_it(setup, shared):
    session, table, targets = setup
    s, e = prep(session, table, True)
    neg = np.array([4, 5, 6]) if shared else np.array([[1, 2, 7], [3, 5, 5], [8, 9, 4]])
    margin = 0.5
    per_row = []
    for b in range(3):
        negs = neg if shared else neg[b]
        d_pos = S * np.linalg.norm(s[b] - e[targets[b]])
        per_row.append(np.mean([max(0.0, margin + d_pos - S * np.linalg.norm(s[b] - e[n])) for n in negs if n != targets[b]]))
    loss = build_loss("triplet", N, negatives=3, margin=margin, score_scale=S).compute(
        *torch_inputs(session, table, targets), torch.from_numpy(neg), True)
    assert loss.item() == pytest.approx(np.mean(per_row), rel=1e-9)


def test_sampled_softmax_with_score_scale_by_hand(setup):
    session, table, targets = setup
    s, e = prep(session, table, True)
    neg = np.array([6, 1, 3])
    cand = np.concatenate([targets, neg])
    per_row = []
    for b in range(3):
        logits = np.array([S * (s[b] @ e[c]) + np.log(N) for c in cand])  # uniform q = 1/N: -log q = log N
        logits[[j for j, c in enumerate(cand) if c == targets[b] and j != b]] = -np.inf
        per_row.append(np.log(np.exp(logits).sum()) - logits[b])
    loss = build_loss("sampled_softmax", N, negatives=3, score_scale=S).compute(
        *torch_inputs(session, table, targets), torch.from_numpy(neg), True)
    assert loss.item() == pytest.approx(np.mean(per_row), rel=1e-7)


def test_score_scale_needs_l2_and_changes_no_ranking(toy, tmp_path):
    with pytest.raises(ValueError, match="--l2"):
        cfg(toy, loss="ns", optimizer="sparse_fast", score_scale=5.0)
    with pytest.raises(ValueError, match="positive"):
        cfg(toy, loss="ns", optimizer="sparse_fast", l2=True, score_scale=0.0)


# -- shared negatives and mixed sampling ------------------------------------------


def test_shared_negatives_draw_one_set_per_batch():
    loss = build_loss("ns", N, negatives=4, shared_negatives=True)
    assert loss.sampler.sample(3, torch.Generator().manual_seed(0)).shape == (4,)
    assert build_loss("triplet", N, negatives=4).sampler.sample(3).shape == (3, 4)
    with pytest.raises(ValueError, match="shared_negatives applies to the ns and triplet"):
        TrainConfig(data="x", loss="sampled_softmax", optimizer="sparse_fast", shared_negatives=True)


def test_mixed_sampler_is_the_stated_mixture():
    counts = np.array([0, 1, 4, 9, 0, 16])
    sampler = NegativeSampler(5, k=2000, distribution="mixed", mix=0.5, alpha=0.5, counts=counts)
    pop = np.array([0, 1, 2, 3, 0, 4]) / 10
    expected = 0.5 * np.r_[0, np.full(5, 0.2)] + 0.5 * pop  # item 4: popularity 0, but the uniform half keeps it
    np.testing.assert_allclose(sampler.probabilities().numpy(), expected, atol=1e-7)
    ids = sampler.sample(100, torch.Generator().manual_seed(0))
    freq = np.bincount(ids.flatten().numpy(), minlength=6) / ids.numel()
    np.testing.assert_allclose(freq, expected, atol=0.005)
    assert NegativeSampler(5, distribution="mixed", mix=1.0, counts=counts).probabilities()[4] == 0


# -- early stopping -----------------------------------------------------------------


def test_stopped_early_rule():
    e = [{"epoch": i + 1, "mrr_at_20": m} for i, m in enumerate([0.1, 0.3, 0.2, 0.3])]
    assert not stopped_early(e, 0)
    assert not stopped_early(e[:3], 2)  # one epoch without gain
    assert stopped_early(e, 2)  # 0.2 and 0.3 are no better than 0.3: ties do not count as gains
    assert not stopped_early(e, 3)


def test_patience_stops_the_run_and_records_where(toy, tmp_path, monkeypatch):
    scores = iter([0.5, 0.4, 0.45, 0.9, 0.9])
    monkeypatch.setattr("srs_core.training.loop.evaluate", lambda *a, return_ranks=False, **k:
                        ({"p_at_20": 0.0, "mrr_at_20": next(scores)}, None))
    rec = fit(cfg(toy, epochs=5, patience=2), tmp_path / "run", quiet=True)
    assert [e["epoch"] for e in rec["epochs"]] == [1, 2, 3]
    assert rec["stopped_epoch"] == 3 and rec["stopped_early"] is True and rec["best"]["epoch"] == 1
    # resuming a stopped run trains nothing more
    rec2 = fit(cfg(toy, epochs=5, patience=2), tmp_path / "run", quiet=True)
    assert rec2["epochs"] == rec["epochs"]


def test_extensions_at_their_defaults_keep_the_old_hash(toy):
    old = cfg(toy, loss="ns", optimizer="sparse_fast", l2=True).identity("fp")
    assert not {"score_scale", "shared_negatives", "mix", "patience"} & set(old)
    new = cfg(toy, loss="ns", optimizer="sparse_fast", l2=True, score_scale=5.0, sampling="mixed").identity("fp")
    assert new["score_scale"] == 5.0 and new["mix"] == 0.5


def test_cli_accepts_the_extension_flags(toy, tmp_path, capsys):
    code = cli_main(["train", "--data", str(toy), "--model", "stamp", "--loss", "ns", "--optimizer", "sparse_fast",
                     "--l2", "--score-scale", "5", "--sampling", "mixed", "--mix", "0.3", "--shared-negatives",
                     "--negatives", "16", "--epochs", "1", "--dim", "8", "--batch-size", "64", "--patience", "1",
                     "--device", "cpu", "--output", str(tmp_path / "run"), "--quiet"])
    assert code == 0
    c = json.loads((tmp_path / "run" / "result.json").read_text())["config"]
    assert (c["score_scale"], c["sampling"], c["mix"], c["shared_negatives"], c["patience"]) == (5.0, "mixed", 0.3, True, 1)
    assert cli_main(["train", "--data", str(toy), "--model", "stamp", "--score-scale", "5", "--output",
                     str(tmp_path / "bad"), "--quiet"]) == 2
    assert "--l2" in capsys.readouterr().err


# -- the diagnosis grid, labels and verdicts ------------------------------------------


def test_diagnosis_grid_varies_one_factor_at_a_time(toy):
    base = [cfg(toy, seed=0)]
    grid = diagnosis_grid(base, ["ns", "triplet", "sampled_softmax"], k_large=1000,
                          extensions=[{"loss": "ns", "score_scale": 5.0}, {"loss": "triplet", "sampling": "popularity"}])
    names = [variant(dataclasses.asdict(c)) for c in grid]
    assert names == ["ce", "ce, L2",
                     "ns", "ns, no L2", "ns, popularity", "ns, k=1000 shared",
                     "triplet", "triplet, no L2", "triplet, popularity", "triplet, k=1000 shared",
                     "sampled_softmax", "sampled_softmax, no L2", "sampled_softmax, popularity", "sampled_softmax, k=1000",
                     "ns, S=5"]  # the triplet extension equals a grid run: kept once
    ns = grid[2]
    assert (ns.l2, ns.sampling, ns.negatives, ns.score_scale, ns.optimizer) == (True, "uniform", 100, 1.0, "sparse_fast")
    assert [is_extension(dataclasses.asdict(c)) for c in grid].count(True) == 3  # ns and triplet k=1000 shared, ns S=5
    only_ns = diagnosis_grid(base, ["ns", "triplet", "sampled_softmax"], k_large=1000, one_factor=["ns"])
    assert [variant(dataclasses.asdict(c)) for c in only_ns] == [
        "ce", "ce, L2", "ns", "ns, no L2", "ns, popularity", "ns, k=1000 shared", "triplet", "sampled_softmax"]
    srgnn = [cfg(toy, seed=0, model="srgnn")]
    assert [variant(dataclasses.asdict(c)) for c in diagnosis_grid(srgnn, ["ns", "triplet"], one_factor_models=["stamp"])] \
        == ["ce", "ce, L2", "ns", "triplet"]  # taken apart for STAMP only
    with pytest.raises(ValueError, match="one_factor"):
        diagnosis_grid(base, ["ns"], one_factor=["triplet"])
    ce_ext = extension_setting(base, [{"loss": "ce", "score_scale": 10.0}], "sparse_fast")[0]
    assert (ce_ext.optimizer, ce_ext.l2, variant(dataclasses.asdict(ce_ext))) == ("dense", True, "ce, L2, S=10")


def test_compare_computes_ratios_per_model_and_no_spread_from_one_seed():
    runs = pd.DataFrame({
        "dataset": ["d"] * 7, "model": ["m"] * 7, "variant": ["ce", "ce", "ns", "ns", "triplet", "triplet", "one"],
        "mrr_at_20": [0.30, 0.32, 0.20, 0.22, 0.30, 0.33, 0.1], "p_at_20": [0.6, 0.6, 0.5, 0.5, 0.6, 0.62, 0.1],
        "valid_mrr_at_20": [0.1, 0.1, 0.2, 0.2, 0.3, 0.3, 0.4]})
    t = compare(runs).set_index("variant")
    assert t.loc["ns", "mrr_at_20_ratio"] == pytest.approx(0.21 / 0.31)
    assert t.loc["triplet", "seeds"] == 2 and t.loc["one", "seeds"] == 1
    assert t.loc["ns", "mrr_at_20_sd"] == pytest.approx(np.std([0.20, 0.22], ddof=1))
    assert np.isnan(t.loc["one", "mrr_at_20_sd"])  # printed as "–", never 0


def test_each_loss_is_chosen_on_validation_not_on_test():
    table = pd.DataFrame({"dataset": "d", "model": "m", "loss": ["ns", "ns", "ns", "triplet"],
                          "variant": ["ns", "ns, S=5", "ns, no L2", "triplet"],
                          "valid_mrr_at_20_mean": [0.2, 0.3, float("nan"), 0.1],
                          "mrr_at_20_mean": [0.9, 0.1, 0.95, 0.2]})
    chosen = chosen_on_validation(table).set_index("loss")
    assert chosen.loc["ns", "variant"] == "ns, S=5"  # the best on validation, though not on test
    assert chosen.loc["triplet", "variant"] == "triplet"


@pytest.mark.parametrize("scale", [1.0, 5.0])
def test_ns_loss_references_are_what_eq_4_1_gives(scale):
    """The two references of the saturation check, from the loss itself:
    a perfect model (target at +1, negatives at -1) and a model whose
    negatives are orthogonal to the session."""
    from torch import nn

    emb = nn.Embedding(4, 3, padding_idx=0).double()
    with torch.no_grad():
        emb.weight.copy_(torch.tensor([[0, 0, 0], [1, 0, 0], [-1, 0, 0], [0, 1, 0]], dtype=torch.float64))
    loss = build_loss("ns", 3, negatives=1, score_scale=scale)
    session, target = torch.tensor([[2.0, 0, 0]], dtype=torch.float64), torch.tensor([1])
    perfect = loss.compute(session, target, emb, torch.tensor([[2]]), True)
    orthogonal = loss.compute(session, target, emb, torch.tensor([[3]]), True)
    assert perfect.item() == pytest.approx(ns_loss_floor(scale))
    assert orthogonal.item() == pytest.approx(ns_loss_orthogonal(scale))
    assert ns_loss_orthogonal(1.0) == pytest.approx(1.0064, abs=1e-4) and ns_loss_floor(5.0) < 0.014


# -- real data: yoochoose-100k --------------------------------------------------------


def test_real_only_dataset_is_skipped_with_a_note_when_its_file_is_absent(tmp_path):
    names, raw, notes = ex.plan_datasets(["diginetica", "yoochoose-100k"], {"yoochoose-100k": str(tmp_path / "none.dat")})
    assert names == ["diginetica"] and raw == {}
    assert len(notes) == 1 and "yoochoose-100k" in notes[0] and "not found" in notes[0]
    with pytest.raises(ValueError, match="no synthetic preset"):
        ex.prepare_dataset(tmp_path / "w", "yoochoose-100k", scale=1.0)
    assert ex.prepared(tmp_path / "w", ["yoochoose-100k"]) == []


def test_convert_session_rec_writes_raw_yoochoose(tmp_path):
    tsv = tmp_path / "in.txt"
    tsv.write_text("SessionId\tItemId\tTime\n7\t214716935\t1396437466.94\n7\t214832672\t1396438212.318\n")
    assert cli_main(["convert-session-rec", "--input", str(tsv), "--output", str(tmp_path / "out.dat"), "--quiet"]) == 0
    assert (tmp_path / "out.dat").read_text() == ("7,2014-04-02T11:17:46.940Z,214716935,0\n"
                                                 "7,2014-04-02T11:30:12.318Z,214832672,0\n")
    assert cli_main(["convert-session-rec", "--input", str(tmp_path / "missing.txt"), "--output", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()


@pytest.mark.skipif(not DEV.is_file(), reason="../shared/data/yoochoose-100k-dev is absent")
def test_convert_session_rec_reproduces_the_dev_file_byte_for_byte(tmp_path):
    from srs_core.data.readers import read_yoochoose
    from srs_core.data.synthetic import write_raw

    write_raw(read_yoochoose(DEV, quiet=True), tmp_path / "session-rec.txt", fmt="tsv")
    assert cli_main(["convert-session-rec", "--input", str(tmp_path / "session-rec.txt"),
                     "--output", str(tmp_path / "yoochoose-clicks.dat"), "--quiet"]) == 0
    assert (tmp_path / "yoochoose-clicks.dat").read_bytes() == DEV.read_bytes()


@pytest.mark.skipif(not DEV.is_file(), reason="../shared/data/yoochoose-100k-dev is absent")
def test_recommended_configuration_learns_on_the_real_dev_data(tmp_path):
    """The README's recommended setting (STAMP, ns, L2, S=5, popularity
    negatives, sparse_fast), one epoch on the first 8,000 training sessions of
    the real sample, must beat the popularity ranking's MRR@20 by at least 0.08
    on the validation day (measured: about 0.15 above it)."""
    from srs_core.baselines import evaluate_baseline
    from srs_core.data.dataset import ProcessedDataset
    from srs_core.data.integrity import save_dataset
    from srs_core.data.preprocess import preprocess_file

    full = Path(preprocess_file("yoochoose", DEV, tmp_path / "yc", test_days=1, quiet=True))
    ds = ProcessedDataset.load(full)
    keep = 8000
    end = int(ds.train.offsets[keep])
    data = tmp_path / "yc-slice"  # the first 8,000 training sessions, the whole validation day
    train = (np.array(ds.train.items[:end]), np.array(ds.train.offsets[:keep + 1]), np.array(ds.train.times[:keep]))
    splits = {"train": train, "test": (ds.test.items, ds.test.offsets, ds.test.times),
              "valid": (ds.valid.items, ds.valid.offsets, ds.valid.times)}
    stats = {**ds.stats, "n_train_sessions": keep, "n_train_samples": end - keep}
    save_dataset(data, splits, (full / "item_ids.txt").read_text().split(), stats, ds.meta)
    popularity = evaluate_baseline("popularity", ProcessedDataset.load(data))["mrr_at_20"]
    rec = fit(TrainConfig(data=str(data), model="stamp", loss="ns", optimizer="sparse_fast", l2=True, score_scale=5.0,
                          sampling="popularity", epochs=1, device="cpu"), tmp_path / "run", quiet=True)
    assert rec["best"]["mrr_at_20"] > popularity + 0.08, (rec["best"], popularity)


def test_notebooks_build_without_the_real_file(tmp_path):
    """Where yoochoose-100k is absent the data notebook says so in one line,
    and the diagnosis notebook runs to the end showing only that line."""
    from test_notebooks import checked_output, run

    work = tmp_path / "work"
    nb = run("00-data", tmp_path, work_dir=str(work), datasets=["diginetica", "yoochoose-100k"],
             scale={"diginetica": 0.005}, raw_paths={"yoochoose-100k": str(tmp_path / "absent.dat")})
    printed = "".join("".join(o.get("text", "")) for c in nb["cells"] if c["cell_type"] == "code" for o in c["outputs"])
    assert "yoochoose-100k: real data not found" in printed
    assert checked_output(nb).strip().startswith("diginetica:")
    nb = run("06-diagnosis", tmp_path, work_dir=str(work))
    assert checked_output(nb).strip() == "yoochoose-100k: not available"


def test_complete_configs_lists_only_finished_runs(toy, tmp_path):
    from srs_core.training import run_in_store

    done, todo = cfg(toy, epochs=1), cfg(toy, epochs=1, seed=1)
    run_in_store(ex.results_store(tmp_path), done, quiet=True)
    assert ex.complete_configs(tmp_path, [done, todo]) == [done]


def test_variant_names_the_options_of_the_losses_published_since():
    base = {"l2": True, "sampling": "uniform", "negatives": 100, "score_scale": 1.0}
    assert variant({**base, "loss": "sampled_softmax", "score_scale": 10.0, "sampling": "popularity", "logq": "mixed"}) \
        == "sampled_softmax, S=10, popularity, logQ mixed"
    assert variant({**base, "loss": "sampled_softmax", "logq": "single"}) == "sampled_softmax"
    assert variant({**base, "loss": "gbce", "l2": False, "negatives": 256, "gbce_t": 0.9}) == "gbce, no L2, k=256, t=0.9"
    assert variant({**base, "loss": "gbce", "l2": False, "negatives": 256, "gbce_t": 0.75}) == "gbce, no L2, k=256"
    # gbce names k even at 100 (the other sampled losses' default), so that k=100 and k=256 read apart
    assert variant({**base, "loss": "gbce", "l2": False, "negatives": 100, "gbce_offset": True}) == "gbce, no L2, k=100, offset"
    assert variant({**base, "loss": "ns"}) == "ns"
    assert variant({"loss": "gbce", "l2": False}) == "gbce, no L2, k=100"  # k left out: its default, named
    assert variant({**base, "loss": "sce", "l2": False, "sce_buckets": 16, "sce_bucket_size": 256}) == "sce, no L2, 16x256 buckets"
    assert is_extension({**base, "loss": "sce"}) and not is_extension({**base, "loss": "ns"})
