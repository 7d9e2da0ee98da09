"""Helpers shared by the benchmark scripts: a toy encoder,
synchronised clocks, memory readings and the machine's name (random
batches come from :func:`srs_core.bench.random_batches`)."""
from __future__ import annotations

import platform
import time
from pathlib import Path

import torch
from torch import nn

from srs_core.bench import random_batches  # noqa: F401  (re-exported for the scripts)
from srs_core.models.base import SessionEncoder

OUT_DIR = Path(__file__).parent / "results"  # measured CSVs, committed: the book reads them


class ToyEncoder(SessionEncoder):
    """The issue's toy encoder: mean and last-item pooling, one linear layer."""

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
    if name == "toy":
        return ToyEncoder(n_items, dim, sparse)
    from srs_core.models import build_model

    return build_model(name, n_items, dim=dim, sparse=sparse)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def clock(device: torch.device) -> float:
    """``perf_counter`` after the device has finished its queued work."""
    sync(device)
    return time.perf_counter()


# -- memory -------------------------------------------------------------------
def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        try:  # Linux: writing 5 resets the peak resident set size (VmHWM)
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
        except OSError:
            pass


def current_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device) / 2**20
    return _status_kb("VmRSS") / 1024


def peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return _status_kb("VmHWM") / 1024


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{name} ({torch.get_num_threads()} threads)"


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
