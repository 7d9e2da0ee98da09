"""Benchmark: every loss in its chosen setting at catalogue scale.

What is measured. For each configuration of :data:`CONFIGS` (one loss in the
setting this project recommends, with its optimizer) and each catalogue size
N in ``--items`` (default 1e4, 1e5, 1.28e6, 1e7), a fresh child process
(:func:`srs_core.bench.measure_isolated`) builds the model (STAMP by default,
d = 100), its optimizer and its loss, warms up for ``--warmup`` steps and
times ``--repeats`` full training steps (forward, loss with its negatives
drawn inside, backward, optimizer step) on batches of 128 random sessions,
and reports:

* ``median_ms``: the median step time (CUDA: the clock is read after a
  synchronisation);
* ``peak_rss_mb``: the child's peak resident memory, set-up included;
* ``loss_extra_mb``: what the steps add to the built model, optimizer and
  loss: the peak over the steps minus the memory right after set-up (RSS on
  CPU, ``torch.cuda`` allocations on CUDA). It includes what the optimizer
  makes on its first step (dense Adam's two moments, the dense gradient)
  and what each step holds for a moment (logits, their softmax and
  gradient); ``setup_mb`` is the memory it is measured from;
* ``fields``: the configuration's own fields (JSON), by which notebook
  07-beyond finds the step time of a run's setting
  (:func:`srs_core.bench.step_ms_at`, matching :func:`srs_core.bench.cost_key`);
* ``ratio_vs_ce`` and ``ratio_vs_ns_sparse_fast``: the step time over that of
  ``ce + dense`` and of ``ns + sparse_fast`` (the dissertation's setting) at
  the same N, on the same machine, in the same file.

The floor: what each configuration must at least move per step.
``ce + dense`` reads the whole N x d table for the logits, writes B x N
logits (and their softmax and gradient), writes an N x d gradient, and dense
Adam then reads the gradient and reads and writes the table and its two
moments: about ten N x d float passes (512 MB each at 1.28M items) plus
three B x N x d matrix products (forward, and the two of the backward;
1e11 flop at 1.28M items): linear in N.
``cce + dense`` drops the B x N logits (item chunks) but reads the table
twice (its backward recomputes each chunk) and keeps dense Adam's N x d
passes: also linear in N; it shows how much of cross-entropy's cost is the
logits and how much the dense update. On CUDA, :data:`CUDA_CONFIGS` adds
``cce`` through the ``cut-cross-entropy`` package's Triton kernel (bf16
session vectors) where that package is installed; elsewhere its rows say
that it is not. ``sce`` reads the whole table once,
without gradient, to choose its buckets (n_buckets x N x d multiply-adds),
then touches only the selected rows: linear in N, with a small constant.
The sampled losses with ``sparse_fast`` touch B x (k + 1) rows (``ns``,
``triplet``, ``gbce``: k per sample) or B + k rows (``sampled_softmax``:
shared negatives) and their Adam moments: no term in N, except popularity
sampling's binary search (log N per negative) and cache misses on a larger
table.

Guards, so that one run can go up to 1e7 items on any machine: before a
configuration is launched its memory is estimated (the N x d table times
the optimizer's copies, plus ``ce``'s B x N logits about three times, plus
the samplers' tables) and it is skipped, with a row saying so, if the
estimate exceeds 80% of the available memory (``MemAvailable``; free CUDA
memory with ``--device cuda``; ``--ram-gb`` overrides). Its time is
estimated from the same configuration at the previous N (linear in N where
the step is) and it is skipped if that exceeds ``--max-seconds-per-config``.
``--deadline`` (Unix seconds) stops launching configurations once passed.
A configuration that fails is recorded with its error; the run goes on.

The CSV (``benchmarks/results/losses_cpu.csv``; ``losses_cuda.csv`` on CUDA)
is rewritten atomically after every configuration and is resumable: a row
measured (status ``ok``) on the same machine with the same configuration, N,
batch, d and repeats is not measured again unless ``--force``.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_losses.py              # CPU, 1e4..1e7 items
    PYTHONPATH=. .venv/bin/python benchmarks/bench_losses.py --smoke      # 1e3 and 5e3 items, seconds
    PYTHONPATH=. .venv/bin/python benchmarks/bench_losses.py --device cuda --deadline $(( $(date +%s) + 60 ))
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import importlib.util
import io
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from srs_core.bench import StepSpec, machine, measure_isolated  # noqa: E402
from srs_core.losses import ChunkedCrossEntropy  # noqa: E402
from srs_core.results import atomic_write_bytes  # noqa: E402

OUT_DIR = Path(__file__).resolve().parent / "results"
DEFAULT_ITEMS = (10_000, 100_000, 1_280_000, 10_000_000)
SMOKE_ITEMS = (1_000, 5_000)
RAM_SHARE = 0.8  # skip a configuration estimated to need more than this share of the available memory
BASE_BYTES = 0.5e9  # the interpreter, torch, the encoder's own layers and the batches

#: (loss, optimizer, setting label, StepSpec fields): each loss in its chosen setting.
#: ce and cce: the traditional method (no L2: L2 alone does not help cross-entropy, README);
#: ns reference: the dissertation's setting (L2, 100 uniform negatives) with our optimizer;
#: ns, triplet, sampled_softmax: README's "extensions' settings" (params/default.yaml `extensions`);
#: gbce: gSASRec's recommendation (k = 256, t = 0.75, plain dot products), and k = 100; sce: its
#: defaults, and 16 buckets (the profiles' tuning grids try them; gBCE's t and offset cost nothing).
CONFIGS: list[tuple[str, str, str, dict]] = [
    ("ce", "dense", "no L2", {"l2": False}),
    ("cce", "dense", "no L2", {"l2": False}),
    ("ns", "sparse_fast", "L2, k=100 uniform", {"l2": True}),
    ("ns", "sparse_fast", "L2, S=5, k=100 popularity", {"l2": True, "score_scale": 5.0, "sampling": "popularity"}),
    ("triplet", "sparse_fast", "L2, m=0.5, k=100 popularity", {"l2": True, "sampling": "popularity"}),
    ("sampled_softmax", "sparse_fast", "L2, S=10, k=100 popularity, logq=single",
     {"l2": True, "score_scale": 10.0, "sampling": "popularity"}),
    ("sampled_softmax", "sparse_fast", "L2, S=10, k=100 popularity, logq=mixed",
     {"l2": True, "score_scale": 10.0, "sampling": "popularity", "logq": "mixed"}),
    ("gbce", "sparse_fast", "no L2, k=256 uniform, t=0.75", {"l2": False, "negatives": 256, "gbce_t": 0.75}),
    ("gbce", "sparse_fast", "no L2, k=100 uniform, t=0.75", {"l2": False, "negatives": 100, "gbce_t": 0.75}),
    ("sce", "sparse_fast", "no L2, 8 buckets x 256", {"l2": False, "sce_buckets": 8, "sce_bucket_size": 256}),
    ("sce", "sparse_fast", "no L2, 16 buckets x 256", {"l2": False, "sce_buckets": 16, "sce_bucket_size": 256}),
]
#: Measured on CUDA only: cce through the Triton kernel of the cut-cross-entropy package
#: (bf16 session vectors, srs_core.losses.ChunkedCrossEntropy), where that package is installed.
CUDA_CONFIGS: list[tuple[str, str, str, dict]] = [
    ("cce", "dense", "no L2, cut-cross-entropy kernel (bf16)", {"l2": False, "cce_kernel": "cut"}),
]
CE_REF = CONFIGS[0][:3]
NS_REF = CONFIGS[2][:3]

COLUMNS = ["machine", "date", "torch", "device", "model", "loss", "optimizer", "setting", "fields", "n_items", "batch", "dim",
           "repeats", "warmup", "median_ms", "min_ms", "max_ms", "peak_rss_mb", "setup_mb", "loss_extra_mb",
           "memory_measure", "estimate_gb", "wall_s", "ratio_vs_ns_sparse_fast", "ratio_vs_ce", "status", "note"]
KEY = ("machine", "device", "model", "loss", "optimizer", "setting", "n_items", "batch", "dim", "repeats")
SAME_N = ("machine", "device", "model", "n_items", "batch", "dim", "repeats")


# -- estimates ------------------------------------------------------------------------
def estimate_bytes(loss: str, optimizer: str, fields: dict, n: int, batch: int, dim: int) -> float:
    """About how much memory one configuration needs at ``n`` items (bytes)."""
    table = (n + 1) * dim * 4.0
    # dense Adam: the table, its two moments and a dense gradient; sparse_fast:
    # the table, its two moments and an N-entry row index
    total = BASE_BYTES + (4 * table if optimizer == "dense" else 3 * table + 8.0 * (n + 1))
    if loss in ("ce", "cce") and fields.get("l2", True):
        total += 2 * table  # the normalised copy of the table and its gradient
    if loss == "ce":
        # logits, their softmax, their gradient; and the backward of the table's
        # slice (rows 1..N) makes a table-sized gradient before the full one
        total += 3 * batch * n * 4.0 + table
    elif loss == "cce":
        total += 3 * batch * min(ChunkedCrossEntropy.chunk, n) * 4.0
    elif loss == "sce":
        total += 2 * fields.get("sce_buckets", 8) * n * 4.0  # bucket scores of every item, their top-k
        if fields.get("l2", True):
            total += table  # the normalised copy it scores (no gradient)
    total += 8.0 * (n + 1)  # the benchmark's item counts (int64)
    total += (48.0 if fields.get("sampling", "uniform") != "uniform" else 4.0) * (n + 1)  # the sampler's tables
    if fields.get("logq", "single") != "single":
        total += 24.0 * (n + 1)  # the popularity and its log (float64 while made)
    return total


def scales_with_n(loss: str, optimizer: str) -> bool:
    """Whether the step itself is linear in N (a dense update, or a loss that reads the whole table)."""
    return optimizer == "dense" or loss in ("ce", "cce", "sce")


def estimate_seconds(loss: str, optimizer: str, n: int, prev: dict, overhead: float, steps: int) -> float:
    """About how long the child at ``n`` items takes, from the same
    configuration's row ``prev`` at fewer items: a fixed ``overhead`` (start,
    imports; measured at the smallest N) plus the set-up (linear in N: the
    table) plus the steps (linear in N where :func:`scales_with_n`, else
    growing slowly)."""
    r = n / float(prev["n_items"])
    prev_steps = int(prev["warmup"]) + int(prev["repeats"]) if prev.get("warmup") not in (None, "") else steps
    steps_s = prev_steps * float(prev["median_ms"]) / 1e3
    per_step = float(prev["median_ms"]) / 1e3
    setup = max(float(prev["wall_s"]) - overhead - steps_s, 0.0)
    return overhead + setup * r + steps * per_step * (r if scales_with_n(loss, optimizer) else r ** 0.25)


def available_bytes(device: torch.device, ram_gb: float | None) -> float:
    """The memory a configuration may use: ``--ram-gb``, else free CUDA memory or ``MemAvailable``."""
    if ram_gb is not None:
        return ram_gb * 1e9
    if device.type == "cuda":
        return float(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024.0
    except OSError:
        pass
    return math.inf  # unknown: do not skip


# -- the CSV --------------------------------------------------------------------------
def key_of(row: dict) -> tuple:
    return tuple(str(row.get(k, "")) for k in KEY)


def read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _num(x) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def add_ratios(rows: list[dict]) -> None:
    """Fill ``ratio_vs_ce`` and ``ratio_vs_ns_sparse_fast`` of every measured
    row from the reference rows measured at the same N on the same machine."""
    refs: dict[tuple, dict[tuple, float]] = {}
    for r in rows:
        t = (r["loss"], r["optimizer"], r["setting"])
        if r.get("status") == "ok" and t in (CE_REF, NS_REF) and _num(r.get("median_ms")):
            refs.setdefault(tuple(str(r.get(k, "")) for k in SAME_N), {})[t] = _num(r["median_ms"])
    for r in rows:
        own = _num(r.get("median_ms")) if r.get("status") == "ok" else None
        ref = refs.get(tuple(str(r.get(k, "")) for k in SAME_N), {})
        for col, t in (("ratio_vs_ce", CE_REF), ("ratio_vs_ns_sparse_fast", NS_REF)):
            r[col] = round(own / ref[t], 4) if own and t in ref else ""


def write_rows(path: Path, rows: list[dict]) -> None:
    """All rows, ratios refreshed, written atomically (the old file or the new one, never half of one)."""
    add_ratios(rows)
    cols = COLUMNS + sorted({k for r in rows for k in r} - set(COLUMNS))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, restval="", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_bytes(path, buf.getvalue().encode())


# -- the run --------------------------------------------------------------------------
def failure(exc: Exception) -> str:
    """One line for a failed child: the last line of its stderr, or what is known."""
    text = str(exc)
    stderr = text.split("failed:\n", 1)[1] if "failed:\n" in text else text
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    if lines:
        return lines[-1][:300]
    return "the child process ended without a message (killed, e.g. out of memory?)"


def measure(spec: StepSpec, timeout: float) -> tuple[dict, float]:
    """The child's result and its wall time (s)."""
    t0 = time.perf_counter()
    res = measure_isolated(spec, timeout=timeout)
    return res, time.perf_counter() - t0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--items", type=float, nargs="+", default=None,
                   help="catalogue sizes N (default 1e4 1e5 1.28e6 1e7; --smoke: 1000 5000)")
    p.add_argument("--model", default="stamp")
    p.add_argument("--losses", nargs="+", default=None, help="only the configurations of these losses (default: all)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--dim", type=int, default=100)
    p.add_argument("--repeats", type=int, default=None, help="timed steps (default 5; --smoke: 2)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 2; --smoke: 1)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--max-seconds-per-config", type=float, default=600.0,
                   help="skip a configuration whose estimated time (from the previous N) exceeds this")
    p.add_argument("--deadline", type=float, default=0.0,
                   help="Unix time after which no configuration is launched (0: none)")
    p.add_argument("--ram-gb", type=float, default=None,
                   help="memory (GB) a configuration may use before the 80%% rule; default: what is available")
    p.add_argument("--force", action="store_true", help="measure again rows that the CSV already has")
    p.add_argument("--smoke", action="store_true",
                   help="N in {1000, 5000}, 2 repeats, 1 warm-up (unless given), a *_smoke.csv: checks that it runs")
    p.add_argument("--out", default=None, help="CSV to write (default: benchmarks/results/losses_<device>.csv)")
    a = p.parse_args(argv)
    device = torch.device(a.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda but CUDA is not available")
    for name, full, smoke in (("items", list(DEFAULT_ITEMS), list(SMOKE_ITEMS)), ("repeats", 5, 2), ("warmup", 2, 1)):
        if getattr(a, name) is None:
            setattr(a, name, smoke if a.smoke else full)
    stem = f"losses_{device.type}" + ("_smoke" if a.smoke else "")
    out = Path(a.out) if a.out else OUT_DIR / f"{stem}.csv"
    items = sorted({int(n) for n in a.items})
    steps = a.warmup + a.repeats
    avail = available_bytes(device, a.ram_gb)
    here = {"machine": machine(device), "device": device.type, "torch": torch.__version__, "model": a.model,
            "batch": a.batch, "dim": a.dim, "repeats": a.repeats, "warmup": a.warmup,
            "memory_measure": "cuda allocated" if device.type == "cuda" else "rss"}
    print(f"{here['machine']}, torch {torch.__version__}; memory for a configuration: "
          f"{RAM_SHARE:.0%} of {avail / 1e9:.1f} GB; writing {out}", flush=True)
    rows = read_rows(out)
    index = {key_of(r): i for i, r in enumerate(rows)}

    def put(row: dict) -> dict:
        k = key_of(row)
        if k in index:
            rows[index[k]] = row
        else:
            index[k] = len(rows)
            rows.append(row)
        write_rows(out, rows)
        return row

    configs = [c for c in CONFIGS + (CUDA_CONFIGS if device.type == "cuda" else [])
               if a.losses is None or c[0] in a.losses]
    if not configs:
        p.error(f"--losses names none of {sorted({c[0] for c in CONFIGS})}")
    for loss, optimizer, setting, fields in configs:
        prev: dict | None = None  # this configuration's last measured row (for the time estimate)
        overhead: float | None = None
        blocked: str | None = None  # why a smaller N was not measured: larger ones are not tried either
        if fields.get("cce_kernel") == "cut" and importlib.util.find_spec("cut_cross_entropy") is None:
            blocked = "the cut-cross-entropy package is not installed here (pip install cut-cross-entropy)"
        for n in items:
            base = dict(here, date=dt.date.today().isoformat(), loss=loss, optimizer=optimizer, setting=setting,
                        fields=json.dumps(fields, sort_keys=True), n_items=n)
            old = rows[index[key_of(base)]] if key_of(base) in index else None
            if old is not None and old.get("status") == "ok" and not a.force:
                prev = old
                if overhead is None and _num(old.get("wall_s")) is not None:
                    old_steps = int(old.get("warmup") or a.warmup) + int(old["repeats"])
                    overhead = max(_num(old["wall_s"]) - old_steps * _num(old["median_ms"]) / 1e3, 0.0)
                print(f"{loss:<16} {setting:<42} {n:>10,}  kept from {out.name}", flush=True)
                continue
            need = estimate_bytes(loss, optimizer, fields, n, a.batch, a.dim)
            base["estimate_gb"] = round(need / 1e9, 3)
            known = prev is not None and overhead is not None and _num(prev.get("wall_s")) is not None
            est_s = estimate_seconds(loss, optimizer, n, prev, overhead, steps) if known else None
            left = a.deadline - time.time() if a.deadline else math.inf
            if left <= 0:
                status = "not run: past the deadline"
            elif blocked:
                status = f"skipped: {blocked}"
            elif need > RAM_SHARE * avail:
                status = f"skipped: needs about {need / 1e9:.1f} GB (has {avail / 1e9:.1f} GB)"
            elif est_s is not None and est_s > a.max_seconds_per_config:
                status = f"skipped: would take about {est_s:.0f} s (limit {a.max_seconds_per_config:.0f} s)"
            elif est_s is not None and est_s > left:
                status = f"not run: about {est_s:.0f} s would pass the deadline ({left:.0f} s left)"
            else:
                status = None
            if status is not None:
                put(dict(base, status=status))
                print(f"{loss:<16} {setting:<42} {n:>10,}  {status}", flush=True)
                continue
            spec = StepSpec(model=a.model, loss=loss, optimizer=optimizer, n_items=n, batch_size=a.batch, dim=a.dim,
                            repeats=a.repeats, warmup=a.warmup, device=a.device, **fields)
            limit = 2 * a.max_seconds_per_config + 60
            if a.deadline:
                limit = min(limit, max(left, 0) + 30)  # a child launched just before the deadline may finish
            try:
                res, wall = measure(spec, timeout=limit)
            except subprocess.TimeoutExpired:
                status = f"error: timed out after {limit:.0f} s"
            except Exception as exc:  # one failed configuration must not end the run
                status = "error: " + failure(exc)
            else:
                row = dict(base, median_ms=round(res["median_ms"], 4), min_ms=round(res["min_ms"], 4),
                           max_ms=round(res["max_ms"], 4), peak_rss_mb=round(res["peak_rss_mb"], 1),
                           setup_mb=round(res["setup_mb"], 1), loss_extra_mb=round(res["step_extra_mb"], 1),
                           wall_s=round(wall, 2), status="ok")
                if not res.get("step_peak_exact", True):
                    row["note"] = "peak not reset after set-up: loss_extra_mb includes the set-up's peak"
                put(row)
                prev = row
                if overhead is None:
                    overhead = max(wall - steps * res["median_ms"] / 1e3, 0.0)
                print(f"{loss:<16} {setting:<42} {n:>10,}  {row['median_ms']:>10.2f} ms  "
                      f"peak {row['peak_rss_mb']:>8.0f} MB  extra {row['loss_extra_mb']:>8.0f} MB  ({wall:.0f} s)",
                      flush=True)
                continue
            put(dict(base, status=status))
            blocked = f"the same configuration failed at {n:,} items"
            print(f"{loss:<16} {setting:<42} {n:>10,}  {status}", flush=True)
    write_rows(out, rows)
    mine = [r for r in rows if all(str(r.get(k)) == str(here[k]) for k in ("machine", "device", "model", "repeats"))
            and int(r["n_items"]) in items]
    print(f"\n{'loss':<16} {'setting':<42} {'items':>10} {'ms':>10} {'vs ce':>8} {'vs ns':>8} {'extra MB':>9}  status")
    for r in mine:
        print(f"{r['loss']:<16} {r['setting']:<42} {int(r['n_items']):>10,} {r.get('median_ms', ''):>10} "
              f"{r.get('ratio_vs_ce', ''):>8} {r.get('ratio_vs_ns_sparse_fast', ''):>8} "
              f"{r.get('loss_extra_mb', ''):>9}  {r['status']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
