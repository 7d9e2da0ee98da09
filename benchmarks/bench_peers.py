"""Our training step side by side with RecBole's, on the same batches.

RecBole (https://recbole.io) is the most used library that implements all four
of the dissertation's encoders (GRU4Rec, NARM, STAMP, SR-GNN). This script
builds each encoder twice, once from the installed ``recbole`` package and
once from ``srs_core``, with the same sizes (d = 100, GRU hidden size 100, one
GNN step), feeds both the same random batches (128 prefixes of 1..24 items)
and times one training step as each library's trainer does it:

* RecBole: ``optimizer.zero_grad()``, ``model.calculate_loss(batch)``, the
  trainer's NaN check, ``backward()``, ``torch.optim.Adam(...).step()`` over
  every parameter (RecBole's default learner). Its two losses: ``CE`` (full
  softmax over all items) and ``BPR`` (one negative per sample; RecBole's
  data loader draws it, so here it is drawn before the clock starts);
* ours: full cross-entropy with dense Adam (the same algorithm as RecBole's
  CE, our implementation), and the scalable paths, negative sampling (100
  negatives, L2) and sampled softmax with logQ correction, both with
  ``sparse_fast``. Our negatives are drawn inside the timed step.

Configurations are interleaved step by step, so a burst of load on the shared
machine hits all of them alike; the table reports the median over
``--repeats`` steps after ``--warmup`` steps, and the ratio of each
configuration to ours at the same size.

RecBole needs numpy < 2, which the project's environment does not have, so it
runs in its own virtual environment::

    make bench-peers          # builds .venv-peers (pinned) and runs this script

Writes ``benchmarks/results/peers.csv`` (``--smoke``: ``peers_smoke.csv``,
which the book ignores).
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from srs_core.bench import StepSpec, build_step, machine, random_batches  # noqa: E402

OUT_DIR = Path(__file__).parent / "results"

RECBOLE_CLASSES = {"stamp": "STAMP", "gru4rec": "GRU4Rec", "narm": "NARM", "srgnn": "SRGNN"}
# (library, loss, optimizer) in the order they are run within each step
CONFIGS = [
    ("recbole", "CE", "adam"),
    ("recbole", "BPR", "adam"),
    ("ours", "ce", "dense"),
    ("ours", "ns", "sparse_fast"),
    ("ours", "sampled_softmax", "sparse_fast"),
]


def import_recbole():
    try:
        import recbole  # noqa: F401
        from recbole.model import sequential_recommender
    except ImportError as exc:
        sys.exit(
            f"bench_peers.py needs the `recbole` package ({exc}). It lives in its own environment: "
            "run `make bench-peers`, or `.venv-peers/bin/python benchmarks/bench_peers.py` after it was built."
        )
    return sequential_recommender


class _CatalogueInfo:
    """The one thing RecBole's sequential models ask their dataset: the number of item ids."""

    def __init__(self, n_ids: int) -> None:
        self.n_ids = n_ids

    def num(self, field: str) -> int:
        return self.n_ids


def recbole_step(model_name: str, loss_type: str, n_items: int, dim: int, seed: int):
    """A RecBole model and a function running one of its trainer's steps on a batch."""
    zoo = import_recbole()
    config = {
        "USER_ID_FIELD": "session_id", "ITEM_ID_FIELD": "item_id", "LIST_SUFFIX": "_list",
        "ITEM_LIST_LENGTH_FIELD": "item_length", "NEG_PREFIX": "neg_", "MAX_ITEM_LIST_LENGTH": 50,
        "device": torch.device("cpu"), "loss_type": loss_type,
        # the sizes of our encoders (d = 100, as in the dissertation); the rest RecBole's defaults
        "embedding_size": dim, "hidden_size": dim, "num_layers": 1, "n_layers": 1,
        "dropout_prob": 0.3, "dropout_probs": [0.25, 0.5], "step": 1,
    }
    torch.manual_seed(seed)
    model = getattr(zoo, RECBOLE_CLASSES[model_name])(config, _CatalogueInfo(n_items + 1))
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=0.0)  # RecBole's default learner
    gen = torch.Generator().manual_seed(seed)

    def prepare(items, lengths, targets):
        batch = {"item_id_list": items, "item_length": lengths, "item_id": targets}
        if loss_type == "BPR":  # RecBole's loader draws one uniform negative per sample
            batch["neg_item_id"] = torch.randint(1, n_items + 1, targets.shape, generator=gen)
        return batch

    def step(batch):
        opt.zero_grad()
        loss = model.calculate_loss(batch)
        if torch.isnan(loss):  # RecBole's trainer checks every loss
            raise ValueError("training loss is nan")
        loss.backward()
        opt.step()

    return prepare, step


def ours_step(model_name: str, loss: str, optimizer: str, n_items: int, dim: int, negatives: int, seed: int):
    """Our step, as the scaling notebook times it (L2 with the sampled losses)."""
    spec = StepSpec(model=model_name, loss=loss, optimizer=optimizer, n_items=n_items, l2=loss != "ce",
                    negatives=negatives, dim=dim, seed=seed)
    step = build_step(spec)
    return (lambda *batch: batch), (lambda batch: step(*batch))


def measure(model_name: str, n_items: int, args) -> list[dict]:
    import recbole

    steppers = []
    for lib, loss, opt in CONFIGS:
        if lib == "recbole":
            steppers.append(recbole_step(model_name, loss, n_items, args.dim, args.seed))
        else:
            steppers.append(ours_step(model_name, loss, opt, n_items, args.dim, args.negatives, args.seed))
    batches = random_batches(args.warmup + args.repeats, args.batch, args.max_len, n_items, "cpu", args.seed)
    times: list[list[float]] = [[] for _ in CONFIGS]
    for r, batch in enumerate(batches):
        for c, (prepare, step) in enumerate(steppers):
            ready = prepare(*batch)
            t0 = time.perf_counter()
            step(ready)
            if r >= args.warmup:
                times[c].append((time.perf_counter() - t0) * 1e3)
    stamp = dt.date.today().isoformat()
    rows = []
    for (lib, loss, opt), ts in zip(CONFIGS, times):
        rows.append({
            "machine": machine(torch.device("cpu")), "date": stamp, "torch": torch.__version__,
            "recbole": recbole.__version__,
            "model": model_name, "n_items": n_items, "library": lib, "loss": loss, "optimizer": opt,
            "batch": args.batch, "max_len": args.max_len, "dim": args.dim,
            "negatives": args.negatives if lib == "ours" and loss != "ce" else (1 if loss == "BPR" else 0),
            "repeats": args.repeats, "median_ms": round(statistics.median(ts), 3),
            "min_ms": round(min(ts), 3), "max_ms": round(max(ts), 3),
        })
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=list(RECBOLE_CLASSES), choices=list(RECBOLE_CLASSES))
    ap.add_argument("--items", nargs="+", type=float, default=[1e4, 1e5, 1e6], help="catalogue sizes")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--max-len", type=int, default=24)
    ap.add_argument("--dim", type=int, default=100)
    ap.add_argument("--negatives", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, to check that the script runs")
    args = ap.parse_args(argv)
    if args.smoke:
        args.items, args.repeats, args.warmup = [1e3], 2, 1
    if args.threads:
        torch.set_num_threads(args.threads)
    import_recbole()
    import recbole

    print(f"RecBole {recbole.__version__}, torch {torch.__version__}, {machine(torch.device('cpu'))}")
    rows: list[dict] = []
    for model_name in args.models:
        for n in args.items:
            new = measure(model_name, int(n), args)
            rows += new
            ours_ce = next(r["median_ms"] for r in new if r["library"] == "ours" and r["loss"] == "ce")
            ours_ns = next(r["median_ms"] for r in new if r["loss"] == "ns")
            for r in new:
                print(f"{model_name:8s} N={int(n):>9,d} {r['library']:8s} {r['loss']:16s} {r['optimizer']:12s} "
                      f"{r['median_ms']:10.1f} ms  x{r['median_ms'] / ours_ns:8.1f} of ours ns+sparse_fast  "
                      f"x{r['median_ms'] / ours_ce:6.2f} of ours ce+dense", flush=True)
    out = OUT_DIR / ("peers_smoke.csv" if args.smoke else "peers.csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
