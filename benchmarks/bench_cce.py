"""Benchmark: full cross-entropy with and without the [B, N] logits (issue 18).

For ``ce`` (``F.cross_entropy`` on the logits) and ``cce`` (the same loss in
item chunks, :class:`srs_core.losses.ChunkedCrossEntropy`), a fresh child
process builds an item table of N x d, allocates its gradient, then runs
forward + backward of the loss for one batch and reports:

* the loss's extra peak memory: peak RSS during the step minus the RSS
  before it (the table and its gradient are already allocated, so what is
  left is what the loss itself holds: logits, softmax, their gradient);
* the median step time over ``--repeats`` steps.

Both are measured in one run, so the ratio is what matters. Writes
``benchmarks/results/cce.csv``.

    python benchmarks/bench_cce.py --items 1280000 --batch 128
"""
from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "results" / "cce.csv"

CHILD = r"""
import json, resource, statistics, sys, time
import torch
from torch import nn
from srs_core.losses import build_loss
loss_name, n, batch, dim, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
torch.manual_seed(0)
emb = nn.Embedding(n + 1, dim)
emb.weight.grad = torch.zeros_like(emb.weight)
s = torch.randn(batch, dim, requires_grad=True)
targets = torch.randint(1, n + 1, (batch,))
loss_fn = build_loss(loss_name)
def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
before = rss_mb()
times = []
for _ in range(repeats):
    t0 = time.perf_counter()
    loss = loss_fn.compute(s, targets, emb, None, False)
    loss.backward()
    times.append(time.perf_counter() - t0)
print(json.dumps({"loss": loss_name, "value": float(loss.detach()), "extra_peak_mb": rss_mb() - before,
                  "median_ms": 1000 * statistics.median(times)}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=1_280_000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--dim", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rows = []
    for loss in ("ce", "cce"):
        out = subprocess.run([sys.executable, "-c", CHILD, loss, str(args.items), str(args.batch), str(args.dim),
                              str(args.repeats)], capture_output=True, text=True, check=True)
        rows.append({"items": args.items, "batch": args.batch, "dim": args.dim, **json.loads(out.stdout)})
    ce, cce = rows
    for r in rows:
        r["memory_vs_ce"] = round(r["extra_peak_mb"] / ce["extra_peak_mb"], 4)
        r["time_vs_ce"] = round(r["median_ms"] / ce["median_ms"], 3)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with open(OUT, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    for r in rows:
        print(r)
    print(f"same loss value: {abs(ce['value'] - cce['value']) < 1e-4} ({ce['value']:.6f} vs {cce['value']:.6f})")


if __name__ == "__main__":
    main()
