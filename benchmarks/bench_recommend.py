"""Benchmark: recommendation latency and throughput, exact and approximate, at 43k and 1.28M items.

For STAMP and SR-GNN at each catalogue size, the path ``srs recommend``
takes for a batch of sessions (:meth:`srs_core.recommend.Recommender.top_k`:
the encoder's forward, then the exact top-20 over every item,
:func:`srs_core.serving.top_items`) is timed

* for one session at a time: p50 and p99 latency over ``--queries`` sessions;
* for batches of ``--batch`` sessions: throughput in sessions per second;

and, with faiss installed, the same with an HNSW and an IVF index
(:mod:`srs_core.ann`), with their recall@20 against the exact top-20.

The floor is written beside each row: one exact query reads the whole item
matrix (N x d float32), so it takes at least its bytes over the memory
bandwidth measured here; a batch needs at least the larger of that and its
multiply-adds over the matmul rate measured here.

Item vectors: with ``--run RUN --data DATA`` (a trained run, e.g. the
Diginetica STAMP run of the Table 1 page) its own, else random unit vectors.
Random vectors have no cluster structure, so an index's recall on them is a
worst case. Writes ``benchmarks/results/recommend.csv``.

    python benchmarks/bench_recommend.py --run RUN --data DATA
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from srs_core.bench import machine  # noqa: E402
from srs_core.models import build_model  # noqa: E402
from srs_core.results import atomic_write_bytes  # noqa: E402
from srs_core.serving import pad_sessions, top_items  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "recommend.csv"
FIELDS = ["machine", "date", "model", "n_items", "vectors", "method", "setting", "batch", "p50_ms", "p99_ms",
          "sessions_per_s", "recall_at_20", "floor_ms", "floor_sessions_per_s", "vs_floor", "build_s"]


def bandwidth_gb_s() -> float:
    """Read bandwidth of this machine: the best of a few sums over 1 GB."""
    x = np.ones(256 * 2**20, dtype=np.float32)
    best = min(_timed(lambda: x.sum()) for _ in range(5))
    return x.nbytes / best / 1e9


def matmul_gflops(d: int = 100) -> float:
    """Matmul rate at the shape of a batch's scores (256 x d times d x 65536)."""
    a, b = torch.randn(256, d), torch.randn(d, 65536)
    best = min(_timed(lambda: a @ b) for _ in range(5))
    return 2 * 256 * d * 65536 / best / 1e9


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def sessions_for(n_items: int, count: int, seed: int) -> list[list[int]]:
    g = np.random.default_rng(seed)
    return [g.integers(1, n_items + 1, size=int(g.integers(1, 8))).tolist() for _ in range(count)]


def encoder(name: str, n_items: int, run: Path | None, data: Path | None):
    """The encoder and its item matrix (rows of items 1..N, unit vectors)."""
    if run is not None:
        from srs_core.recommend import Recommender

        rec = Recommender.from_run(run, data)
        if rec.config.model == name:
            return rec.model, rec.candidates, "trained"
    torch.manual_seed(0)
    model = build_model(name, n_items, dim=100).eval()
    return model, torch.nn.functional.normalize(model.item_embedding.weight[1:].detach(), dim=-1), "random"


@torch.no_grad()
def vectors_of(model, sessions):
    items, lengths = pad_sessions(sessions, 25)
    return torch.nn.functional.normalize(model(items, lengths), dim=-1)


def measure(model, items, sessions, batch: int, search) -> tuple[list[float], float]:
    """Latencies of single-session calls (ms) and the throughput of batched calls (sessions per second)."""
    lat = []
    for s in sessions:
        t0 = time.perf_counter()
        search(vectors_of(model, [s]))
        lat.append(1e3 * (time.perf_counter() - t0))
    big = sessions_for(items.shape[0], batch * 3, 99)
    search(vectors_of(model, big[:batch]))  # warm-up
    t0 = time.perf_counter()
    for lo in range(0, len(big), batch):
        search(vectors_of(model, big[lo:lo + batch]))
    return lat, len(big) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, nargs="+", default=[43_097, 1_280_000])
    ap.add_argument("--models", nargs="+", default=["stamp", "srgnn"])
    ap.add_argument("--queries", type=int, default=200, help="single-session calls timed per row (fewer at 1M+)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--run", type=Path, help="a trained run whose own vectors to use at its catalogue size")
    ap.add_argument("--data", type=Path, help="its processed dataset")
    args = ap.parse_args()
    bw, rate = bandwidth_gb_s(), matmul_gflops()
    print(f"[recommend] read bandwidth {bw:.1f} GB/s, matmul {rate:.0f} GFLOP/s", flush=True)
    try:
        from srs_core import ann

        ann.faiss_module()
    except (ImportError, ValueError):
        ann = None
    rows, who, today = [], machine(), dt.date.today().isoformat()
    for n in args.items:
        for name in args.models:
            use_run = args.run if args.run is not None else None
            model, items, kind = encoder(name, n, use_run, args.data) if use_run else encoder(name, n, None, None)
            if items.shape[0] != n:
                model, items, kind = encoder(name, n, None, None)
            queries = sessions_for(n, args.queries if n < 10**6 else max(20, args.queries // 10), 1)
            floor_one = items.numel() * 4 / (bw * 1e9) * 1e3
            floor_batch = max(items.numel() * 4 / (bw * 1e9), 2 * args.batch * items.numel() / (rate * 1e9))
            exact_ids = top_items(vectors_of(model, queries), items, 20)[0]
            methods = [("exact", "", None)]
            if ann is not None:
                methods += [("hnsw", None, "hnsw"), ("ivf", None, "ivf")]
            for method, _, index_kind in methods:
                build = 0.0
                if index_kind is None:
                    def search(v):
                        return top_items(v, items, 20)
                    setting = "all items, chunks of 65536"
                else:
                    t0 = time.perf_counter()
                    index = ann.ItemIndex(items.numpy(), index_kind)
                    build = time.perf_counter() - t0

                    def search(v, index=index):
                        return index.search(v.numpy(), 20)
                    setting = index.setting
                lat, thr = measure(model, items, queries, args.batch, search)
                got = np.vstack([search(vectors_of(model, [q]))[0] for q in queries])
                rows.append({"machine": who, "date": today, "model": name, "n_items": n, "vectors": kind,
                             "method": method, "setting": setting, "batch": args.batch,
                             "p50_ms": round(statistics.median(lat), 2), "p99_ms": round(float(np.quantile(lat, 0.99)), 2),
                             "sessions_per_s": round(thr, 1),
                             "recall_at_20": round(ann.recall_at_k(got, exact_ids), 4) if ann else 1.0,
                             "floor_ms": round(floor_one, 2), "floor_sessions_per_s": round(args.batch / floor_batch, 1),
                             "vs_floor": round(statistics.median(lat) / floor_one, 2) if method == "exact" else "",
                             "build_s": round(build, 1)})
                print(f"[recommend] {rows[-1]}", flush=True)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=FIELDS)
    w.writeheader()
    w.writerows(rows)
    atomic_write_bytes(OUT, buf.getvalue().encode())
    print(f"[recommend] wrote {OUT}")


if __name__ == "__main__":
    main()
