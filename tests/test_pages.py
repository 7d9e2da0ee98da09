"""The results pages' table, figure and computed claims, on hand-made runs."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pandas as pd
import pytest

from srs_core import pages, plots, verdicts


def _runs():
    rows = []
    for dataset, n_items, scale in (("meli2020", 50_000, 10.0), ("diginetica", 5_000, 1.0), ("yoochoose-1-64", 500, 0.1)):
        for model, mrr in (("stamp", 0.20), ("gru4rec", 0.30)):
            for seed, jitter in ((0, 0.0), (1, 0.02)):
                for variant, cost in (("ce", scale), ("ns", 1.0)):
                    rows.append({"dataset": dataset, "n_items": n_items, "model": model, "seed": seed,
                                 "variant": variant, "loss": variant, "mrr_at_20": mrr + jitter,
                                 "p_at_20": 2 * mrr + jitter, "epoch_seconds": 100.0 * cost,
                                 "n_train_samples": 1_000_000})
    return pd.DataFrame(rows)


def test_spread_shows_mean_and_sd_and_a_dash_for_one_seed():
    assert pages.spread(pd.Series([0.1, 0.3])) == "0.2000\u00a0±\u00a00.1414"
    assert pages.spread(pd.Series([0.25])) == "0.2500\u00a0±\u00a0–"
    assert pages.spread(pd.Series([float("nan")])) == "–"


def test_the_table_orders_datasets_by_catalogue_models_as_the_book_and_baselines_last():
    runs = _runs()
    runs = runs[runs.variant == "ce"]
    floors = pd.DataFrame([{"dataset": "diginetica", "model": "sknn", "mrr_at_20": 0.5, "p_at_20": 0.6},
                           {"dataset": "diginetica", "model": "pop", "mrr_at_20": 0.01, "p_at_20": 0.02},
                           {"dataset": "elsewhere", "model": "pop", "mrr_at_20": 0.9, "p_at_20": 0.9}])
    table = pages.tidy(runs, floors).reset_index()
    assert list(dict.fromkeys(table.dataset)) == ["Yoochoose 1/64-like", "Diginetica-like", "MeLi2020-like"]
    digi = table[table.dataset == "Diginetica-like"]
    methods = list(digi.method)
    assert methods[:2] == [plots.LABELS["gru4rec"], plots.LABELS["stamp"]]  # the book's model order
    assert all(m.endswith("(baseline)") for m in methods[2:])
    assert digi.iloc[2]["MRR@20"].startswith("0.5000")  # baselines by MRR@20, best first
    assert "elsewhere" not in set(table.dataset)  # a baseline of another dataset is left out
    row = digi.iloc[0]
    assert row["MRR@20"] == "0.3100\u00a0±\u00a00.0141" and row["seeds"] == "2" and row["s / epoch"] == "100.0"
    assert digi.iloc[2]["s / epoch"] == "–" and digi.iloc[2]["seeds"] == "–"


def test_a_table_by_variant_writes_the_loss_out():
    table = pages.tidy(_runs(), by=("dataset", "model", "variant")).reset_index()
    assert set(table.loss) == {pages.variant_label("ce"), pages.variant_label("ns")}
    assert pages.variant_label("ns, S=5, popularity") == f"{plots.LABELS['ns']}, S=5, popularity"


def test_cost_growth_reads_the_slope_of_the_cost_per_sample():
    runs = _runs()
    claim = verdicts.cost_growth(runs[runs.variant == "ce"])
    assert claim.numbers["slope"] == pytest.approx(1.0)
    assert claim.verdict == "grows about linearly"
    flat = verdicts.cost_growth(runs[runs.variant == "ns"])
    assert flat.verdict == "does not grow"
    small = verdicts.cost_growth(runs[(runs.variant == "ce") & (runs.dataset != "meli2020")])
    assert small.verdict == "too small to tell"  # 10x is too narrow a span


def test_speed_compares_on_the_largest_catalogue_only():
    claim = verdicts.speed(_runs(), "the test data")
    assert claim.verdict == "faster"
    assert claim.numbers["min"] == pytest.approx(10.0) and claim.numbers["max"] == pytest.approx(10.0)
    assert "50,000 items" in claim.sentence
    assert verdicts.speed(_runs().iloc[0:0], "nothing").verdict == "not measured"


@pytest.mark.parametrize("groups", [2, 3])
def test_the_experiment_figure_has_one_bar_per_run_kind_and_cross_entropy_first(groups):
    runs = _runs()
    runs = runs[runs.dataset.isin(["meli2020", "diginetica", "yoochoose-1-64"][:groups])]
    fig = plots.experiment(runs, x="dataset", hue="variant")
    mrr, seconds = fig.axes[:2]
    assert len(mrr.patches) == 2 * groups and seconds.get_yscale() == "log"
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [plots.LABELS["ce"], plots.LABELS["ns"]]
    assert fig.get_size_inches()[0] == pytest.approx(plots.PAGE_WIDTH)


def test_more_than_three_groups_stack_the_panels():
    runs = _runs().assign(dataset=lambda d: d.dataset + d.model)  # six groups
    fig = plots.experiment(runs, x="dataset", hue="variant")
    (a, b) = fig.axes[:2]
    assert a.get_position().y0 > b.get_position().y1  # one above the other, each the column's width


def _compared():
    """Rows of ``experiments.compare_runs``: a reference (no verdict) and two variants of one model."""
    return pd.DataFrame({
        "model": ["stamp"] * 3, "variant": ["ce, buckets batching", "ns, S=5, buckets batching", "triplet, buckets batching"],
        "mrr_at_20_mean": [0.15, 0.16, 0.12], "mrr_at_20_sd": [float("nan"), 0.001, 0.002],
        "p_at_20_mean": [0.45, 0.46, 0.40], "seeds": [1, 2, 2],
        "mrr_ratio": [float("nan"), 1.07, 0.8], "mrr_lo": [float("nan"), 1.05, 0.78], "mrr_hi": [float("nan"), 1.09, 0.82],
        "mrr_verdict": [None, "beats", "trails"], "p_ratio": [float("nan"), 1.02, 0.89],
        "p_lo": [float("nan"), 1.0, 0.87], "p_hi": [float("nan"), 1.04, 0.91], "p_verdict": [None, "matches", "trails"]})


def test_a_comparison_names_models_and_losses_as_the_book_and_puts_the_reference_first():
    table = pages.comparison(_compared().iloc[::-1], omit=("buckets batching",))
    assert list(table.index) == [("STAMP", "cross-entropy"), ("STAMP", "negative sampling, S=5"), ("STAMP", "triplet")]
    assert table.iloc[0]["verdict (MRR / P)"] == "reference" and table.iloc[0]["MRR ratio (95% CI)"] == "–"
    assert table.iloc[0]["MRR@20"] == "0.1500\u00a0±\u00a0–" and table.iloc[1]["MRR@20"] == "0.1600\u00a0±\u00a00.0010"
    assert table.iloc[1]["verdict (MRR / P)"] == "beats / matches" and table.iloc[2]["seeds"] == "2"
    text = table.to_html()
    assert "nan" not in text.lower() and "_" not in "".join(map(str, table.columns))


def test_the_scaling_table_has_one_row_per_pairing_cross_entropy_first_and_the_slopes():
    df = pd.DataFrame({"n_items": [1_000, 10_000, 100_000] * 2, "loss": ["ns"] * 3 + ["ce"] * 3,
                       "optimizer": ["sparse_fast"] * 3 + ["dense"] * 3, "median_ms": [2.0, 2.0, 2.0, 1.0, 10.0, 100.0],
                       "peak_rss_mb": [300.0] * 3 + [300.0, 400.0, 900.0]})
    table = pages.scaling_table(df)
    assert list(table.index) == ["cross-entropy + dense Adam", "negative sampling + sparse_fast"]
    assert table.loc["cross-entropy + dense Adam", ("log-log slope", "time")] == "1.00"
    assert table.loc["negative sampling + sparse_fast", ("log-log slope", "time")] == "0.00"
    assert table.loc["cross-entropy + dense Adam", ("ms per step, at N items", "100,000")] == "100.0"


def test_the_frontier_table_says_which_loss_was_not_timed():
    points = pd.DataFrame({"model": ["stamp", "stamp"], "loss": ["ns", "sce"], "variant": ["ns, S=5", "sce, no L2"],
                           "mrr_ratio": [1.05, 1.0], "mrr_lo": [1.0, 0.98], "mrr_hi": [1.1, 1.02],
                           "mrr_verdict": ["beats", "matches"], "step_ms": [10.0, float("nan")]})
    table = pages.frontier_table(points, pd.Series([True, False]), reference_ms=5.0)
    assert table.loc[("STAMP", "negative sampling"), "÷ negative sampling's step"] == "2.00"
    assert table.loc[("STAMP", "negative sampling"), "setting"] == "S=5"
    assert table.loc[("STAMP", "scalable CE (SCE)"), "ms / step"] == "not timed"
    assert table.loc[("STAMP", "scalable CE (SCE)"), "on the frontier"] == "no"


def test_counts_take_the_plural_only_where_it_is_needed():
    from srs_core.claims import count

    assert count(1, "model") == "1 model" and count(3, "model") == "3 models" and count(2, "pair", "pairs") == "2 pairs"


def test_the_scaling_and_frontier_figures_fit_the_text_column():
    df = pd.DataFrame({"n_items": [1_000, 10_000] * 2, "loss": ["ns"] * 2 + ["ce"] * 2,
                       "optimizer": ["sparse_fast"] * 2 + ["dense"] * 2, "median_ms": [2.0, 2.0, 1.0, 10.0],
                       "peak_rss_mb": [300.0] * 4})
    fig = plots.scaling(df)
    assert fig.get_figwidth() <= plots.PAGE_WIDTH
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["cross-entropy + dense Adam", "negative sampling + sparse_fast"]  # one entry per pairing
    points = pd.DataFrame({"model": ["stamp"] * 2, "loss": ["ns", "ce"], "mrr_ratio": [1.05, 1.0], "mrr_lo": [1.0, 1.0],
                           "mrr_hi": [1.1, 1.0], "step_ms": [10.0, 1000.0]})
    fig = plots.frontier(points, pd.Series([True, True]))
    assert fig.get_figwidth() <= plots.PAGE_WIDTH


def test_the_official_table_pairs_each_model_with_its_official_code_and_skips_a_lone_row():
    rows = pd.DataFrame({
        "machine": ["m"] * 5, "date": ["2026-12-07"] * 5,
        "dataset": ["diginetica-srgnn"] * 4 + ["yoochoose-100k"],
        "implementation": ["official SR-GNN", "ours SR-GNN", "official GRU4Rec", "ours GRU4Rec", "official GRU4Rec"],
        "epochs": [1, 1, 1, 1, 10], "median_epoch_seconds": [700.0, 50.0, 170.0, 34.0, 10.0],
        "mrr_at_20": [0.13, 0.16, 0.15, 0.12, 0.2], "p_at_20": [0.4, 0.44, 0.45, 0.44, 0.5]})
    table, nums = pages.official_table(rows)
    assert list(nums.model) == ["SR-GNN", "GRU4Rec"]  # yoochoose-100k has no row of ours: left out
    assert nums.speedup.round(2).tolist() == [14.0, 5.0]
    assert nums.mrr_ratio.round(2).tolist() == [1.23, 0.8]
    assert table.loc[("Diginetica split", "SR-GNN"), ("speed-up", "")] == "14.0x"
    assert table.loc[("Diginetica split", "GRU4Rec"), ("s / epoch", "official")] == "170.0"
    assert table.loc[("Diginetica split", "GRU4Rec"), ("date", "")] == "2026-12-07"


def test_name_variants_writes_each_loss_out_and_drops_the_shared_setting():
    rows = pd.DataFrame({"variant": ["ns, S=5, buckets batching", "sampled_softmax, buckets batching"], "x": [1, 2]})
    named = pages.name_variants(rows, ("buckets batching",))
    assert named.variant.tolist() == ["negative sampling, S=5", "sampled softmax (logQ)"]
    assert named.x.tolist() == [1, 2] and rows.variant.iloc[0] == "ns, S=5, buckets batching"  # a copy
