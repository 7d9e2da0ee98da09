"""Benchmark: fit + evaluate every baseline (popularity, transition, sr, ar, sknn, vsknn).

Targets (2-core CPU): on the shared yoochoose-100k dev sample, fit +
evaluate under 30 s; on Yoochoose-1/4 scale (synthetic preset at scale 1.0)
under 10 minutes and 8 GB; and "well under a minute" for each baseline on the
book's synthetic presets (``params/default.yaml`` scales, plus
``yoochoose-1/64`` at scale 1.0: 17.5k items, 117k train sessions, the
largest size the book is meant to run).

Floor, written before measuring: sknn and vsknn touch, per test sample, at
most ``sample_size`` candidate sessions of ~4.5 items each (5k item look-ups
for V-SKNN's 1,000 candidates), plus their sort; at some 10-50 ns per
element-operation in numpy and ~10 passes, that is 0.5-2.5 ms per sample, so
150k test samples (Yoochoose-1/4) take 1-6 minutes. Rules and transitions
cost a row lookup per sample; fitting is a few sorts of the train pairs.

Each (dataset, baseline) runs in a fresh child process, which reports its
fit and evaluation wall time and its peak RSS (``getrusage``); the median
over ``--repeats`` is reported. Prints a table and writes
``benchmarks/results/baselines.csv``.

    python benchmarks/bench_baselines.py                      # everything (about 15 minutes)
    python benchmarks/bench_baselines.py --skip-large --repeats 3
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "baselines.csv"
RAW_100K = ROOT.parent / "shared" / "data" / "yoochoose-100k-dev" / "yoochoose-clicks.dat"
NAMES = ("popularity", "transition", "sr", "ar", "sknn", "vsknn")

RUN = r"""
import json, resource, sys, time
from srs_core.baselines import baseline_ranks, make_baseline
from srs_core.data.dataset import ProcessedDataset
from srs_core.metrics import metrics_from_ranks
import torch
t0 = time.perf_counter()
data = ProcessedDataset.load(sys.argv[1])
model = make_baseline(sys.argv[2]).fit(data.train, data.n_items)
t1 = time.perf_counter()
ranks = baseline_ranks(model, data.test, data.n_items)
t2 = time.perf_counter()
m = metrics_from_ranks(torch.from_numpy(ranks))
print(json.dumps({"fit_s": t1 - t0, "eval_s": t2 - t1, "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
                  **m, "stats": data.stats}))
"""


def child(code: str, *args: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    done = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def row_rss(runs: list[dict]) -> float:
    return max(r["peak_rss_gb"] for r in runs)


def machine() -> str:
    from srs_core.training.runtime import machine_name

    return f"{machine_name('cpu')} ({os.cpu_count()} cpus)"


PREPARE = r"""
import json, sys
from pathlib import Path
from srs_core.data.preprocess import preprocess_file
from srs_core.data.synthetic import synthesize
kind, name, scale, out = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
if kind == "raw":
    d = preprocess_file("yoochoose", name, out, test_days=1, quiet=True)
else:
    d = synthesize(name, scale, 0, out, quiet=True)
print(json.dumps({"path": str(d)}))
"""


def prepare(tmp: Path, args) -> list[tuple[str, Path, float, float]]:
    """``(label, processed dir, target seconds, target GB)`` of every dataset to run, each made in a child
    process (a child's peak RSS includes its parent's at the fork, so the parent stays small)."""
    out = []
    if args.raw_100k.is_file():
        d = child(PREPARE, "raw", str(args.raw_100k), "0", str(tmp / "yc100k"))["path"]
        out.append(("yoochoose-100k dev sample (real)", Path(d), 30.0, float("nan")))
    else:
        print(f"skipping the real dev sample: {args.raw_100k} is absent", flush=True)
    scales = yaml.safe_load((ROOT / "params" / "default.yaml").read_text())["scale"]
    book = [(name, scale) for name, scale in scales.items()] + [("yoochoose-1/64", 1.0)]
    for name, scale in book:
        d = child(PREPARE, "synth", name, str(scale), str(tmp / f"{name.replace('/', '-')}-{scale}"))["path"]
        out.append((f"synthetic {name} x{scale:g} (book)", Path(d), 60.0, float("nan")))
    if not args.skip_large:
        d = child(PREPARE, "synth", "yoochoose-1/4", str(args.large_scale), str(tmp / "yc14-large"))["path"]
        out.append((f"synthetic yoochoose-1/4 x{args.large_scale:g}", Path(d), 600.0, 8.0))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--names", default=",".join(NAMES), help="baselines to run (comma-separated)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per small case (the median is reported)")
    ap.add_argument("--large-repeats", type=int, default=1, help="runs per baseline at Yoochoose-1/4 scale")
    ap.add_argument("--large-scale", type=float, default=1.0, help="scale of the yoochoose-1/4 preset (1.0: full)")
    ap.add_argument("--skip-large", action="store_true", help="leave out the Yoochoose-1/4-scale case")
    ap.add_argument("--raw-100k", type=Path, default=RAW_100K, help="raw yoochoose-100k dev sample")
    ap.add_argument("--workdir", type=Path, help="where datasets are written (default: a temp dir)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    names = [n for n in args.names.split(",") if n]
    bad = sorted(set(names) - set(NAMES))
    if bad:
        raise SystemExit(f"unknown baseline(s) {bad}: choose from {', '.join(NAMES)}")

    rows = []
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        for label, path, target_s, target_gb in prepare(Path(tmp), args):
            repeats = args.large_repeats if target_s >= 600 else args.repeats
            for name in names:
                runs = [child(RUN, str(path), name) for _ in range(repeats)]
                st = runs[0]["stats"]
                total = statistics.median(r["fit_s"] + r["eval_s"] for r in runs)
                row = {"dataset": label, "n_items": st["n_items"], "n_train_sessions": st["n_train_sessions"],
                       "n_test_samples": st["n_test_samples"], "baseline": name, "repeats": repeats,
                       "fit_s": round(statistics.median(r["fit_s"] for r in runs), 3),
                       "eval_s": round(statistics.median(r["eval_s"] for r in runs), 3),
                       "total_s": round(total, 3), "peak_rss_gb": round(row_rss(runs), 3),
                       "p_at_20": round(runs[0]["p_at_20"], 4), "mrr_at_20": round(runs[0]["mrr_at_20"], 4),
                       "target_s": target_s, "target_gb": target_gb,
                       "met": total <= target_s and not row_rss(runs) > target_gb,
                       "machine": machine(), "date": when}
                rows.append(row)
                print(f"{label:42s} {name:10s} fit {row['fit_s']:7.2f}s eval {row['eval_s']:7.2f}s "
                      f"total {row['total_s']:7.2f}s (target {target_s:.0f}s) rss {row['peak_rss_gb']:5.2f} GB "
                      f"P@20 {row['p_at_20']:.4f} MRR@20 {row['mrr_at_20']:.4f} {'ok' if row['met'] else 'MISSED'}",
                      flush=True)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_csv = args.out.with_suffix(".csv.tmp")
    with open(tmp_csv, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    tmp_csv.replace(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
