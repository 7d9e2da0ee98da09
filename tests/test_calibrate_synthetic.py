"""The calibration script's table: rows kept from an earlier file, whole datasets at a time."""
import importlib.util
from pathlib import Path

import pandas as pd

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
