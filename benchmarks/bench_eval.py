"""Full-ranking evaluation throughput at catalogue scale.

Scores every test sample against all N items (default N = 1.28M, MeLi2020's
catalogue) with :func:`srs_core.training.evaluate.evaluate`, which works in chunks of
``item_chunk`` items so that at most ``batch x item_chunk`` scores exist at
once. Prints test samples per second for a few chunk sizes and writes
``benchmarks/results/eval_throughput.csv``.

Floor, written before measuring: one sample costs 2 N d flops for the scores
plus N compares; at N = 1.28M, d = 100 that is 0.26 GFLOP per sample. Two
CPU cores at roughly 50-100 GFLOP/s in fp32 matmul give some 200-400 samples/s
at best; the compare-and-count pass over the N scores adds memory traffic.
"""
from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from srs_core.bench import machine  # noqa: E402

OUT_DIR = Path(__file__).parent / "results"

from srs_core.data.dataset import Split  # noqa: E402
from srs_core.models import build_model  # noqa: E402
from srs_core.training import evaluate  # noqa: E402


def random_split(n_items: int, n_sessions: int, seed: int = 0) -> Split:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, 26, size=n_sessions)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    items = rng.integers(1, n_items + 1, size=int(offsets[-1])).astype(np.int32)
    return Split(items=items, offsets=offsets, times=np.zeros(n_sessions))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-items", type=int, default=1_280_000)
    ap.add_argument("--samples", type=int, default=2048, help="approximate number of test samples")
    ap.add_argument("--chunks", default="65536,131072,262144", help="item chunk sizes to compare")
    ap.add_argument("--batch", type=int, default=256, help="test samples scored at once")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=str(OUT_DIR / "eval_throughput.csv"))
    args = ap.parse_args(argv)

    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build_model("stamp", args.n_items, dim=100).to(device)
    split = random_split(args.n_items, max(1, args.samples // 12))
    n = split.n_samples
    rows = []
    for chunk in [int(c) for c in args.chunks.split(",")]:
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            evaluate(model, split, l2=True, device=device, batch_size=args.batch, item_chunk=chunk)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        rows.append({"device": args.device, "machine": machine(device), "n_items": args.n_items, "test_samples": n,
                     "batch": args.batch, "item_chunk": chunk, "repeats": args.repeats, "median_s": med,
                     "samples_per_s": n / med, "max_scores_in_memory": args.batch * chunk,
                     "torch": torch.__version__, "date": dt.date.today().isoformat()})
        print(f"chunk {chunk:>7d}: {n} samples in {med:.2f} s -> {n / med:,.0f} samples/s "
              f"(at most {args.batch * chunk * 4 / 2**20:.0f} MiB of scores at once)", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(args.out, index=False)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
