"""Full-ranking evaluation against its floor, by item chunk and thread count.

Evaluation ranks every test sample's target among all N items
(:func:`srs_core.training.evaluate.evaluate`), ``item_chunk`` items at a time.
This script times one evaluation of a processed dataset's test split with a
freshly initialised STAMP encoder (the encoder's own cost is small beside the
scoring), for each chunk size and thread count, and keeps the best of
``--repeats`` runs. It also checks that every chunk size gives the same rank
for every sample.

The floor is the scoring's multiply-adds, ``2 x samples x N x d`` flops, over
the matrix-multiply rate measured in the same run at the same thread count
(a ``[256 x d] @ [d x 1024]`` product, the shape evaluation multiplies).

    python benchmarks/bench_eval_chunks.py --data data/diginetica-srgnn   # about 4 minutes on 2 cores

Writes ``benchmarks/results/eval_chunks.csv``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from srs_core.bench import machine  # noqa: E402
from srs_core.data.dataset import ProcessedDataset  # noqa: E402
from srs_core.models import build_model  # noqa: E402
from srs_core.results import atomic_write_bytes  # noqa: E402
from srs_core.training.evaluate import evaluate  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "eval_chunks.csv"


def matmul_gflops(dim: int, seconds: float = 2.0) -> float:
    """GFLOP/s of ``[256 x dim] @ [dim x 1024]`` products on the current threads."""
    a, b = torch.randn(256, dim), torch.randn(1024, dim)
    for _ in range(20):
        a @ b.T
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(50):
            a @ b.T
        n += 50
    return 2 * 256 * 1024 * dim * n / (time.perf_counter() - t0) / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, type=Path, help="a processed dataset (e.g. the imported Diginetica split)")
    ap.add_argument("--chunks", type=int, nargs="*", default=[1024, 2048, 8192, 0],
                    help="item chunks to time; 0 here means one chunk of every item")
    ap.add_argument("--threads", type=int, nargs="*", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    ds = ProcessedDataset.load(a.data)
    torch.manual_seed(0)
    model = build_model("stamp", ds.n_items, dim=100).eval()
    rows, reference = [], None
    for threads in a.threads:
        torch.set_num_threads(threads)
        rate = matmul_gflops(100)
        floor = 2 * ds.test.n_samples * ds.n_items * 100 / (rate * 1e9)
        print(f"[eval] {threads} thread(s): matmul {rate:.1f} GFLOP/s, floor {floor:.2f} s for "
              f"{ds.test.n_samples:,} samples x {ds.n_items:,} items", flush=True)
        for chunk in a.chunks:
            item_chunk = chunk or ds.n_items
            best = float("inf")
            for _ in range(a.repeats):
                t0 = time.perf_counter()
                _, ranks = evaluate(model, ds.test, l2=True, item_chunk=item_chunk, return_ranks=True)
                best = min(best, time.perf_counter() - t0)
            if reference is None:
                reference = ranks
            same = bool(np.array_equal(ranks, reference))
            rows.append(dict(dataset=ds.path.name, n_items=ds.n_items, test_samples=ds.test.n_samples, threads=threads,
                             item_chunk=item_chunk, seconds=best, floor_s=floor, over_floor=best / floor,
                             matmul_gflops=rate, ranks_equal=same, machine=machine(),
                             date=dt.date.today().isoformat()))
            print(f"[eval]   chunk {item_chunk:>6}: {best:6.2f} s, {best / floor:.2f}x the floor, "
                  f"ranks {'equal' if same else 'DIFFER'}", flush=True)
    shown = [{k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in r.items()} for r in rows]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(OUT, pd.DataFrame(shown).to_csv(index=False).encode())
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
