"""Where an epoch's time goes, per model and batching, on a real dataset at the recommended loss.

For each model (GRU4Rec, NARM, STAMP, SR-GNN) and batching (``samples``, the
dissertation's random prefixes; ``buckets``; ``sessions`` where the encoder
has a one-pass form), ``--steps`` training
steps of the recommended loss (sampled softmax, L2, S=10, popularity
negatives, ``sparse_fast``) run on the dataset's own shuffled batches, after
``--warmup`` steps, and each step is cut into its parts, timed one after the
other in this process (CPU: every operation has finished when it returns):

* ``batch``: making the batch (numpy gathers, tensors);
* ``forward``: the encoder's forward (``forward`` or ``forward_all``);
* ``loss``: the loss's forward, negatives drawn;
* ``backward``: the backward of both;
* ``optimizer``: the optimizer step.

An epoch's part is its mean per step times the epoch's steps for that
batching. ``eval`` is one full evaluation of the test split (every test
sample ranked over every item), timed once per model.

Floors, from this machine's measured rates (``matmul_gflops`` at the
encoder's shapes, ``bandwidth_gb_s`` over 1 GB): the forward, loss and
backward floors are their matrix-multiply flops (counted by
``torch.utils.flop_counter`` on the steps themselves) over the matmul rate;
the optimizer's is the bytes it must read and write (the touched item rows
and every dense weight, with their two Adam moments and gradient) over the
bandwidth; the batch's is its bytes over the bandwidth; evaluation's is the
flops of scoring every test sample against every item over the matmul rate.

    python benchmarks/bench_epoch_parts.py --data data/diginetica-srgnn   # about 2 minutes on 2 cores

Floors count matrix multiplies only: the elementwise work of the attention
encoders (a sigmoid over B x L x L x d in the one-pass STAMP and NARM) and
of the recurrences has no floor here, which is where their time beyond the
floor goes.

Writes ``benchmarks/results/epoch_parts.csv``.
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from srs_core.bench import machine  # noqa: E402
from srs_core.data.dataset import ProcessedDataset, iter_batches, n_batches  # noqa: E402
from srs_core.data.sessions import count_session_batches  # noqa: E402
from srs_core.losses import build_loss  # noqa: E402
from srs_core.models import MODELS, build_model  # noqa: E402
from srs_core.optim import build_optimizer  # noqa: E402
from srs_core.training.evaluate import evaluate  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "epoch_parts.csv"
PARTS = ("batch", "forward", "loss", "backward", "optimizer")
RECOMMENDED = dict(loss="sampled_softmax", l2=True, score_scale=10.0, sampling="popularity")


def bandwidth_gb_s() -> float:
    x = np.ones(256 * 2**20, dtype=np.float32)
    best = min(_timed(x.sum) for _ in range(5))
    return x.nbytes / best / 1e9


def matmul_gflops(m: int = 2048, d: int = 100) -> float:
    """The rate of this machine's fp32 matmul at an encoder's shape (m x d times d x d)."""
    a, b = torch.randn(m * 8, d), torch.randn(d, d)
    best = min(_timed(lambda: a @ b) for _ in range(20))
    return 2 * a.shape[0] * d * d / best / 1e9


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


class _Nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def get_total_flops(self) -> int:
        return 0


def step_parts(model, loss_fn, opt, batch, gen, count: bool = False) -> tuple[dict, dict]:
    """One training step in its parts: seconds each; with ``count``, the flops
    of forward, loss and backward instead (counting slows every operation, so
    a step is either timed or counted, never both)."""
    items, lengths, targets = batch
    opt.zero_grad(set_to_none=True)
    secs, flops = {}, {}
    counter = (lambda: FlopCounterMode(display=False)) if count else _Nothing
    with counter() as fc:
        t0 = time.perf_counter()
        if targets.dim() == 2:
            at = targets > 0
            session, tgt = model.forward_all(items, lengths)[at], targets[at]
        else:
            session, tgt = model(items, lengths), targets
        secs["forward"] = time.perf_counter() - t0
    flops["forward"] = fc.get_total_flops()
    with counter() as fc:
        t0 = time.perf_counter()
        loss = loss_fn(session, tgt, model.item_embedding, True, gen)
        secs["loss"] = time.perf_counter() - t0
    flops["loss"] = fc.get_total_flops()
    with counter() as fc:
        t0 = time.perf_counter()
        loss.backward()
        secs["backward"] = time.perf_counter() - t0
    flops["backward"] = fc.get_total_flops()
    t0 = time.perf_counter()
    opt.step()
    secs["optimizer"] = time.perf_counter() - t0
    return secs, flops


def optimizer_bytes(model, batch) -> int:
    """What one Adam step must read and write: the touched item rows and every
    dense weight, each with its gradient and two moments (read), and the
    weight and moments (written)."""
    items, _, targets = batch
    rows = torch.unique(torch.cat([items.flatten(), targets.flatten()])).numel() + 100  # + the drawn negatives
    dense = sum(p.numel() for n, p in model.named_parameters() if "item_embedding" not in n)
    return (rows * model.dim + dense) * 4 * (4 + 3)


def measure(ds, model_name: str, batching: str, steps: int, warmup: int, seed: int, rate: float, bw: float) -> dict:
    torch.manual_seed(seed)
    model = build_model(model_name, ds.n_items, dim=100, sparse=True)
    opt = build_optimizer(model, "sparse_fast", lr=1e-3)
    loss_fn = build_loss("sampled_softmax", counts=ds.item_counts(), **{k: v for k, v in RECOMMENDED.items()
                                                                        if k not in ("loss", "l2")})
    gen = torch.Generator().manual_seed(seed)
    batches = iter_batches(ds.train, 128, shuffle=True, generator=np.random.default_rng(seed), max_len=25,
                           batching=batching)
    model.train()
    total = {p: 0.0 for p in PARTS}
    flops = {p: 0.0 for p in ("forward", "loss", "backward")}
    opt_bytes = batch_bytes = samples = 0
    timed = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        b = next(batches)
        made = time.perf_counter() - t0
        batch = (b.items, b.lengths, b.targets)
        secs, _ = step_parts(model, loss_fn, opt, batch, gen)
        if i < warmup:
            continue
        timed.append(batch)
        total["batch"] += made
        for k, v in secs.items():
            total[k] += v
        opt_bytes += optimizer_bytes(model, batch)
        batch_bytes += sum(t.numel() * t.element_size() for t in batch)
        samples += int((b.targets > 0).sum())
    for batch in timed:  # the same batches again, their flops counted (untimed)
        _, fl = step_parts(model, loss_fn, opt, batch, gen, count=True)
        for k, v in fl.items():
            flops[k] += v
    epoch_steps = (count_session_batches(ds.train, 128, 25) if batching == "sessions" else n_batches(ds.train, 128))
    per = epoch_steps / steps
    row = {f"{p}_s": total[p] * per for p in PARTS}
    row.update({f"{p}_floor_s": flops[p] * per / (rate * 1e9) for p in flops})
    row["optimizer_floor_s"] = opt_bytes * per / (bw * 1e9)
    row["batch_floor_s"] = batch_bytes * per / (bw * 1e9)
    row.update(model=model_name, batching=batching, epoch_steps=epoch_steps, samples_per_step=samples / steps,
               train_s=sum(row[f"{p}_s"] for p in PARTS))
    return row


def eval_part(ds, model_name: str, rate: float) -> tuple[float, float]:
    model = build_model(model_name, ds.n_items, dim=100).eval()
    t = _timed(lambda: evaluate(model, ds.test, l2=True, max_len=25))
    floor = 2 * ds.test.n_samples * ds.n_items * 100 / (rate * 1e9)
    return t, floor


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, type=Path, help="a processed dataset (e.g. the imported Diginetica split)")
    ap.add_argument("--models", nargs="*", default=list(MODELS))
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    ds = ProcessedDataset.load(a.data)
    rate, bw = matmul_gflops(), bandwidth_gb_s()
    print(f"[parts] matmul {rate:.0f} GFLOP/s, read bandwidth {bw:.1f} GB/s; {ds.n_items} items, "
          f"{ds.train.n_samples} training samples", flush=True)
    rows = []
    for name in a.models:
        ev, ev_floor = eval_part(ds, name, rate)
        for batching in ("samples", "buckets", "sessions") if MODELS[name].one_pass else ("samples", "buckets"):
            row = measure(ds, name, batching, a.steps, a.warmup, a.seed, rate, bw)
            row.update(eval_s=ev, eval_floor_s=ev_floor, machine=machine(), date=dt.date.today().isoformat(),
                       dataset=ds.path.name, matmul_gflops=rate, bandwidth_gb_s=bw)
            rows.append(row)
            print(f"[parts] {name:8s} {batching:9s} epoch {row['train_s']:7.1f} s (" +
                  ", ".join(f"{p} {row[p + '_s']:.1f}" for p in PARTS) + f"), eval {ev:.1f} s", flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in r.items()})
    tmp.replace(OUT)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
