"""Shared fixtures: the real Diginetica sample and one tiny synthetic dataset."""
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# ../shared/data relative to the repository root (present on CI and developer machines)
SHARED_DATA = ROOT.parent / "shared" / "data"
DIGINETICA_SAMPLE = SHARED_DATA / "diginetica-sample" / "train-item-views.csv"


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
