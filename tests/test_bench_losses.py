"""benchmarks/bench_losses.py runs, writes one row per configuration and N,
resumes, and skips what would not fit (memory, time, deadline) with a row
saying so. Tiny sizes only: the timings themselves belong to the benchmark."""
import csv
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_losses", ROOT / "benchmarks" / "bench_losses.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_smoke_run_resume_and_guards(tmp_path):
    bench = _bench()
    n_configs = len(bench.CONFIGS)
    out = tmp_path / "losses_smoke.csv"
    assert bench.main(["--smoke", "--items", "1000", "--out", str(out)]) == 0  # every configuration, one N
    rows = _rows(out)
    assert len(rows) == n_configs
    assert {(r["loss"], r["optimizer"], r["setting"]) for r in rows} == {c[:3] for c in bench.CONFIGS}
    for r in rows:
        assert r["status"] == "ok", r
        assert float(r["median_ms"]) > 0 and float(r["peak_rss_mb"]) > 0, r
        assert r["n_items"] == "1000" and r["repeats"] == "2" and r["batch"] == "128" and r["dim"] == "100"
        assert r["machine"] and r["torch"] and r["date"]
        assert float(r["loss_extra_mb"]) >= 0 and r["ratio_vs_ce"] and r["ratio_vs_ns_sparse_fast"]
    ce = next(r for r in rows if r["loss"] == "ce")
    ns = next(r for r in rows if (r["loss"], r["optimizer"], r["setting"]) == bench.NS_REF)
    assert float(ce["ratio_vs_ce"]) == 1.0 and float(ns["ratio_vs_ns_sparse_fast"]) == 1.0

    # resumable: measured rows are kept, not measured again (a past deadline would otherwise mark them "not run")
    before = out.read_text()
    assert bench.main(["--smoke", "--items", "1000", "--out", str(out), "--deadline", "1"]) == 0
    assert out.read_text() == before

    # the memory guard: nothing is launched, every row says what it would need
    capped = tmp_path / "capped_smoke.csv"
    assert bench.main(["--smoke", "--out", str(capped), "--ram-gb", "0.001"]) == 0
    rows = _rows(capped)
    assert len(rows) == 2 * n_configs
    assert all(r["status"].startswith("skipped: needs about") and not r["median_ms"] for r in rows), rows

    # the deadline: nothing is launched after it
    late = tmp_path / "late_smoke.csv"
    assert bench.main(["--smoke", "--out", str(late), "--deadline", "1"]) == 0
    rows = _rows(late)
    assert len(rows) == 2 * n_configs and all(r["status"] == "not run: past the deadline" for r in rows), rows

    # the time guard: a larger N is estimated from the measured (here: kept) smaller one, and skipped
    assert bench.main(["--smoke", "--losses", "ce", "--items", "1000", "2000", "--out", str(out),
                       "--max-seconds-per-config", "0.001"]) == 0
    rows = _rows(out)
    assert len(rows) == n_configs + 1
    large = next(r for r in rows if r["n_items"] == "2000")
    assert large["loss"] == "ce" and large["status"].startswith("skipped: would take about"), large
    assert next(r for r in rows if r["loss"] == "ce" and r["n_items"] == "1000")["status"] == "ok"


def test_estimates():
    bench = _bench()
    ce = bench.estimate_bytes("ce", "dense", {"l2": False}, 10_000_000, 128, 100)
    ns = bench.estimate_bytes("ns", "sparse_fast", {"l2": True}, 10_000_000, 128, 100)
    table = 10_000_001 * 100 * 4
    assert ce > 5 * table + 3 * 128 * 10_000_000 * 4 and 3 * table < ns < 4 * table
    prev = {"n_items": "1000", "median_ms": "100", "wall_s": "3.0"}  # 0.7 s of steps, 0.3 s of set-up
    ce_s = bench.estimate_seconds("ce", "dense", 10_000, prev, overhead=2.0, steps=7)
    ns_s = bench.estimate_seconds("ns", "sparse_fast", 10_000, prev, overhead=2.0, steps=7)
    assert abs(ce_s - (2.0 + 3.0 + 7.0)) < 1e-9  # set-up and steps both 10x
    assert 2.0 + 3.0 + 0.7 < ns_s < ce_s  # the sparse step grows slowly


def test_a_failed_configuration_is_recorded_and_the_run_goes_on(tmp_path, monkeypatch):
    bench = _bench()

    def fail(spec, timeout):
        if spec.loss == "ce":
            raise RuntimeError(f"benchmark of {spec} failed:\nTraceback (most recent call last):\nMemoryError: boom")
        if spec.loss == "cce":
            raise RuntimeError(f"benchmark of {spec} failed:\n")  # killed: no message
        return {"median_ms": 1.0, "min_ms": 1.0, "max_ms": 1.0, "peak_rss_mb": 400.0, "setup_mb": 380.0,
                "step_extra_mb": 20.0, "step_peak_exact": True}, 3.0

    monkeypatch.setattr(bench, "measure", fail)
    out = tmp_path / "failing_smoke.csv"
    assert bench.main(["--smoke", "--losses", "ce", "cce", "ns", "--out", str(out)]) == 0
    rows = {(r["loss"], r["setting"], r["n_items"]): r for r in _rows(out)}
    assert len(rows) == 2 * 4  # ce, cce, and the two ns settings, at two sizes
    assert rows["ce", "no L2", "1000"]["status"] == "error: MemoryError: boom"
    assert rows["ce", "no L2", "5000"]["status"] == "skipped: the same configuration failed at 1,000 items"
    assert rows["cce", "no L2", "1000"]["status"].startswith("error: the child process ended without a message")
    ns = rows["ns", "L2, k=100 uniform", "5000"]
    assert ns["status"] == "ok" and float(ns["ratio_vs_ns_sparse_fast"]) == 1.0 and ns["ratio_vs_ce"] == ""
