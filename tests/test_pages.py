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


def _calibration(preset_mrr):
    rows = []
    for data, values in (("real split", (0.002, 0.13, 0.15, 0.18)), ("Diginetica-like preset", preset_mrr)):
        for method, mrr in zip(("popularity", "transition", "stamp, cross-entropy", "vsknn"), values):
            rows.append({"data": data, "method": method, "mrr_at_20": mrr, "p_at_20": 2 * mrr,
                         "ratio_to_vsknn": mrr / values[-1]})
    return pd.DataFrame(rows)


def test_the_calibration_table_sets_the_preset_beside_the_real_split_and_says_where_the_order_differs():
    table, sentence = pages.calibration(_calibration((0.03, 0.19, 0.21, 0.24)))
    assert list(table.index) == ["popularity", "transition", "STAMP, cross-entropy", "V-SKNN"]
    assert table.loc["V-SKNN", ("Diginetica split (real)", "÷ V-SKNN")] == "1.00"
    assert table.loc["transition", ("Diginetica-like preset", "MRR@20")] == "0.1900"
    assert "exactly as the real split" in sentence
    # ratios to V-SKNN: real 0.011, 0.72, 0.83, 1; preset 0.125, 0.79, 0.88, 1
    assert "within 0.11 of the split's (median 0.06, largest for popularity)" in sentence, sentence
    assert "on P@20 the rank correlation of the two orders is 1.00." in sentence
    _, swapped = pages.calibration(_calibration((0.03, 0.22, 0.21, 0.24)))
    assert "1 pair in the other order" in swapped and "STAMP (cross-entropy) above transition" not in swapped
    assert "(on the preset transition above STAMP (cross-entropy); the real split has" in swapped, swapped
    _, far = pages.calibration(_calibration((0.03, 0.25, 0.21, 0.24)))  # transition now above two methods, named once
    assert "2 pairs in the other order (on the preset transition above STAMP (cross-entropy) and V-SKNN;" in far, far


def test_each_real_dataset_gets_its_own_table_beside_its_preset():
    dig = _calibration((0.03, 0.19, 0.21, 0.24))
    yoo = _calibration((0.1, 0.3, 0.28, 0.35)).replace({"data": {"real split": "yoochoose-100k sample",
                                                                 "Diginetica-like preset": "Yoochoose 1/64-like preset"}})
    both = pd.concat([yoo, dig])
    assert pages.calibration_pairs(both) == ["real split", "yoochoose-100k sample"]
    assert pages.calibration_pairs(dig) == ["real split"]
    assert pages.calibration_pairs(yoo[yoo.data != "Yoochoose 1/64-like preset"]) == []  # a real column alone is no pair
    table, sentence = pages.calibration(both, "yoochoose-100k sample")
    assert [h for h, _ in table.columns][::3] == ["yoochoose-100k (real)", "Yoochoose 1/64-like preset"]
    assert table.loc["transition", ("Yoochoose 1/64-like preset", "MRR@20")] == "0.3000"  # not the Diginetica rows
    assert "transition above STAMP (cross-entropy)" in sentence and "the real sample has each" in sentence
    assert "split" not in sentence


def test_the_builds_line_names_each_side_of_a_pair_with_its_commits_date_and_machine():
    dig = _calibration((0.03, 0.19, 0.21, 0.24)).assign(commit="abc1234", date="2026-12-07", machine="AMD EPYC, 2 cores")
    dig.loc[(dig.data == "real split") & (dig.method == "vsknn"), "commit"] = "0ff1ce0"
    yoo = dig.replace({"data": {"real split": "yoochoose-100k sample",
                                "Diginetica-like preset": "Yoochoose 1/64-like preset"}}).assign(commit="9999999")
    line = pages.calibration_builds(pd.concat([dig, yoo]), "real split")
    assert line == ("Read from the default profile's runs (Diginetica-like preset: commit abc1234, 2026-12-07; "
                    "real split: commit 0ff1ce0, abc1234, 2026-12-07; AMD EPYC, 2 cores).")


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


def _sweep():
    rows = []
    for preset, by_rate in (("diginetica", {0.001: 0.20, 0.003: 0.19}), ("meli2020", {0.001: 0.05, 0.003: 0.13})):
        for lr, best in by_rate.items():
            rows += [{"dataset": preset, "loss": "ce", "lr": lr, "epoch": e, "valid_mrr_at_20": best * f}
                     for e, f in ((1, 0.5), (2, 1.0))]
    rows += [{"dataset": "diginetica", "loss": "recommended", "lr": 0.003, "epoch": 2, "valid_mrr_at_20": 0.21}]
    return pd.DataFrame(rows)


def test_the_rate_is_chosen_over_every_preset_swept_relative_to_each_presets_best():
    sweep = _sweep()
    # Diginetica-like alone would pick 0.001; relative scores: 0.001 -> (1 + 0.38) / 2, 0.003 -> (0.95 + 1) / 2
    assert pages.chosen_rate(sweep[sweep.dataset == "diginetica"]) == 0.001
    assert pages.chosen_rate(sweep) == 0.003
    assert pages.chosen_rate(sweep[sweep.loss == "ce"].drop(columns=["dataset", "loss"]).iloc[:4]) == 0.001
    text = pages.rate_sentence(sweep)
    assert "on the Diginetica-like preset its best validation MRR@20, 0.2000, came at 0.001 (epoch 2; 0.1900 at 0.003)" in text
    assert "on the MeLi2020-like preset its best validation MRR@20, 0.1300, came at 0.003" in text
    assert "is 0.003." in text and "the best came at 0.003 (0.2100, epoch 2; 0.2100 at 0.003)" in text
