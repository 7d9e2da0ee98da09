"""Benchmark: opening a processed dataset, with and without its self-check.

:meth:`srs_core.data.dataset.ProcessedDataset.load` checks every array
(dtype, shape, offsets, item range), ``stats.json`` and the content sha256.
This times it against the bare memory-mapped ``np.load`` of the same files,
on the largest synthetic preset (MeLi 2020; ``--scale 1`` is its full 1.28M
items), in one run. Prints a table and writes ``benchmarks/results/load.csv``.

    python benchmarks/bench_load.py --scale 0.25
"""
from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from srs_core.data.dataset import ProcessedDataset
from srs_core.data.synthetic import synthesize

OUT = Path(__file__).resolve().parent / "results" / "load.csv"


def bare(path: Path) -> int:
    n = 0
    for split in ("train", "valid", "test"):
        if (path / f"{split}_items.npy").is_file():
            for part in ("items", "offsets", "times"):
                n += len(np.load(path / f"{split}_{part}.npy", mmap_mode="r"))
    return n


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm the page cache
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="meli2020")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        path = synthesize(args.preset, args.scale, 0, Path(tmp) / "d", quiet=True)
        made = time.perf_counter() - t0
        ds = ProcessedDataset.load(path)
        size = sum(p.stat().st_size for p in path.glob("*.npy"))
        checked = median_seconds(lambda: ProcessedDataset.load(path), args.repeats)
        unchecked = median_seconds(lambda: bare(path), args.repeats)
    row = {"preset": args.preset, "scale": args.scale, "n_items": ds.n_items,
           "n_events": int(len(ds.train.items) + len(ds.test.items) + (0 if ds.valid is None else len(ds.valid.items))),
           "array_mb": round(size / 2**20, 1), "synth_s": round(made, 1), "load_checked_s": round(checked, 4),
           "load_bare_s": round(unchecked, 4), "ratio": round(checked / unchecked, 1)}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with open(OUT, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(row))
        w.writeheader()
        w.writerow(row)
    for k, v in row.items():
        print(f"{k:>16}: {v}")


if __name__ == "__main__":
    main()
