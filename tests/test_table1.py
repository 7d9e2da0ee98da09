"""Table 1 beside the published numbers, and Experiment I on real data: the rules on both sides."""
import math

import numpy as np
import pandas as pd
import pytest

from srs_core import real_split
from srs_core import table1 as t1


def runs(model, variant, mrrs, ps, loss="sampled_softmax", seconds=30.0):
    n = len(mrrs)
    return pd.DataFrame({"model": [model] * n, "variant": [variant] * n, "loss": [loss] * n, "seed": range(n),
                         "mrr_at_20": mrrs, "p_at_20": ps, "test_best_mrr_at_20": [m + 0.001 for m in mrrs],
                         "test_best_p_at_20": ps, "epoch_seconds": [seconds] * n, "epochs_run": [3] * n})


def test_published_numbers_are_table_1s():
    assert t1.published("stamp") == pytest.approx((0.4564, 0.1432))
    assert t1.published("srgnn", "yoochoose-1/4") == pytest.approx((0.7136, 0.3189))
    assert all(math.isnan(v) for v in t1.published("bert4rec"))


def test_a_gap_counts_only_beyond_the_seeds_range_and_the_tolerance():
    frame = pd.concat([
        runs("stamp", "ss", [0.160, 0.170], [0.46, 0.46]),  # MRR +2.2 points, range 1.0 point: above
        runs("narm", "ss", [0.158, 0.166], [0.49, 0.50]),  # MRR -0.0 (mean 16.2 vs 16.17): level
        runs("srgnn", "ss", [0.150, 0.152], [0.40, 0.41]),  # MRR -2.5 points: below
        runs("gru4rec", "ss", [0.0855], [0.30]),  # +0.22 points with one seed: within the tolerance, level
    ])
    rows = t1.per_model(frame)
    claim = t1.published_gap(rows, "the split")
    assert claim.numbers["stamp_mrr"] == "above" and claim.numbers["narm_mrr"] == "level"
    assert claim.numbers["srgnn_mrr"] == "below" and claim.numbers["gru4rec_mrr"] == "level"
    assert claim.verdict == "mixed" and "STAMP above (+2.18 points)" in claim.sentence
    wide = pd.concat([runs("stamp", "ss", [0.120, 0.170], [0.46, 0.46])])  # the seeds disagree by 5 points
    assert t1.published_gap(t1.per_model(wide), "x").numbers["stamp_mrr"] == "level"
    only_above = t1.per_model(runs("stamp", "ss", [0.20, 0.21], [0.5, 0.5]))
    assert t1.published_gap(only_above, "x").verdict == "at or above"
    assert t1.published_gap(t1.per_model(runs("stamp", "ss", [0.05], [0.2])), "x").verdict == "below"
    best = t1.published_gap(t1.per_model(runs("stamp", "ss", [0.1375], [0.46])), "x", protocol="best test epoch")
    assert best.numbers["stamp_mrr"] == "level" and "published protocol" in best.sentence  # 0.1385 vs 0.1432
    assert t1.published_gap(pd.DataFrame(columns=["mrr_pub"]), "x").verdict == "not measured"


def test_the_page_table_puts_ours_beside_the_published():
    frame = pd.concat([runs("stamp", "ce", [0.15, 0.16], [0.45, 0.47], loss="ce", seconds=500.0),
                       runs("stamp", "ss", [0.17], [0.48])])
    floors = pd.DataFrame({"model": ["vsknn"], "mrr_at_20": [0.18], "p_at_20": [0.5]})
    tab = t1.table1(frame, floors)
    ss = ("STAMP", "sampled softmax (logQ)")
    assert list(tab.index) == [("STAMP", "cross-entropy"), ss, ("V-SKNN", "session baseline")]
    assert tab.loc[("STAMP", "cross-entropy"), ("ours, validation", "MRR@20")] == "15.50\u00a0±\u00a00.71"
    assert tab.loc[ss, ("ours, validation", "MRR@20")] == "17.00"  # one seed: no spread
    assert tab.loc[ss, ("published", "MRR@20")] == "14.32"
    assert tab.loc[("V-SKNN", "session baseline"), ("ours, best test epoch", "P@20")] == "–"


def test_split_counts_set_the_import_beside_the_published():
    stats = {"n_items": 43097, "n_train_sessions": 168003, "n_valid_sessions": 18594, "n_train_samples": 649944,
             "n_valid_samples": 68956, "n_test_samples": 60858}
    meta = {"trace": {"items_published": 43097, "train_sessions_published": 186670, "train_samples_published": 719470,
                      "test_rows_published": 60858}}
    tab = t1.split_counts(stats, meta)
    assert (tab["published"] == tab["read from the files"]).all()
    assert tab.loc["training sessions", "used here"] == "168,003 train + 18,594 validation"


def cost_rows(ce_small, ce_large, rec_small, rec_large):
    return pd.DataFrame({"dataset": ["small", "large"] * 2, "model": ["stamp"] * 4,
                         "loss": ["cross-entropy"] * 2 + ["recommended"] * 2, "items": [2500, 43000] * 2,
                         "ms / 1k samples": [ce_small, ce_large, rec_small, rec_large]})


def test_cross_entropys_cost_per_sample_grows_only_beyond_the_flat_ratio():
    grows = real_split.cost_grows_real(cost_rows(175.0, 1450.0, 117.0, 93.0), "small", "large")
    assert grows.verdict == "grows with the catalogue" and "8.29x as much" in grows.sentence
    assert "0.79x as much" in grows.sentence and grows.numbers["span"] == pytest.approx(17.2)
    flat = real_split.cost_grows_real(cost_rows(100.0, 140.0, 50.0, 50.0), "small", "large")
    assert flat.verdict == "does not grow"
    assert real_split.cost_grows_real(cost_rows(100.0, 140.0, 50.0, 50.0).iloc[2:], "small", "large").verdict == \
        "not measured"


def test_cost_table_puts_epochs_on_one_footing():
    frame = pd.DataFrame({"dataset": ["a", "a", "b"], "model": ["stamp"] * 3, "label": ["cross-entropy"] * 3,
                          "epoch_seconds": [10.0, 12.0, 50.0], "batching": ["buckets"] * 3})
    tab = real_split.cost_table(frame, {"a": {"n_train_samples": 1000, "n_items": 10},
                                        "b": {"n_train_samples": 10000, "n_items": 100}})
    assert tab["ms / 1k samples"].tolist() == pytest.approx([11000.0, 5000.0])
    assert tab.runs.tolist() == [2, 1] and np.isclose(tab["s / epoch"].iloc[0], 11.0)
