"""The one benchmark harness: time a training step against catalogue size.

Used by ``notebooks/04-scaling.ipynb`` and by every script in ``benchmarks/``.
A measurement builds a model with ``n_items`` items, draws a fixed set of
random batches (batch 128, prefixes of 1..24 items by default), warms up,
then times ``repeats`` full steps (forward, loss, backward, optimizer) and
reports the median. ``measure_isolated`` runs it in a fresh Python process so
that the peak resident memory (``ru_maxrss``) belongs to that one
configuration alone; each measurement also says what the steps add on top
of the built model, optimizer and loss (``step_extra_mb``). The step is the
training step itself (:class:`srs_core.training.step.TrainStep`); the
helpers below (a toy encoder, device clocks, memory readings, the machine's
name, waiting for a quiet CPU) serve the scripts.
"""
from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from srs_core.losses import build_loss, loss_class
from srs_core.losses.registry import settings_of, with_options
from srs_core.models.base import SessionEncoder
from srs_core.training.runtime import clock, machine_name, sync


@dataclass(frozen=True)
class StepFields:
    """What one timed training step is: the model, the loss and optimizer, the
    catalogue, the batch, and how it is timed."""

    model: str = "stamp"
    loss: str = "ns"
    optimizer: str = "sparse_fast"
    n_items: int = 10_000
    l2: bool = True
    batch_size: int = 128
    max_len: int = 24
    dim: int = 100
    repeats: int = 5
    warmup: int = 2
    device: str = "cpu"
    seed: int = 0


#: A timed step: :class:`StepFields` and every loss's options (the names and
#: defaults of ``srs train``'s flags, declared beside each loss).
StepSpec = with_options("StepSpec", StepFields)


def random_batches(n: int, batch_size: int, max_len: int, n_items: int, device, seed: int = 0):
    """``n`` right-padded ``(items, lengths, targets)`` batches of width
    ``max_len``: lengths uniform in 1..max_len, items and targets uniform over
    the catalogue (ids 1..n_items; 0 pads). Same seed, same batches."""
    gen = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        lengths = gen.integers(1, max_len + 1, size=batch_size)
        items = gen.integers(1, n_items + 1, size=(batch_size, max_len))
        items[np.arange(max_len)[None, :] >= lengths[:, None]] = 0
        targets = gen.integers(1, n_items + 1, size=batch_size)
        out.append(tuple(torch.as_tensor(a, dtype=torch.long, device=device) for a in (items, lengths, targets)))
    return out


def build_step(spec: StepSpec):
    """``step(items, lengths, targets) -> loss``: the training step
    (:class:`~srs_core.training.step.TrainStep`: forward, loss with its
    negatives drawn inside, backward, both optimizers) of a fresh model
    built from ``spec``."""
    from srs_core.models import build_model
    from srs_core.optim import build_optimizer, check_combination, embedding_is_sparse
    from srs_core.training.step import TrainStep

    check_combination(spec.loss, spec.optimizer, dense_gradient=loss_class(spec.loss).dense_gradient)
    device = torch.device(spec.device)
    torch.manual_seed(spec.seed)
    model = build_model(spec.model, spec.n_items, dim=spec.dim, sparse=embedding_is_sparse(spec.optimizer)).to(device)
    opt = build_optimizer(model, spec.optimizer)
    # Zipf-like counts (item i seen about 1e6 / i times): the popularity
    # sampler then searches a realistic, skewed table; uniform ignores them.
    counts = np.zeros(spec.n_items + 1, dtype=np.int64)
    counts[1:] = np.maximum(1, 1e6 / np.arange(1, spec.n_items + 1)).astype(np.int64)
    loss_fn = build_loss(spec.loss, counts=counts, device=device, settings=spec)
    gen = torch.Generator(device=device)
    gen.manual_seed(spec.seed)
    return TrainStep(model, loss_fn, opt, l2=spec.l2, generator=gen)


def time_step(spec: StepSpec) -> dict:
    """Median wall time of one training step (ms), measured in this process.

    Memory, in MB of the device's own measure (resident memory on CPU,
    ``torch.cuda`` allocations on CUDA): ``setup_mb`` once the model, the
    optimizer, the loss and the batches are built; ``warm_mb`` after the
    warm-up steps (the optimizer's lazily made states and the kept gradients
    now exist); ``step_peak_mb`` the peak over all the steps (warm-up
    included); ``step_extra_mb = step_peak_mb - setup_mb``, what the steps
    add to the built set-up. ``step_peak_exact`` is False where the peak
    could not be reset after the set-up (then the set-up's own transient
    peak may be in it). ``peak_rss_mb`` is the process's peak resident
    memory over everything, set-up included."""
    device = torch.device(spec.device)
    step = build_step(spec)
    batches = random_batches(spec.warmup + spec.repeats, spec.batch_size, spec.max_len, spec.n_items, device, spec.seed)
    sync(device)
    setup_mb = current_mb(device)
    setup_peak_rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, _status_kb("VmHWM")) / 1024
    exact = reset_peak(device)  # on CPU this also lowers ru_maxrss: the set-up's peak is kept above
    warm_mb = setup_mb
    times = []
    for i, batch in enumerate(batches):
        if i == spec.warmup:
            warm_mb = current_mb(device)
        t0 = clock(device)
        step(*batch)
        if i >= spec.warmup:
            times.append((clock(device) - t0) * 1e3)
    step_peak = peak_mb(device)
    return {**asdict(spec), "median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times),
            "peak_rss_mb": max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, setup_peak_rss),
            "setup_mb": setup_mb, "warm_mb": warm_mb, "step_peak_mb": step_peak, "step_extra_mb": step_peak - setup_mb,
            "step_peak_exact": exact, "threads": torch.get_num_threads()}


def measure_isolated(spec: StepSpec, timeout: float = 900) -> dict:
    """``time_step`` in a fresh interpreter, so peak RSS is this config's own."""
    code = ("import json,sys; from srs_core.bench import StepSpec, time_step; "
            "print(json.dumps(time_step(StepSpec(**json.loads(sys.argv[1])))))")
    res = subprocess.run([sys.executable, "-c", code, json.dumps(asdict(spec))], capture_output=True, text=True,
                         timeout=timeout)
    if res.returncode != 0:
        raise RuntimeError(f"benchmark of {spec} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def benchmark_results(folder) -> dict:
    """The committed benchmark CSVs (``benchmarks/results``), as tables keyed by
    file stem. Each row names the machine it was measured on and the date."""
    import pandas as pd
    from pathlib import Path

    folder = Path(folder)
    return {f.stem: pd.read_csv(f) for f in sorted(folder.glob("*.csv")) if "smoke" not in f.stem}


def cost_key(loss: str, optimizer: str, fields: dict) -> tuple:
    """The part of a configuration its step time depends on: the loss, dense or
    row-sparse updates (``sparse`` and ``sparse_fast`` make the same update;
    ``benchmarks/bench_losses.py`` times ``sparse_fast``, the faster), and what
    the loss declares (:meth:`srs_core.losses.base.Loss.cost_key`: L2 for the
    full-catalogue losses, the negatives' source and count for the sampled
    ones, a kernel or buckets). ``fields`` may leave out options at their
    defaults; L2 defaults to off. Two configurations with the same key cost
    the same step, up to noise."""
    known = settings_of().__dict__
    settings = settings_of(loss=loss, l2=bool(fields.get("l2", False)),
                           **{k: v for k, v in fields.items() if k in known and k not in ("loss", "l2")})
    return (loss, "dense" if optimizer == "dense" else "sparse") + loss_class(loss).cost_key(settings)


def step_ms_at(bench, loss: str, optimizer: str, fields: dict, n_items: int) -> float:
    """The median step time (ms) that ``bench`` (``benchmarks/bench_losses.py``'s
    CSV as a table, with its ``fields`` column) measured for a configuration of
    the same :func:`cost_key` at ``n_items`` items; ``NaN`` if none was measured."""
    want = cost_key(loss, optimizer, fields)
    if bench is None or "fields" not in bench:
        return float("nan")
    for r in bench[(bench.n_items == n_items) & (bench.status == "ok")].itertuples():
        if cost_key(r.loss, r.optimizer, json.loads(r.fields)) == want:
            return float(r.median_ms)
    return float("nan")


# -- helpers of the benchmark scripts -------------------------------------------
class ToyEncoder(SessionEncoder):
    """A toy encoder for benchmarks: mean and last-item pooling, one linear layer."""

    name = "toy"

    def __init__(self, n_items: int, dim: int = 100, sparse: bool = False) -> None:
        super().__init__(n_items, dim, sparse)
        self.lin = nn.Linear(2 * dim, dim)

    def forward(self, items, lengths):
        x = self.item_embedding(items)
        mean = x.sum(1) / lengths.unsqueeze(1).to(x.dtype)
        last = x[torch.arange(items.shape[0], device=items.device), lengths - 1]
        return self.lin(torch.cat([mean, last], 1))


def make_model(name: str, n_items: int, dim: int, sparse: bool) -> SessionEncoder:
    """A registered encoder, or ``"toy"``."""
    if name == "toy":
        return ToyEncoder(n_items, dim, sparse)
    from srs_core.models import build_model

    return build_model(name, n_items, dim=dim, sparse=sparse)


def _status_kb(field: str) -> int:
    """A field of ``/proc/self/status`` in kB; 0 where there is none (not Linux)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_peak(device: torch.device) -> bool:
    """Restart the device's peak-memory reading from now; False where it
    could not (then ``peak_mb`` still includes the earlier peak)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return True
    try:  # Linux: writing 5 resets the peak resident set size (VmHWM)
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def current_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device) / 2**20
    return _status_kb("VmRSS") / 1024


def peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return _status_kb("VmHWM") / 1024


def machine(device: torch.device | str = "cpu") -> str:
    """The machine a benchmark row was measured on: the GPU, or the CPU with its thread count."""
    device = torch.device(device)
    name = machine_name(device)
    return name if device.type == "cuda" else f"{name} ({torch.get_num_threads()} threads)"


def _cpu_times() -> tuple[int, int]:
    with open("/proc/stat") as fh:
        vals = [int(x) for x in fh.readline().split()[1:]]
    return sum(vals), vals[3] + vals[4]  # total, idle + iowait


def wait_for_quiet(min_idle: float = 0.9, window: float = 1.0, timeout: float = 120.0) -> float:
    """Wait (at most ``timeout`` s) until the CPUs were at least ``min_idle``
    idle over a ``window``; returns the seconds waited. On a shared machine
    this keeps other people's bursts out of the timed steps."""
    start = time.perf_counter()
    while True:
        t0, i0 = _cpu_times()
        time.sleep(window)
        t1, i1 = _cpu_times()
        idle = (i1 - i0) / max(t1 - t0, 1)
        if idle >= min_idle or time.perf_counter() - start > timeout:
            return time.perf_counter() - start
