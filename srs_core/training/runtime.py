"""Where a run executes: the device, clocks, progress bars and the record of
the machine. Nothing here changes a result."""
from __future__ import annotations

import ctypes
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from srs_core.progress import tqdm

PROGRESS_EVERY = 50  # steps between progress-bar updates

#: glibc's mallopt parameter and the value every training process sets (1 MiB).
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 1 << 20
_heap_bounded: bool | None = None


def bound_heap() -> bool:
    """Fix glibc's mmap threshold at 1 MiB for this process, so that every
    block of 1 MiB or more (a step's logits, its gradients) is mapped on its
    own and handed back to the system when freed. Returns whether it is set.

    Why: glibc raises its threshold after the first such block is freed (up
    to 32 MiB), so later ones land on the heap between the small tensors that
    a step makes; the freed space is then cut up and rarely fits the next
    step's large block, and the heap grows by about one logits matrix a step.
    Cross-entropy at 43k items then filled 24 GB within an epoch; with the
    fixed threshold it stays flat (``benchmarks/bench_memory.py``, the test
    ``tests/test_memory.py``). Called when a run is set up, so it holds for
    ``srs train``, for the notebooks' kernels and worker processes and for
    every process under torchrun. A no-op off glibc and where the user has set
    ``MALLOC_MMAP_THRESHOLD_`` (glibc's own variable, which then wins)."""
    global _heap_bounded
    if _heap_bounded is None:
        _heap_bounded = False
        if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc" \
                and "MALLOC_MMAP_THRESHOLD_" not in os.environ:
            try:
                _heap_bounded = bool(ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
            except (OSError, AttributeError):
                _heap_bounded = False
    return _heap_bounded


def resolve_device(name: str, local_rank: int | None = None) -> torch.device:
    """The torch device for ``--device name``. ``local_rank`` (a torchrun
    process) maps ``auto`` and ``cuda`` to that process's own GPU."""
    cuda = torch.cuda.is_available()
    if local_rank is None:
        if name == "auto":
            return torch.device("cuda" if cuda else "cpu")
        dev = torch.device(name)
        if dev.type == "cuda" and not cuda:
            raise ValueError(f"device {name!r} was asked for but CUDA is not available; use --device cpu or auto")
        return dev
    if name == "cpu" or (name == "auto" and not cuda):
        return torch.device("cpu")
    if name not in ("auto", "cuda"):
        raise ValueError(f"under torchrun each process uses the GPU of its LOCAL_RANK: pass --device cuda or auto, "
                         f"not {name!r}")
    if not cuda:
        raise ValueError("device 'cuda' was asked for but CUDA is not available; use --device cpu or auto")
    if local_rank >= torch.cuda.device_count():
        raise ValueError(f"LOCAL_RANK {local_rank} but this machine has {torch.cuda.device_count()} GPUs: "
                         "use --nproc_per_node at most the number of GPUs")
    return torch.device("cuda", local_rank)


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def clock(device: torch.device) -> float:
    """``perf_counter`` after the device has finished its queued work."""
    sync(device)
    return time.perf_counter()


def progress(iterable, total: int, *, every: int = PROGRESS_EVERY, **tqdm_kw):
    """Yield from ``iterable`` under a tqdm bar advanced every ``every`` items
    (not on every step)."""
    with tqdm(total=total, **tqdm_kw) as bar:
        i = shown = 0
        for i, x in enumerate(iterable, 1):
            yield x
            if i - shown >= every:
                bar.update(i - shown)
                shown = i
        bar.update(i - shown)


def machine_name(device: torch.device | str = "cpu") -> str:
    """The GPU's name, or the CPU's model name from ``/proc/cpuinfo``."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            name = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), name)
    except OSError:
        pass
    return name


def environment(device: torch.device) -> dict:
    """What a run record says about the machine and software that made it."""
    import srs_core

    env = {
        "device": str(device),
        "device_name": machine_name(device),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "srs_core": srs_core.__version__,
        "threads": torch.get_num_threads(),
    }
    try:
        root = Path(__file__).resolve().parents[2]
        env["git_commit"] = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        ).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        env["git_commit"] = None
    return env


def peak_memory(device: torch.device) -> dict:
    mem = {"peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    if device.type == "cuda":
        mem["cuda_peak_bytes"] = torch.cuda.max_memory_allocated(device)
    return mem
