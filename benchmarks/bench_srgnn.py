"""One training step of SR-GNN against STAMP (and GRU4Rec, NARM) on CPU.

A step is forward + full cross-entropy over every item + backward + a dense
Adam step, on the same batches for every model (batch 128, d = 100, 10k
items, session lengths 1..24). The target: SR-GNN costs at most 3x
STAMP. Timings are medians over repeats, after a warm-up, measured in one
run so that the ratio is fair on a noisy machine.

Floor, written before optimising (B = 128, L = 24 padded width, d = 100,
N = 10k): the part every model shares is the scoring, B*d*N = 128 MFLOP
multiply-adds forward, about 3x that with the backward, plus Adam reading
and writing 4 arrays of N*d floats (16 MB). SR-GNN adds, per node and per
step, H (d x 2d), the gate layer (2d x 3d) and U (d x 3d): 110k
multiply-adds; over B*L = 3072 nodes that is 0.34 G forward, ~1 G with the
backward, i.e. about 2-3x the shared part. So a ratio of roughly 2-3 is the
prediction when every session node is computed at the padded width; computing
only real nodes cuts the GNN part by the padding fraction.

Measured (2-core AMD EPYC, torch 2.13 CPU): SR-GNN / STAMP = 2.36 with
uniform lengths, 2.33 with geometric ones; graph construction is about
0.2 ms of the ~24 ms step, so the rest is the GNN's dense layers, as
predicted. A variant that packs the real nodes before the dense layers was
25% (uniform) to 40% (geometric) faster on CPU, but needs a host sync
(``nonzero``) and batch-dependent shapes, which hurt on a GPU; not kept.

    python benchmarks/bench_srgnn.py [--repeats 20] [--lengths uniform|geometric]
"""
from __future__ import annotations

import argparse
import csv
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from srs_core.losses import build_loss
from srs_core.models import MODELS, build_model
from srs_core.optim import build_optimizer
from srs_core.training.step import TrainStep

OUT = Path(__file__).parent / "results" / "srgnn_vs_stamp.csv"


def make_batches(n_batches, batch, n_items, max_len, lengths, seed=0):
    """Padded batches with popularity-skewed items (so sessions repeat items)."""
    rng = np.random.default_rng(seed)
    pop = 1.0 / np.arange(1, n_items + 1) ** 0.8
    pop /= pop.sum()
    out = []
    for _ in range(n_batches):
        if lengths == "uniform":
            lens = rng.integers(1, max_len, size=batch)
        else:  # geometric with mean ~5, like Yoochoose/Diginetica prefixes
            lens = np.minimum(rng.geometric(0.2, size=batch), max_len - 1)
        width = int(lens.max())
        items = rng.choice(n_items, size=(batch, width), p=pop) + 1
        items[np.arange(width)[None, :] >= lens[:, None]] = 0
        targets = rng.choice(n_items, size=batch, p=pop) + 1
        out.append(tuple(torch.from_numpy(a.astype(np.int64)) for a in (items, lens, targets)))
    return out


def time_model(name, batches, n_items, dim, warmup, repeats):
    """The training step itself: full cross-entropy over every item, dense Adam."""
    torch.manual_seed(0)
    model = build_model(name, n_items, dim=dim)
    step = TrainStep(model, build_loss("ce"), build_optimizer(model, "dense"), l2=False)

    for i in range(warmup):
        step(*batches[i % len(batches)])
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        step(*batches[i % len(batches)])
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--n-items", type=int, default=10_000)
    ap.add_argument("--dim", type=int, default=100)
    ap.add_argument("--max-len", type=int, default=25)
    ap.add_argument("--lengths", choices=["uniform", "geometric"], default="uniform")
    args = ap.parse_args()

    batches = make_batches(args.repeats, args.batch, args.n_items, args.max_len, args.lengths)
    rows = []
    # interleave rounds so that machine noise hits every model alike
    medians = {name: [] for name in MODELS}
    for _ in range(3):
        for name in MODELS:
            med, _ = time_model(name, batches, args.n_items, args.dim, args.warmup, args.repeats)
            medians[name].append(med)
    stamp = min(medians["stamp"])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, cpu_count={os.cpu_count()}")
    print(f"batch {args.batch}, d {args.dim}, items {args.n_items}, lengths {args.lengths} 1..{args.max_len - 1}")
    print(f"{'model':<8} {'step ms (best of 3 medians)':>28} {'x STAMP':>8}")
    for name in MODELS:
        best = min(medians[name])
        rows.append({"model": name, "step_ms": round(best * 1e3, 3), "ratio_to_stamp": round(best / stamp, 3),
                     "lengths": args.lengths, "batch": args.batch, "dim": args.dim, "n_items": args.n_items,
                     "repeats": args.repeats, "threads": torch.get_num_threads()})
        print(f"{name:<8} {best * 1e3:>28.2f} {best / stamp:>8.2f}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_suffix(".tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(OUT)
    ratio = rows[[r["model"] for r in rows].index("srgnn")]["ratio_to_stamp"]
    print(f"SR-GNN / STAMP = {ratio:.2f} (target <= 3): {'met' if ratio <= 3 else 'NOT met'}; wrote {OUT}")


if __name__ == "__main__":
    main()
