"""Notebook 07-beyond's pieces: which runs count as the losses published since
the dissertation, how a chosen setting finds its step time in the benchmark
CSV, and the dense optimizer for the full-catalogue losses."""
import json
import math

import pandas as pd

from srs_core.bench import cost_key, step_ms_at
from srs_core.diagnosis import extension_setting, is_recent
from srs_core.training import TrainConfig


def test_recent_losses_are_told_apart_from_the_dissertations():
    assert is_recent({"loss": "gbce"}) and is_recent({"loss": "cce"}) and is_recent({"loss": "sce"})
    assert is_recent({"loss": "sampled_softmax", "logq": "mixed"})
    assert not is_recent({"loss": "sampled_softmax", "logq": "single"})
    assert not is_recent({"loss": "ns", "score_scale": 5.0}) and not is_recent({"loss": "ce"})


def test_cost_key_keeps_what_the_step_time_depends_on():
    assert cost_key("ns", "sparse", {"l2": True}) == cost_key("ns", "sparse_fast", {"l2": True, "score_scale": 5.0})
    assert cost_key("ns", "sparse_fast", {}) != cost_key("ns", "dense", {})
    assert cost_key("ns", "sparse_fast", {"sampling": "popularity"}) != cost_key("ns", "sparse_fast", {})
    assert cost_key("gbce", "sparse_fast", {"negatives": 256, "gbce_t": 0.9}) == cost_key("gbce", "sparse_fast", {"negatives": 256})
    assert cost_key("gbce", "sparse_fast", {"negatives": 256}) != cost_key("gbce", "sparse_fast", {"negatives": 100})
    ss = {"sampling": "popularity", "score_scale": 10.0}
    assert cost_key("sampled_softmax", "sparse_fast", {**ss, "logq": "mixed"}) == \
        cost_key("sampled_softmax", "sparse_fast", {**ss, "logq": "corrected"})
    assert cost_key("sampled_softmax", "sparse_fast", {**ss, "logq": "mixed"}) != cost_key("sampled_softmax", "sparse_fast", ss)
    assert cost_key("sce", "sparse_fast", {"sce_buckets": 16}) != cost_key("sce", "sparse_fast", {})
    assert cost_key("ce", "dense", {"l2": True}) != cost_key("ce", "dense", {"l2": False})
    assert cost_key("cce", "dense", {}) != cost_key("ce", "dense", {})


def _bench(rows):
    return pd.DataFrame([{**r, "fields": json.dumps(r["fields"]), "status": r.get("status", "ok")} for r in rows])


def test_step_time_is_read_from_the_row_of_the_same_cost_and_size():
    bench = _bench([
        {"loss": "ns", "optimizer": "sparse_fast", "fields": {"l2": True}, "n_items": 1280000, "median_ms": 10.0},
        {"loss": "ns", "optimizer": "sparse_fast", "fields": {"l2": True, "sampling": "popularity", "score_scale": 5.0},
         "n_items": 1280000, "median_ms": 12.0},
        {"loss": "ns", "optimizer": "sparse_fast", "fields": {"l2": True}, "n_items": 10000, "median_ms": 8.0},
        {"loss": "sce", "optimizer": "sparse_fast", "fields": {"l2": False}, "n_items": 1280000, "median_ms": 99.0,
         "status": "error: boom"},
    ])
    assert step_ms_at(bench, "ns", "sparse", {"l2": True, "sampling": "uniform"}, 1280000) == 10.0
    assert step_ms_at(bench, "ns", "sparse", {"l2": True, "sampling": "popularity", "score_scale": 1.0}, 1280000) == 12.0
    assert step_ms_at(bench, "ns", "sparse_fast", {"l2": True}, 10000) == 8.0
    assert math.isnan(step_ms_at(bench, "ns", "sparse_fast", {"l2": True}, 100000))  # not measured at that size
    assert math.isnan(step_ms_at(bench, "sce", "sparse_fast", {"l2": False}, 1280000))  # failed rows do not count
    assert math.isnan(step_ms_at(bench, "triplet", "sparse_fast", {}, 1280000))
    assert math.isnan(step_ms_at(None, "ns", "sparse_fast", {}, 1280000))


def test_full_catalogue_losses_keep_the_dense_optimizer():
    base = [TrainConfig(data="x", model="stamp")]
    out = extension_setting(base, [{"loss": "cce", "l2": False}, {"loss": "gbce", "negatives": 256},
                                   {"loss": "sce", "optimizer": "sparse"}], "sparse_fast")
    assert [(c.loss, c.optimizer) for c in out] == [("cce", "dense"), ("gbce", "sparse_fast"), ("sce", "sparse")]
    assert out[1].negatives == 256 and out[1].l2 is True  # on top of the dissertation's setting
