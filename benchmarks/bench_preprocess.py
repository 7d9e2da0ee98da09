"""Benchmark: preprocess a Yoochoose-sized raw click file (33M clicks) with fraction 1/4.

Target on the 2-core development machine: at most 5 minutes and 8 GB
peak RSS for ``srs preprocess --dataset yoochoose --fraction 1/4``.

1. A child process generates ~33M synthetic clicks (the ``yoochoose-1/4``
   preset stretched to the real log's 183 days, at the scale that gives the
   requested click count) and writes them in the ``yoochoose-clicks.dat``
   format (~1.4 GB).
2. A fresh child process runs :func:`srs_core.data.preprocess_file` on that
   file (read, steps 1-8 with fraction 1/4, sha256, atomic write) and reports
   its own wall time and peak RSS (``getrusage``), so the numbers are those
   of the preprocessing alone.

Prints a table and writes ``benchmarks/results/preprocess.csv``.

    python benchmarks/bench_preprocess.py                 # generate, then preprocess once
    python benchmarks/bench_preprocess.py --raw clicks.dat --repeats 3
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

OUT = Path(__file__).resolve().parent / "results" / "preprocess.csv"
LIMIT_S, LIMIT_GB = 300.0, 8.0

GENERATE = r"""
import json, resource, sys, time
from dataclasses import replace
from srs_core.data.synthetic import PRESETS, generate_events, write_raw
clicks, path = int(sys.argv[1]), sys.argv[2]
preset = replace(PRESETS["yoochoose-1/4"], span_days=183, start="2014-04-01")
t0 = time.perf_counter()
probe = len(generate_events(preset, 0.01, seed=0))  # clicks per 0.01 of scale
events = generate_events(preset, 0.01 * clicks / probe, seed=0)
t1 = time.perf_counter()
write_raw(events, path, fmt="yoochoose")
t2 = time.perf_counter()
print(json.dumps({"events": len(events), "generate_s": t1 - t0, "write_s": t2 - t1,
                  "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}))
"""

PREPROCESS = r"""
import json, resource, sys, time
from srs_core.data import ProcessedDataset, preprocess_file
t0 = time.perf_counter()
out = preprocess_file("yoochoose", sys.argv[1], sys.argv[2], fraction="1/4", quiet=True)
wall = time.perf_counter() - t0
print(json.dumps({"wall_s": wall, "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
                  "stats": ProcessedDataset.load(out).stats}))
"""


def child(code: str, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clicks", type=int, default=33_000_000, help="clicks to generate (default 33M)")
    ap.add_argument("--raw", type=Path, help="reuse this yoochoose-format file instead of generating one")
    ap.add_argument("--repeats", type=int, default=1, help="preprocessing runs (the median is reported)")
    ap.add_argument("--workdir", type=Path, help="where the raw file and outputs go (default: a temp dir)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        tmp = Path(tmp)
        rows = []
        raw = args.raw
        if raw is None:
            raw = tmp / "yoochoose-clicks.dat"
            print(f"generating {args.clicks:,} clicks -> {raw} ...", flush=True)
            gen = child(GENERATE, str(args.clicks), str(raw))
            rows.append({"step": "generate + write raw (not timed against the target)", "events": gen["events"],
                         "wall_s": gen["generate_s"] + gen["write_s"], "peak_rss_gb": gen["peak_rss_gb"]})
        size_gb = raw.stat().st_size / 1e9
        runs = []
        for r in range(args.repeats):
            print(f"preprocessing {raw.name} ({size_gb:.2f} GB), run {r + 1}/{args.repeats} ...", flush=True)
            runs.append(child(PREPROCESS, str(raw), str(tmp / f"processed-{r}")))
        wall = statistics.median(x["wall_s"] for x in runs)
        rss = max(x["peak_rss_gb"] for x in runs)
        rows.append({"step": f"preprocess_file yoochoose, fraction 1/4 (median of {len(runs)})",
                     "events": rows[0]["events"] if rows else "", "wall_s": wall, "peak_rss_gb": rss})

    stats = runs[-1]["stats"]
    print(f"\nraw file: {size_gb:.2f} GB, cpus: {os.cpu_count()}")
    print(f"{'step':62s} {'events':>12s} {'wall s':>8s} {'peak RSS GB':>12s}")
    for row in rows:
        ev = f"{row['events']:,}" if row["events"] != "" else ""
        print(f"{row['step']:62s} {ev:>12s} {row['wall_s']:8.1f} {row['peak_rss_gb']:12.2f}")
    ok = wall <= LIMIT_S and rss <= LIMIT_GB
    print(f"target: <= {LIMIT_S:.0f} s and <= {LIMIT_GB:.0f} GB -> {'met' if ok else 'MISSED'}")
    print("processed stats:", json.dumps(stats))

    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_csv = args.out.with_suffix(".csv.tmp")
    with open(tmp_csv, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["step", "events", "raw_gb", "wall_s", "peak_rss_gb", "limit_s",
                                           "limit_gb", "cpus"])
        w.writeheader()
        for row in rows:
            w.writerow({**row, "raw_gb": round(size_gb, 3), "wall_s": round(row["wall_s"], 2),
                        "peak_rss_gb": round(row["peak_rss_gb"], 3), "limit_s": LIMIT_S, "limit_gb": LIMIT_GB,
                        "cpus": os.cpu_count()})
    tmp_csv.replace(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
