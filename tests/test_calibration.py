"""The data chapter's calibration tables and sentences, on hand-made rows."""
from __future__ import annotations

import pandas as pd
import pytest

from srs_core import calibration as cal


def _calibration(preset_mrr):
    rows = []
    for data, values in (("real split", (0.002, 0.13, 0.15, 0.18)), ("Diginetica-like preset", preset_mrr)):
        for method, mrr in zip(("popularity", "transition", "stamp, cross-entropy", "vsknn"), values):
            rows.append({"data": data, "method": method, "mrr_at_20": mrr, "p_at_20": 2 * mrr,
                         "ratio_to_vsknn": mrr / values[-1]})
    return pd.DataFrame(rows)


def test_the_calibration_table_sets_the_preset_beside_the_real_split_and_says_where_the_order_differs():
    table, sentence = cal.calibration(_calibration((0.03, 0.19, 0.21, 0.24)))
    assert list(table.index) == ["popularity", "transition", "STAMP, cross-entropy", "V-SKNN"]
    assert table.loc["V-SKNN", ("Diginetica split (real)", "÷ V-SKNN")] == "1.00"
    assert table.loc["transition", ("Diginetica-like preset", "MRR@20")] == "0.1900"
    assert "exactly as the real split" in sentence
    # ratios to V-SKNN: real 0.011, 0.72, 0.83, 1; preset 0.125, 0.79, 0.88, 1
    assert "within 0.11 of the split's (median 0.06, largest for popularity)" in sentence, sentence
    assert "on P@20 the rank correlation of the two orders is 1.00." in sentence
    _, swapped = cal.calibration(_calibration((0.03, 0.22, 0.21, 0.24)))
    assert "1 pair in the other order" in swapped and "STAMP (cross-entropy) above transition" not in swapped
    assert "(on the preset transition above STAMP (cross-entropy); the real split has" in swapped, swapped
    # real ratios 0.72 and 0.83: the split's margin in the swapped pair, in V-SKNN's MRR@20
    assert "it the other way round, by 0.11 of V-SKNN's MRR@20)" in swapped, swapped
    _, far = cal.calibration(_calibration((0.03, 0.25, 0.21, 0.24)))  # transition now above two methods, named once
    assert "2 pairs in the other order (on the preset transition above STAMP (cross-entropy) and V-SKNN;" in far, far
    assert "by at most 0.28 of V-SKNN's MRR@20" in far, far  # transition 0.72 below V-SKNN's 1 on the split


def test_each_real_dataset_gets_its_own_table_beside_its_preset():
    dig = _calibration((0.03, 0.19, 0.21, 0.24))
    yoo = _calibration((0.1, 0.3, 0.28, 0.35)).replace({"data": {"real split": "yoochoose-100k sample",
                                                                 "Diginetica-like preset": "Yoochoose 1/64-like preset"}})
    both = pd.concat([yoo, dig])
    assert cal.calibration_pairs(both) == ["real split", "yoochoose-100k sample"]
    assert cal.calibration_pairs(dig) == ["real split"]
    assert cal.calibration_pairs(yoo[yoo.data != "Yoochoose 1/64-like preset"]) == []  # a real column alone is no pair
    table, sentence = cal.calibration(both, "yoochoose-100k sample")
    assert [h for h, _ in table.columns][::3] == ["yoochoose-100k (real)", "Yoochoose 1/64-like preset"]
    assert table.loc["transition", ("Yoochoose 1/64-like preset", "MRR@20")] == "0.3000"  # not the Diginetica rows
    assert "transition above STAMP (cross-entropy)" in sentence and "the real sample has it" in sentence
    assert "split" not in sentence


def test_the_builds_line_names_each_side_of_a_pair_with_its_commits_date_and_machine():
    dig = _calibration((0.03, 0.19, 0.21, 0.24)).assign(commit="abc1234", date="2026-12-07", machine="AMD EPYC, 2 cores")
    dig.loc[(dig.data == "real split") & (dig.method == "vsknn"), "commit"] = "0ff1ce0"
    yoo = dig.replace({"data": {"real split": "yoochoose-100k sample",
                                "Diginetica-like preset": "Yoochoose 1/64-like preset"}}).assign(commit="9999999")
    line = cal.calibration_builds(pd.concat([dig, yoo]), "real split")
    assert line == ("Read from the default profile's runs (Diginetica-like preset: commit abc1234, 2026-12-07; "
                    "real split: commit 0ff1ce0, abc1234, 2026-12-07; AMD EPYC, 2 cores).")


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
    assert cal.chosen_rate(sweep[sweep.dataset == "diginetica"]) == 0.001
    assert cal.chosen_rate(sweep) == 0.003
    assert cal.chosen_rate(sweep[sweep.loss == "ce"].drop(columns=["dataset", "loss"]).iloc[:4]) == 0.001
    text = cal.rate_sentence(sweep)
    assert "on the Diginetica-like preset its best validation MRR@20, 0.2000, came at 0.001 (epoch 2; 0.1900 at 0.003)" in text
    # a best at the chosen rate is not repeated as the chosen rate's score
    assert "on the MeLi2020-like preset its best validation MRR@20, 0.1300, came at 0.003 (epoch " in text
    assert "0.1300 at 0.003" not in text
    assert "is 0.003." in text and "the best came at 0.003 (0.2100, epoch 2)." in text


def _knn(real_mrr, preset_mrr):
    return pd.DataFrame([{"data": data, "variant": v, "mrr_at_20": m, "commit": "abc1234", "date": "2026-12-07",
                          "machine": "test cpu, 2 cores"}
                         for data, values in (("real split", real_mrr), ("Diginetica-like preset", preset_mrr))
                         for v, m in zip(cal.KNN_VARIANTS, values)])


def test_the_knn_table_takes_v_sknn_apart_on_both_sides_and_says_which_way_each_removal_goes():
    # order: V-SKNN, no IDF, no position weights, no step discount, SKNN
    table, sentence = cal.knn_refinements(_knn((0.18, 0.176, 0.177, 0.178, 0.170), (0.18, 0.187, 0.19, 0.194, 0.2)))
    assert list(table.index) == [label for label, _, _ in cal.KNN_VARIANTS.values()]
    assert table.loc["V-SKNN", ("Diginetica split (real)", "÷ V-SKNN")] == "1.000"
    assert table.loc["SKNN (none of the three; cosine similarity)", ("Diginetica-like preset", "÷ V-SKNN")] == "1.111"
    assert "on the real split each removal lowers MRR@20 (by 1.1-2.2%)" in sentence, sentence
    assert "on the preset each removal raises it (by 3.9-7.8%)" in sentence, sentence
    assert "reaches 1.11 of V-SKNN's MRR@20 there, against 0.94 on the split." in sentence, sentence


def test_the_knn_sentence_draws_no_conclusion_where_the_preset_behaves_as_the_split():
    _, sentence = cal.knn_refinements(_knn((0.18, 0.176, 0.177, 0.178, 0.170), (0.18, 0.175, 0.178, 0.182, 0.17)))
    assert "on the preset 2 removals lower it and 1 raises it." in sentence, sentence
    assert "older clicks" not in sentence and "SKNN" not in sentence.split(":", 1)[1]


def test_the_knn_sentence_names_the_measure_in_its_first_clause_whichever_way_it_goes():
    _, sentence = cal.knn_refinements(_knn((0.18, 0.176, 0.18, 0.182, 0.170), (0.18, 0.187, 0.19, 0.194, 0.2)))
    assert "on the real split 1 removal lowers MRR@20, 1 raises it and 1 leaves it as it was;" in sentence, sentence
    assert "on the preset each removal raises it" in sentence and "older clicks" not in sentence


def test_the_knn_table_refuses_a_file_without_both_sides():
    with pytest.raises(ValueError, match="--knn"):
        cal.knn_refinements(_knn((0.18,) * 5, (0.18,) * 5).query("data == 'real split'"))


def test_a_commit_that_looks_like_a_number_is_read_as_text(tmp_path):
    path = tmp_path / "calibration_knn.csv"
    _knn((0.18,) * 5, (0.19,) * 5).assign(commit="46919e0").to_csv(path, index=False)
    line = cal.calibration_builds(cal.read(path), "real split", "Measured")
    assert "commit 46919e0, 2026-12-07" in line, line


def _two_scales():
    small = _calibration((0.03, 0.19, 0.25, 0.24)).assign(scale=0.03, n_items=3288, commit="aaa1111")
    large = _calibration((0.02, 0.18, 0.23, 0.25)).assign(scale=0.1, n_items=11039, commit="bbb2222")
    real = small.data == "real split"
    small.loc[real, ["scale", "n_items"]] = (1.0, 43097)
    return pd.concat([small, large[large.data != "real split"]]).assign(date="2026-12-07", machine="m")


def test_the_preset_at_each_scale_gets_its_own_table_with_the_catalogue_sizes_in_its_headers():
    both = _two_scales()
    assert cal.preset_scales(both, "real split") == [0.03, 0.1]
    assert cal.preset_scales(_calibration((0.03, 0.19, 0.21, 0.24)), "real split") == [None]
    small, said_small = cal.calibration(both)  # the smallest scale unless told
    large, said_large = cal.calibration(both, scale=0.1)
    assert [h for h, _ in large.columns][::3] == ["Diginetica split (real, 43,097 items)",
                                                  "Diginetica-like preset (11,039 items)"]
    assert small.loc["transition", ("Diginetica-like preset (3,288 items)", "MRR@20")] == "0.1900"
    assert large.loc["transition", ("Diginetica-like preset (11,039 items)", "MRR@20")] == "0.1800"
    assert said_small.startswith("On MRR@20 the preset at 3,288 items keeps the real split's order"), said_small
    assert said_large.startswith("On MRR@20 the preset at 11,039 items orders all 4 methods exactly"), said_large
    assert cal.calibration_builds(both, "real split", scale=0.1) == (
        "Read from the default profile's runs (Diginetica-like preset: commit bbb2222, 2026-12-07; "
        "real split: commit aaa1111, 2026-12-07; m).")


def test_the_scale_sentence_says_how_the_ratios_move_from_the_smaller_preset_to_the_larger():
    said = cal.scale_sentence(_two_scales())
    # ratios to V-SKNN: STAMP 0.25 / 0.24 -> 0.23 / 0.25; transition 0.79 -> 0.72; popularity 0.125 -> 0.08
    assert said == ("From 3,288 to 11,039 items the preset's ratios to V-SKNN's MRR@20 move for the neural models "
                    "STAMP (cross-entropy) from 1.04 to 0.92; the other methods' by at most 0.07 (transition)."), said
    assert cal.scale_sentence(_calibration((0.03, 0.19, 0.21, 0.24))) == ""
