"""The notebooks' regression references: a tolerance that holds across CPUs
and still catches a real regression (notebooks/README.md)."""
import json
import re

import pandas as pd
import pytest

from srs_core.stats import THRESHOLDS
from srs_core.publish import reference as ref


@pytest.fixture
def written(tmp_path, monkeypatch):
    runs = pd.DataFrame({"model": ["stamp", "srgnn"], "seed": [0, 0], "mrr_at_20": [0.2141, 0.3050],
                         "p_at_20": [0.42, 0.61]})
    monkeypatch.setenv(ref.WRITE_ENV, "1")
    ref.check_metrics("nb", runs, ["model", "seed"], params={"lr": 0.001}, reference_dir=tmp_path)
    monkeypatch.delenv(ref.WRITE_ENV)
    return runs, tmp_path


def test_the_reference_holds_the_metrics_and_parameters(written):
    runs, folder = written
    doc = json.loads((folder / "nb.json").read_text())
    assert doc["params"] == {"lr": 0.001} and doc["tolerance"] == ref.TOLERANCE
    assert doc["rows"]["stamp | 0"] == {"mrr_at_20": 0.2141, "p_at_20": 0.42}


def test_a_4th_decimal_difference_passes_and_prints_no_metric(written, capsys):
    runs, folder = written
    moved = runs.assign(mrr_at_20=runs.mrr_at_20 - 0.0001)  # what another CPU's rounding does
    line = ref.check_metrics("nb", moved, ["model", "seed"], params={"lr": 0.001}, reference_dir=folder)
    assert line == f"nb: 2 runs, mrr_at_20, p_at_20 within {ref.TOLERANCE} of notebooks/reference/nb.json"
    assert "0.214" not in capsys.readouterr().out


@pytest.mark.parametrize("delta", [0.01, -0.01, 0.0051])
def test_a_real_regression_fails_and_names_the_run(written, delta):
    runs, folder = written
    moved = runs.assign(mrr_at_20=runs.mrr_at_20 + [delta, 0.0])
    with pytest.raises(AssertionError, match=re.escape("stamp | 0: mrr_at_20 = ") + ".* reference 0.2141"):
        ref.check_metrics("nb", moved, ["model", "seed"], params={"lr": 0.001}, reference_dir=folder)


def test_a_missing_or_extra_run_fails(written):
    runs, folder = written
    with pytest.raises(AssertionError, match=re.escape("missing run: srgnn | 0")):
        ref.check_metrics("nb", runs.iloc[:1], ["model", "seed"], params={"lr": 0.001}, reference_dir=folder)
    extra = pd.concat([runs, runs.iloc[:1].assign(seed=1)])
    with pytest.raises(AssertionError, match=re.escape("run not in the reference: stamp | 1")):
        ref.check_metrics("nb", extra, ["model", "seed"], params={"lr": 0.001}, reference_dir=folder)


def test_other_parameters_are_not_compared(written):
    runs, folder = written
    line = ref.check_metrics("nb", runs.assign(mrr_at_20=0.9), ["model", "seed"], params={"lr": 0.01},
                             reference_dir=folder)
    assert line == "nb: parameters differ from the reference's (lr); metrics not compared"


def test_rows_must_be_named_once(tmp_path):
    runs = pd.DataFrame({"model": ["stamp", "stamp"], "mrr_at_20": [0.1, 0.2], "p_at_20": [0.1, 0.2]})
    with pytest.raises(ValueError, match="do not name each row once"):
        ref.check_metrics("nb", runs, ["model"], params={}, reference_dir=tmp_path)


@pytest.mark.parametrize("ratios, word", [
    ([1.577], "beats"), ([0.614], "beats"),                # far from 0.97, 1 and 1.03
    ([1.04], "(near a threshold)"), ([0.96], "(near a threshold)"), ([1.005], "(near a threshold)"),
    ([1.5, 1.01], "(near a threshold)"),                    # one of several settings is close
    ([float("nan")], "(near a threshold)"),
])
def test_a_verdict_word_is_checked_only_far_from_its_thresholds(ratios, word):
    assert ref.settled_word("beats", ratios, THRESHOLDS) == word
