"""The official-GRU4Rec benchmark's data export and parameter string (no official code needed)."""
import importlib.util
from pathlib import Path

import numpy as np

from srs_core.data.dataset import Split

SPEC = importlib.util.spec_from_file_location("bench_official", Path(__file__).parents[1] / "benchmarks" / "bench_official.py")
bench = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(bench)


def test_sessions_are_written_in_order_with_their_next_click_count(tmp_path):
    split = Split(items=np.array([5, 3, 9, 2, 2, 7, 1]), offsets=np.array([0, 3, 5, 7]), times=np.zeros(7))
    n = bench.write_tsv(split, tmp_path / "t.tsv")
    rows = [line.split("\t") for line in (tmp_path / "t.tsv").read_text().splitlines()]
    assert rows[0] == ["SessionId", "ItemId", "Time"]
    assert [(int(s), int(i)) for s, i, _ in rows[1:]] == [(0, 5), (0, 3), (0, 9), (1, 2), (1, 2), (2, 7), (2, 1)]
    assert [int(t) for *_, t in rows[1:]] == sorted(int(t) for *_, t in rows[1:])  # time follows the click order
    assert n == 2 + 1 + 1  # every click after a session's first is predicted


def test_parameter_file_becomes_run_py_string_with_the_epochs_replaced(tmp_path):
    (tmp_path / "paramfiles").mkdir()
    (tmp_path / "paramfiles" / "p.py").write_text(
        "from collections import OrderedDict\n"
        "gru4rec_params = OrderedDict([('loss', 'cross-entropy'), ('layers', [480, 100]), ('n_epochs', 10), ('logq', 1.0)])\n")
    assert bench.official_params(tmp_path, "p.py", 3) == "loss=cross-entropy,layers=480/100,n_epochs=3,logq=1.0"


def test_epoch_and_metric_lines_of_the_official_output_are_read():
    m = bench.EPOCH_LINE.match("Epoch3 --> loss: 6.123456 \t(12.34s) \t[55.00 mb/s | 2640 e/s]")
    assert m and float(m.group(2)) == 12.34
    m = bench.METRIC_LINE.match("Recall@20: 0.549000 MRR@20: 0.264900")
    assert m and (float(m.group(1)), float(m.group(2))) == (0.549, 0.2649)
