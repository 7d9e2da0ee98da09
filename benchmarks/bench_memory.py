"""Benchmark: resident memory of long training runs, and of evaluation, at 43k and 1.28M items.

Each configuration runs in a fresh child process (the allocator's state is
per process): it builds STAMP with the loss and optimizer that ``srs train``
would build (:func:`srs_core.bench.build_step`), then trains ``--steps``
steps on random batches whose prefixes follow Diginetica's lengths (1-25
items, mean about 4), each batch padded to its own longest prefix as the
numpy batcher does. It reports the resident memory after 10 steps and at the
end, the peak (``VmHWM``) and the median step time.

Before a run is set up, ``srs train`` fixes glibc's mmap threshold
(:func:`srs_core.training.runtime.bound_heap`); the child does the same,
except in the row labelled ``glibc default``, which shows what cross-entropy
did without it (fewer steps: it grows by about one logits matrix a step).

``--data DIR`` (a processed dataset, e.g. the imported standard Diginetica
split) adds the peak of evaluating its validation and test splits with a
STAMP model at that catalogue size. Writes ``benchmarks/results/memory.csv``.

    python benchmarks/bench_memory.py --data _build/work/default/data/diginetica-srgnn
    python benchmarks/bench_memory.py --only 4 --keep   # one configuration more, keeping the other rows

The CSV is rewritten after every configuration, so an interrupted run keeps
the rows it finished.
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

OUT = Path(__file__).resolve().parent / "results" / "memory.csv"
DIGINETICA, MELI = 43_097, 1_280_000
RECOMMENDED = {"loss": "sampled_softmax", "optimizer": "sparse_fast", "l2": True, "score_scale": 10.0,
               "sampling": "popularity"}
#: (label, StepSpec fields, allocator, steps); steps None means --steps.
CONFIGS = [
    ("ce", {"loss": "ce", "optimizer": "dense", "l2": False, "n_items": DIGINETICA}, "bounded", None),
    ("cce", {"loss": "cce", "optimizer": "dense", "l2": False, "n_items": DIGINETICA}, "bounded", None),
    ("sampled softmax (recommended)", {**RECOMMENDED, "n_items": DIGINETICA}, "bounded", None),
    ("ce", {"loss": "ce", "optimizer": "dense", "l2": False, "n_items": DIGINETICA}, "glibc default", 300),
    ("cce", {"loss": "cce", "optimizer": "dense", "l2": False, "n_items": MELI}, "bounded", None),
    ("sampled softmax (recommended)", {**RECOMMENDED, "n_items": MELI}, "bounded", None),
]

TRAIN_CHILD = r"""
import json, statistics, sys, time
import numpy as np, torch
from srs_core.bench import StepSpec, build_step
from srs_core.training.runtime import bound_heap

spec, bounded, steps = json.loads(sys.argv[1]), sys.argv[2] == "bounded", int(sys.argv[3])
if bounded:
    assert bound_heap(), "could not set glibc's mmap threshold here"

def rss_mb(field="VmRSS"):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024

step = build_step(StepSpec(**spec))
gen = np.random.default_rng(0)
n = spec["n_items"]
times, at10 = [], None
for i in range(steps):
    lengths = np.minimum(gen.geometric(0.27, size=128), 25)  # mean about 3.7, like Diginetica's prefixes
    width = int(lengths.max())
    items = gen.integers(1, n + 1, size=(128, width))
    items[np.arange(width)[None, :] >= lengths[:, None]] = 0
    batch = [torch.as_tensor(a) for a in (items, lengths, gen.integers(1, n + 1, size=128))]
    t0 = time.perf_counter()
    step(*batch)
    times.append(time.perf_counter() - t0)
    if i == 9:
        at10 = rss_mb()
print(json.dumps({"rss_after_10_mb": round(at10, 1), "rss_end_mb": round(rss_mb(), 1),
                  "peak_rss_mb": round(rss_mb("VmHWM"), 1), "median_ms": round(1000 * statistics.median(times), 2),
                  "threads": torch.get_num_threads()}))
"""

EVAL_CHILD = r"""
import json, sys, time
import torch
from srs_core.data import ProcessedDataset
from srs_core.models import build_model
from srs_core.training.evaluate import evaluate

ds = ProcessedDataset.load(sys.argv[1])
def rss_mb(field="VmRSS"):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
torch.manual_seed(0)
model = build_model("stamp", ds.n_items, dim=100)
before = rss_mb()
t0 = time.perf_counter()
n = 0
for split in (ds.valid, ds.test):
    if split is not None:
        evaluate(model, split, l2=True, return_ranks=True)
        n += split.n_samples
print(json.dumps({"n_items": ds.n_items, "samples": n, "rss_before_mb": round(before, 1),
                  "peak_rss_mb": round(rss_mb("VmHWM"), 1), "seconds": round(time.perf_counter() - t0, 1),
                  "threads": torch.get_num_threads()}))
"""

FIELDS = ["machine", "date", "kind", "label", "loss", "optimizer", "n_items", "allocator", "steps", "rss_after_10_mb",
          "rss_end_mb", "rss_before_mb", "peak_rss_mb", "growth_mb", "median_ms", "samples", "seconds", "threads"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000, help="training steps per configuration (default 1000)")
    ap.add_argument("--data", type=Path, help="a processed dataset whose evaluation peak to measure")
    ap.add_argument("--only", nargs="*", type=int, help="indices into CONFIGS to run (default: all)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the rows of the existing CSV that this run does not measure again (to measure the "
                    "configurations in several sittings)")
    args = ap.parse_args()
    today, who = dt.date.today().isoformat(), machine()
    kept = _read_rows() if args.keep else []
    rows: list[dict] = []

    def save() -> None:  # after every row: an interrupted run keeps what it measured
        ids = {_row_id(r) for r in rows}
        _write_rows([r for r in kept if _row_id(r) not in ids] + rows)

    for i, (label, spec, allocator, steps) in enumerate(CONFIGS):
        if args.only is not None and i not in args.only:
            continue
        steps = steps or args.steps
        print(f"[memory] {label} at {spec['n_items']:,} items, {allocator}, {steps} steps", flush=True)
        out = subprocess.run([sys.executable, "-c", TRAIN_CHILD, json.dumps(spec), allocator, str(steps)],
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"{label} at {spec['n_items']} items failed:\n{out.stderr[-2000:]}")
        m = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append({"machine": who, "date": today, "kind": "train", "label": label, "loss": spec["loss"],
                     "optimizer": spec["optimizer"], "n_items": spec["n_items"], "allocator": allocator,
                     "steps": steps, **m, "growth_mb": round(m["rss_end_mb"] - m["rss_after_10_mb"], 1)})
        print(f"[memory] {rows[-1]}", flush=True)
        save()
    if args.data is not None:
        out = subprocess.run([sys.executable, "-c", EVAL_CHILD, str(args.data)], capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"evaluation of {args.data} failed:\n{out.stderr[-2000:]}")
        m = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append({"machine": who, "date": today, "kind": "evaluate", "label": f"STAMP, {args.data.name}",
                     "allocator": "glibc default", **m})
        print(f"[memory] {rows[-1]}", flush=True)
    save()
    print(f"[memory] wrote {OUT}")


def _row_id(row: dict) -> tuple:
    return row["kind"], row["label"], str(row.get("n_items", "")), row["allocator"]


def _read_rows() -> list[dict]:
    if not OUT.is_file():
        return []
    with OUT.open(newline="") as f:
        return list(csv.DictReader(f))


def _write_rows(rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=FIELDS)
    w.writeheader()
    w.writerows(rows)
    atomic_write_bytes(OUT, buf.getvalue().encode())


if __name__ == "__main__":
    main()
