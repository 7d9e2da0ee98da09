"""The validation protocol: a validation split cut from the
training period, the epoch chosen on it, the test split reported once, and
the test ranks kept for paired statistics."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from srs_core.data.dataset import ProcessedDataset
from srs_core.data.preprocess import (SECONDS_PER_DAY, STATS_KEYS, VALID_STATS_KEYS, PreprocessError,
                                      preprocess_events, preprocess_file)
from srs_core.data.readers import make_events
from srs_core.metrics import metrics_from_ranks
from srs_core.training import TrainConfig, best_epoch, fit, run_key, stopped_early

from test_train import write_dataset

# sha256 of the processed Diginetica sample's arrays, item ids and stats, as
# written by the code before the validation split existed (commit d676cc0)
DISSERTATION_SPLIT_SHA = "5ccdf44317ee87e85f78e6b7e2f35b0573e6afe5d4bbb25792682b28899f5630"
SPLIT_FILES = ("train_items.npy", "train_offsets.npy", "train_times.npy", "test_items.npy", "test_offsets.npy",
               "test_times.npy", "item_ids.txt", "stats.json")


def test_valid_days_0_gives_the_dissertations_bytes(diginetica_sample, tmp_path):
    out = preprocess_file("diginetica", diginetica_sample, tmp_path / "d", valid_days=0, quiet=True)
    digest = hashlib.sha256(b"".join((out / f).read_bytes() for f in SPLIT_FILES)).hexdigest()
    assert digest == DISSERTATION_SPLIT_SHA
    assert not (out / "valid_items.npy").exists()
    assert list(json.loads((out / "stats.json").read_text())) == list(STATS_KEYS)
    assert ProcessedDataset.load(out).valid is None


def test_the_default_validation_split_follows_the_test_splits_rules(diginetica_sample, tmp_path):
    out = preprocess_file("diginetica", diginetica_sample, tmp_path / "d", quiet=True)  # 7 test days, 7 valid days
    ds = ProcessedDataset.load(out)
    meta = json.loads((out / "meta.json").read_text())
    T, Tv = meta["split_threshold"], meta["valid_threshold"]
    assert Tv == pytest.approx(T - 7 * SECONDS_PER_DAY) and meta["params"]["valid_days"] == 7
    assert ds.valid is not None and ds.valid.n_sessions > 0
    assert (np.asarray(ds.train.times) < Tv).all()
    assert ((np.asarray(ds.valid.times) >= Tv) & (np.asarray(ds.valid.times) < T)).all()
    assert (np.asarray(ds.test.times) >= T).all()
    train_items = set(np.asarray(ds.train.items).tolist())
    for split in (ds.valid, ds.test):  # step 5 against the new training part; step 6
        assert set(np.asarray(split.items).tolist()) <= train_items
        assert split.lengths.min() >= 2
    assert ds.n_items == len(train_items)
    assert list(ds.stats) == list(STATS_KEYS) + list(VALID_STATS_KEYS)
    assert ds.stats["n_valid_sessions"] == ds.valid.n_sessions and ds.stats["n_valid_samples"] == ds.valid.n_samples


def _events(day_of_session):
    rows = []
    for s, day in enumerate(day_of_session):
        for j in range(3):
            rows.append((s, day * SECONDS_PER_DAY + 60 * j, 1 + (s + j) % 4))
    sess, time, item = map(np.array, zip(*rows))
    return make_events(sess, item, time)


def test_validation_window_errors_name_the_flag():
    events = _events([0, 5, 6, 7, 8, 9])
    ds = preprocess_events(events, test_days=1, valid_days=1, min_item_support=1)
    assert ds.valid is not None and ds.valid.n_sessions == 1 and ds.train.n_sessions == 3
    with pytest.raises(PreprocessError, match="--valid-days"):
        preprocess_events(_events([8, 9, 9]), test_days=0.5, valid_days=2, min_item_support=1)
    with pytest.raises(PreprocessError, match="--valid-days"):
        preprocess_events(events, test_days=1, valid_days=-1, min_item_support=1)


# -- selection ---------------------------------------------------------------------


def test_best_epoch_and_early_stopping_watch_the_chosen_split():
    epochs = [{"epoch": i + 1, "mrr_at_20": t, "p_at_20": t, "valid_mrr_at_20": v, "valid_p_at_20": v}
              for i, (t, v) in enumerate([(0.1, 0.5), (0.4, 0.3), (0.5, 0.2)])]
    on_valid = best_epoch(epochs, "valid")
    assert on_valid["epoch"] == 1 and on_valid["mrr_at_20"] == 0.1 and on_valid["valid_mrr_at_20"] == 0.5
    assert best_epoch(epochs, "test")["epoch"] == 3
    assert stopped_early(epochs, 2, "valid") and not stopped_early(epochs, 2, "test")
    with pytest.raises(ValueError, match="valid"):
        best_epoch(epochs, "train")


@pytest.fixture(scope="module")
def toy_valid(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("toy-valid") / "data", n_valid=40)


def _cfg(data, **kw):
    base = dict(data=str(data), model="stamp", loss="ce", epochs=3, batch_size=32, dim=16, seed=0)
    return TrainConfig(**(base | kw))


def test_training_selects_on_validation_and_reports_test_at_that_epoch(toy_valid, tmp_path):
    rec = fit(_cfg(toy_valid), tmp_path / "v", quiet=True)
    assert rec["selected_on"] == "valid"
    assert all("valid_mrr_at_20" in e for e in rec["epochs"])
    chosen = max(rec["epochs"], key=lambda e: (e["valid_mrr_at_20"], -e["epoch"]))
    assert rec["best"]["epoch"] == chosen["epoch"] and rec["best"]["mrr_at_20"] == chosen["mrr_at_20"]
    # the ranks kept are those of the chosen epoch on the test split
    ranks = np.load(tmp_path / "v" / rec["ranks"])
    assert ranks.dtype == np.int32 and len(ranks) == ProcessedDataset.load(toy_valid).test.n_samples
    got = metrics_from_ranks(__import__("torch").from_numpy(ranks.astype(np.int64)))
    assert got["mrr_at_20"] == pytest.approx(rec["best"]["mrr_at_20"], abs=1e-12)
    # --select test on the same data: the same training, chosen on the test split
    test = fit(_cfg(toy_valid, select="test"), tmp_path / "t", quiet=True)
    assert test["selected_on"] == "test"
    assert [e["mrr_at_20"] for e in test["epochs"]] == [e["mrr_at_20"] for e in rec["epochs"]]
    assert test["best"]["epoch"] == max(test["epochs"], key=lambda e: (e["mrr_at_20"], -e["epoch"]))["epoch"]
    assert run_key(_cfg(toy_valid))[1] != run_key(_cfg(toy_valid, select="test"))[1]


def test_without_a_validation_split_select_valid_falls_back_to_test(tmp_path):
    data = write_dataset(tmp_path / "data")
    rec = fit(_cfg(data, epochs=2), tmp_path / "run", quiet=True)
    assert rec["selected_on"] == "test" and "valid_mrr_at_20" not in rec["epochs"][0]
    # the same hash as a run that asks for the dissertation's protocol, and as before the flag existed
    assert run_key(_cfg(data))[1] == run_key(_cfg(data, select="test"))[1]
    assert "select" not in run_key(_cfg(data))[0]
