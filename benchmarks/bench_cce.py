"""Benchmark: full cross-entropy with and without the [B, N] logits.

For ``ce`` (``F.cross_entropy`` on the logits) and ``cce`` (the same loss in
item chunks, :class:`srs_core.losses.ChunkedCrossEntropy`), a fresh child
process builds an item table of N x d and runs forward + backward of the loss
for one batch ``--repeats`` times. Before each step the table's gradient is
set to None, as ``srs train`` does (``zero_grad(set_to_none=True)``), so the
gradient autograd returns becomes ``.grad`` without a copy. It reports:

* ``extra_peak_mb``: peak RSS during the steps minus the RSS before them;
* ``grad_mb``: the table's gradient (N x d float32), which the dense
  optimizer needs whatever the loss, and which both losses end up holding;
* ``loss_extra_mb = extra_peak_mb - grad_mb``: what the loss itself holds
  (logits, softmax and their gradient for ``ce``, and the table-sized
  gradient of its slice; chunk buffers for ``cce``): the "peak
  memory for the loss";
* the median step time, and the loss value (equal for both; the gradients
  are checked equal to 1e-5 in ``tests/test_recent_losses.py``).

Both are measured in one run, so the ratios are what matters. Writes
``benchmarks/results/cce.csv``.

    python benchmarks/bench_cce.py --items 1280000 --batch 128
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from srs_core.bench import machine  # noqa: E402
from srs_core.results import atomic_write_bytes  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "cce.csv"

CHILD = r"""
import json, resource, statistics, sys, time
import torch
from torch import nn
from srs_core.losses import ChunkedCrossEntropy, build_loss
loss_name, n, batch, dim, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
if int(sys.argv[6]):
    ChunkedCrossEntropy.chunk = int(sys.argv[6])
torch.manual_seed(0)
emb = nn.Embedding(n + 1, dim)
s = torch.randn(batch, dim, requires_grad=True)
targets = torch.randint(1, n + 1, (batch,))
loss_fn = build_loss(loss_name)
def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
before = rss_mb()
times = []
for _ in range(repeats):
    emb.weight.grad = None  # as zero_grad(set_to_none=True) in srs train
    t0 = time.perf_counter()
    loss = loss_fn.compute(s, targets, emb, None, False)
    loss.backward()
    times.append(time.perf_counter() - t0)
extra = rss_mb() - before
grad_mb = emb.weight.grad.numel() * emb.weight.grad.element_size() / 2**20
print(json.dumps({"loss": loss_name, "chunk": ChunkedCrossEntropy.chunk if loss_name == "cce" else "", "value": float(loss.detach()), "extra_peak_mb": round(extra, 1),
                  "grad_mb": round(grad_mb, 1), "loss_extra_mb": round(extra - grad_mb, 1),
                  "median_ms": round(1000 * statistics.median(times), 1)}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=1_280_000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--dim", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--chunk", type=int, help="cce's item chunk (default: ChunkedCrossEntropy.chunk)")
    args = ap.parse_args()
    rows = []
    for loss in ("ce", "cce"):
        out = subprocess.run([sys.executable, "-c", CHILD, loss, str(args.items), str(args.batch), str(args.dim),
                              str(args.repeats), str(args.chunk or 0)], capture_output=True, text=True, check=True)
        rows.append({"machine": machine(), "date": dt.date.today().isoformat(), "items": args.items, "batch": args.batch, "dim": args.dim, **json.loads(out.stdout)})
    ce, cce = rows
    for r in rows:
        r["memory_vs_ce"] = round(r["loss_extra_mb"] / ce["loss_extra_mb"], 4)
        r["time_vs_ce"] = round(r["median_ms"] / ce["median_ms"], 3)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    atomic_write_bytes(OUT, buf.getvalue().encode())
    for r in rows:
        print(r)
    print(f"same loss value: {abs(ce['value'] - cce['value']) < 1e-4} ({ce['value']:.6f} vs {cce['value']:.6f})")


if __name__ == "__main__":
    main()
