"""Kill anywhere, resume identically: a run stopped by SIGKILL at
five points, or by SIGTERM or Ctrl-C, and started again with the same command
ends with the record and test ranks of a run that was never stopped."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_train import write_dataset

HELPER = Path(__file__).with_name("kill_at.py")
EPOCHS = 3
# (point, N): N counts events from the start of the run (see kill_at.py)
KILLS = {
    "mid-epoch": 50,  # inside epoch 2 (the toy has about 30 batches an epoch)
    "evaluation": 3,  # epoch 2's validation pass
    "checkpoint-write": 2,  # epoch 2's checkpoint
    "result-write": 3,  # epoch 2's record (the first write is the `running` record)
    "between-epochs": 2,  # after epoch 1's record, before epoch 2 starts
}
TIMING = ("train_seconds", "eval_seconds", "environment", "peak_")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("kill") / "toy", n_valid=40)


def srs_train(data: Path, run: Path, point: str = "none", n: int = 0, sig: str = "KILL"):
    argv = ["train", "--data", str(data), "--model", "stamp", "--loss", "ns", "--optimizer", "sparse_fast", "--l2",
            "--dim", "16", "--batch-size", "32", "--negatives", "8", "--epochs", str(EPOCHS), "--device", "cpu",
            "--output", str(run), "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HELPER.parents[1])}
    return subprocess.run([sys.executable, str(HELPER), point, str(n), sig, *argv], capture_output=True, text=True,
                          env=env, timeout=300)


def without_timing(obj):
    if isinstance(obj, dict):
        return {k: without_timing(v) for k, v in obj.items() if not k.startswith(TIMING)}
    if isinstance(obj, list):
        return [without_timing(v) for v in obj]
    return obj


def finished(run: Path) -> tuple[dict, bytes]:
    assert not list(run.glob(".*.tmp")) and not (run / ".lock").exists(), sorted(p.name for p in run.iterdir())
    return without_timing(json.loads((run / "result.json").read_text())), (run / "ranks.npy").read_bytes()


@pytest.fixture(scope="module")
def uninterrupted(data, tmp_path_factory):
    run = tmp_path_factory.mktemp("whole") / "run"
    done = srs_train(data, run)
    assert done.returncode == 0, done.stderr
    return finished(run)


@pytest.mark.parametrize("point", list(KILLS))
def test_sigkill_then_the_same_command_gives_the_same_record(data, uninterrupted, tmp_path, point):
    run = tmp_path / "run"
    killed = srs_train(data, run, point, KILLS[point])
    assert killed.returncode == -9, (point, killed.returncode, killed.stderr[-2000:])
    record = json.loads((run / "result.json").read_text())
    assert record["status"] == "running"  # what it had finished is on disk, readable
    resumed = srs_train(data, run)
    assert resumed.returncode == 0, resumed.stderr
    assert finished(run) == uninterrupted


@pytest.mark.parametrize("sig", ["TERM", "INT"])
def test_sigterm_and_ctrl_c_say_how_to_resume(data, uninterrupted, tmp_path, sig):
    run = tmp_path / "run"
    stopped = srs_train(data, run, "mid-epoch", KILLS["mid-epoch"], sig)
    assert stopped.returncode == 130, stopped.stderr[-2000:]
    assert "Traceback" not in stopped.stderr
    assert f"interrupted ({'SIGTERM' if sig == 'TERM' else 'Ctrl-C'})" in stopped.stderr
    assert "run the same command again to resume" in stopped.stderr
    assert srs_train(data, run).returncode == 0
    assert finished(run) == uninterrupted
