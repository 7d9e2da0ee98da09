"""The calibration script's tables: rows kept from an earlier file, whole datasets at a time; the V-SKNN part."""
import importlib.util
from pathlib import Path

import pandas as pd
import pytest

SPEC = importlib.util.spec_from_file_location(
    "calibrate_synthetic", Path(__file__).parents[1] / "benchmarks" / "calibrate_synthetic.py")
calib = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(calib)


def _rows(dataset, commit, methods=("popularity", "vsknn")):
    return pd.DataFrame({"dataset": dataset, "method": list(methods), "mrr_at_20": [0.01, 0.2], "p_at_20": 0.3,
                         "seeds": 1, "epochs_run": 0, "n_items": 10, "commit": commit, "ratio_to_vsknn": [0.05, 1.0],
                         "data": calib.DATASETS[dataset], "machine": "m", "date": "d"})


def test_an_earlier_tables_datasets_stay_only_where_no_build_has_them():
    new = pd.concat([_rows("diginetica", "new"), _rows("yoochoose-100k", "new")])
    before = pd.concat([_rows("diginetica", "old"), _rows("diginetica-srgnn", "old")])
    merged = calib.with_kept(new, before)
    assert set(zip(merged.dataset, merged.commit)) == {("diginetica", "new"), ("yoochoose-100k", "new"),
                                                       ("diginetica-srgnn", "old")}
    assert len(merged) == 6 and list(merged.columns) == list(new.columns)


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
