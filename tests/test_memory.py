"""Training memory stays bounded at catalogue sizes where a step's logits are megabytes.

At 20k items one cross-entropy step makes about 10 MB of logits and their
gradient. Before the fix, the heap grew by about that much every step
(1 GB over 150 steps on 2026-12-06, AMD EPYC): glibc put the large blocks
on the heap between small tensors that outlived the step, then could not
reuse the freed space (:func:`srs_core.training.runtime.bound_heap`).
"""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from srs_core.data.integrity import save_dataset

#: What 150 steps may add to the resident memory after 10 warm-up steps. The
#: fixed heap stays within a few MB; the old one grew by about 1 GB.
GROWTH_BOUND_MB = 150


@pytest.fixture(scope="module")
def wide_dataset(tmp_path_factory):
    """20,000 items, 160 batches of 128 random samples (prefixes of 1-10 items)."""
    rng = np.random.default_rng(0)
    n_items, lengths = 20_000, rng.integers(2, 12, 3_500)
    lengths = lengths[: np.searchsorted(np.cumsum(lengths - 1), 160 * 128) + 1]
    items = rng.integers(1, n_items + 1, int(lengths.sum())).astype(np.int32)
    test = rng.integers(1, n_items + 1, 20).astype(np.int32)
    stats = {"n_items": n_items, "n_train_sessions": len(lengths), "n_train_samples": int((lengths - 1).sum()),
             "n_test_sessions": 10, "n_test_samples": 10, "avg_train_session_length": float(lengths.mean())}
    splits = {"train": (items, np.r_[0, np.cumsum(lengths)], np.arange(len(lengths), dtype=float)),
              "test": (test, np.arange(0, 21, 2), np.arange(10, dtype=float))}
    return save_dataset(tmp_path_factory.mktemp("wide") / "wide", splits, range(1, n_items + 1), stats, {})


SCRIPT = textwrap.dedent("""
    import json, sys, itertools
    from pathlib import Path
    import torch
    from srs_core.training import TrainConfig
    from srs_core.training.loop import Run
    from srs_core.training.distributed import SINGLE

    def rss_mb():
        return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20

    torch.set_num_threads(1)
    cfg = TrainConfig(data=sys.argv[1], model="stamp", loss="ce", optimizer="dense", device="cpu")
    run = Run(cfg, Path(sys.argv[2]), SINGLE, torch.device("cpu"), True).setup()
    for batch in itertools.islice(run.batches(), 10):  # warm-up: Adam's state, the first buffers
        run.step(*batch)
    before = rss_mb()
    loss, _ = run.train_epoch(1)  # the epoch loop itself, about 160 steps
    print(json.dumps({"before": before, "after": rss_mb(), "steps": run.n_batches, "loss": loss}))
""")


def test_cross_entropy_steps_keep_resident_memory_flat(wide_dataset, tmp_path):
    """The training loop as `srs train` runs it, in a fresh process (the allocator's state is per process)."""
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(wide_dataset), str(tmp_path / "run")],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    m = json.loads(out.stdout.strip().splitlines()[-1])
    assert m["steps"] >= 150 and np.isfinite(m["loss"])
    assert m["after"] - m["before"] < GROWTH_BOUND_MB, (
        f"resident memory grew by {m['after'] - m['before']:.0f} MB over {m['steps']} cross-entropy steps at 20k items")
