"""The calibration script's tables: rows kept from an earlier file, whole datasets at a time; the V-SKNN part."""
import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest

SPEC = importlib.util.spec_from_file_location(
    "calibrate_synthetic", Path(__file__).parents[1] / "benchmarks" / "calibrate_synthetic.py")
calib = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(calib)
order = sys.modules["calibration_order"]  # the order table's part, which the script imports


def _rows(dataset, commit, methods=("popularity", "vsknn"), scale=1.0):
    return pd.DataFrame({"dataset": dataset, "scale": scale, "method": list(methods), "mrr_at_20": [0.01, 0.2],
                         "p_at_20": 0.3, "seeds": 1, "epochs_run": 0, "n_items": 10, "commit": commit,
                         "ratio_to_vsknn": [0.05, 1.0], "data": calib.DATASETS[dataset], "machine": "m", "date": "d"})


def test_an_earlier_tables_datasets_stay_only_where_no_build_has_them():
    new = pd.concat([_rows("diginetica", "new", scale=0.03), _rows("yoochoose-100k", "new")])
    before = pd.concat([_rows("diginetica", "old", scale=0.03), _rows("diginetica", "old", scale=0.1),
                        _rows("diginetica-srgnn", "old")])
    merged = order.with_kept(new, before)
    # a preset at another scale is another table: its rows stay beside the new ones at the book's scale
    assert set(zip(merged.dataset, merged.scale, merged.commit)) == {
        ("diginetica", 0.03, "new"), ("yoochoose-100k", 1.0, "new"), ("diginetica", 0.1, "old"),
        ("diginetica-srgnn", 1.0, "old")}
    assert len(merged) == 8 and list(merged.columns) == list(new.columns)


def test_a_file_from_before_scales_were_recorded_is_read_at_the_default_profiles_scales():
    old = pd.concat([_rows("diginetica", "old"), _rows("yoochoose-1-64", "old"),
                     _rows("diginetica-srgnn", "old")]).drop(columns="scale")
    scales = calib.load_profile("default")["scale"]
    read = order.with_scales(old).groupby("dataset").scale.first()
    assert read.to_dict() == {"diginetica": scales["diginetica"], "yoochoose-1-64": scales["yoochoose-1/64"],
                              "diginetica-srgnn": 1.0}


def test_the_order_table_keeps_each_scale_of_a_preset_apart(tmp_path, monkeypatch):
    from srs_core import experiments as ex

    works = {}
    for scale, mrr in ((0.03, (0.02, 0.2)), (0.1, (0.01, 0.25))):
        work = tmp_path / f"work-{scale}"
        ex.dataset_dir(work, "diginetica").mkdir(parents=True)
        (ex.dataset_dir(work, "diginetica") / "recipe.json").write_text(
            f'{{"name": "diginetica", "raw_path": null, "scale": {scale}, "seed": 0}}')
        works[work] = pd.DataFrame({"dataset": "diginetica", "kind": "baseline", "model": ["popularity", "vsknn"],
                                    "mrr_at_20": mrr, "p_at_20": 0.3, "seed": 0, "epochs_run": 0, "n_items": 10})
    monkeypatch.setattr(ex, "all_results", lambda work: works[Path(work)])
    monkeypatch.setattr(order, "commit", lambda where=None: "abc1234")
    table = order.order_table(list(works)).set_index(["scale", "method"])
    assert table.loc[(0.03, "vsknn"), "mrr_at_20"] == 0.2 and table.loc[(0.1, "vsknn"), "mrr_at_20"] == 0.25
    assert table.loc[(0.1, "popularity"), "ratio_to_vsknn"] == pytest.approx(0.04)  # over its own scale's V-SKNN
    assert order.data_scale(tmp_path / "nowhere", "diginetica") == 1.0


def test_train_makes_the_named_presets_at_the_scale_given(monkeypatch, tmp_path):
    from srs_core import experiments as ex

    made = {}
    monkeypatch.setattr(ex, "prepare_dataset", lambda into, name, *, scale, **kw: made.__setitem__(name, scale))
    for step in ("run_baselines", "run_grid", "configs", "with_fields"):
        monkeypatch.setattr(ex, step, lambda *a, **kw: [])
    calib.train(["diginetica"], tmp_path, 0.1)
    calib.train(["meli2020"], tmp_path)
    assert made == {"diginetica": 0.1, "meli2020": calib.load_profile("default")["scale"]["meli2020"]}


def test_every_pair_the_book_shows_is_a_pair_the_script_writes():
    from srs_core.calibration import CALIBRATION_PAIRS

    labels = set(calib.DATASETS.values())
    assert len(labels) == 2 * len(CALIBRATION_PAIRS)
    for real, (preset, _header) in CALIBRATION_PAIRS.items():
        assert {real, preset} <= labels


def _small_profile(monkeypatch, raw):
    profile = calib.load_profile("default")
    profile = {**profile, "scale": {**profile["scale"], "diginetica": 0.005}, "raw_paths": raw}
    monkeypatch.setattr(calib, "load_profile", lambda name: profile)


def test_the_knn_part_measures_the_preset_and_keeps_the_real_rows_when_the_file_is_absent(monkeypatch, capsys):
    from srs_core.calibration import KNN_VARIANTS, knn_refinements

    _small_profile(monkeypatch, {"diginetica-srgnn": "no/such/split"})
    kept = pd.DataFrame({"dataset": "diginetica-srgnn", "data": "real split", "variant": list(KNN_VARIANTS),
                         "mrr_at_20": [0.18, 0.17, 0.175, 0.176, 0.168], "p_at_20": 0.4, "params": "{}",
                         "n_items": 43097, "machine": "m", "date": "d", "commit": "old"})
    table = calib.knn(kept)
    assert "its rows of the current file stay" in capsys.readouterr().out
    preset = table[table.dataset == "diginetica"]
    assert list(preset.variant) == list(KNN_VARIANTS) and (preset.commit != "old").all()
    assert (preset.mrr_at_20 > 0).all() and '"weighting": "same"' in preset.set_index("variant").params["no_position"]
    assert (table[table.dataset == "diginetica-srgnn"].commit == "old").all()
    knn_refinements(table)  # the page reads what the script writes


def test_the_knn_part_stops_without_the_real_file_and_nothing_to_keep(monkeypatch):
    _small_profile(monkeypatch, {"diginetica-srgnn": "no/such/split"})
    with pytest.raises(SystemExit, match="--knn needs it"):
        calib.knn(None)
