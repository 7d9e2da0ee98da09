"""Shared fixtures: the real Diginetica sample and one tiny synthetic dataset.

`make test` runs the unit tests on two pytest-xdist workers (``-n 2``), one
process per core: each worker then uses one torch thread, and so do the
processes it starts, so that two workers do not share two cores four ways.
"""
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# ../shared/data relative to the repository root (present on CI and developer machines)
SHARED_DATA = ROOT.parent / "shared" / "data"
DIGINETICA_SAMPLE = SHARED_DATA / "diginetica-sample" / "train-item-views.csv"


# The longest modules first, so that the two workers end together rather than
# one of them starting the ci book's build (minutes) last.
LONGEST_FIRST = ("test_user_path.py", "test_bench_losses.py", "test_synthetic.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each module keeps its order


def pytest_configure(config):
    if os.environ.get("PYTEST_XDIST_WORKER"):  # set in each worker process by pytest-xdist
        os.environ["OMP_NUM_THREADS"] = "1"
        import torch

        torch.set_num_threads(1)


@pytest.fixture(scope="session")
def diginetica_sample() -> Path:
    """The real 12k-view Diginetica sample; skipped only where the folder is absent."""
    if not DIGINETICA_SAMPLE.parent.is_dir():
        pytest.skip(f"{DIGINETICA_SAMPLE.parent} is absent")
    return DIGINETICA_SAMPLE


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """A processed synthetic dataset (diginetica preset, scale 0.02, seed 0): ~2k items, ~4k train sessions."""
    from srs_core.data.synthetic import synthesize

    return synthesize("diginetica", 0.02, 0, tmp_path_factory.mktemp("synth") / "diginetica-0.02", quiet=True)
