"""A run directory belongs to one configuration and one process; a damaged
checkpoint gets a clear message."""
import json
import os
import subprocess
import sys

import pytest

from srs_core.cli import main as cli_main
from srs_core.results import read_record
from srs_core.training import fit
from srs_core.training.rundir import LOCK_FILE, RunLock

from test_train import cfg, toy  # noqa: F401  (fixture)


def test_another_configuration_is_refused_and_the_first_result_kept(toy, tmp_path):
    first = fit(cfg(toy, epochs=1), tmp_path / "run", quiet=True)
    before = (tmp_path / "run" / "result.json").read_bytes()
    with pytest.raises(ValueError, match=r"another configuration \(l2: False -> True; loss: 'ce' -> 'ns'; optimizer: 'dense' -> 'sparse_fast'\).*--force"):
        fit(cfg(toy, epochs=1, loss="ns", optimizer="sparse_fast", l2=True), tmp_path / "run", quiet=True)
    assert (tmp_path / "run" / "result.json").read_bytes() == before
    assert read_record(tmp_path / "run")["config_hash"] == first["config_hash"]


def test_force_moves_the_old_run_aside(toy, tmp_path):
    first = fit(cfg(toy, epochs=1), tmp_path / "run", quiet=True)
    second = fit(cfg(toy, epochs=1, loss="ns", optimizer="sparse_fast", l2=True), tmp_path / "run", quiet=True, force=True)
    aside = tmp_path / "run" / f"replaced-{first['config_hash']}"
    assert json.loads((aside / "result.json").read_text()) == first
    assert (aside / "checkpoint.pt").is_file()
    assert read_record(tmp_path / "run")["config_hash"] == second["config_hash"] != first["config_hash"]


def test_the_cli_names_both_configurations_and_the_way_out(toy, tmp_path, capsys):
    out = str(tmp_path / "run")
    assert cli_main(["train", "--data", str(toy), "--model", "stamp", "--epochs", "1", "--output", out, "--quiet"]) == 0
    assert cli_main(["train", "--data", str(toy), "--model", "stamp", "--epochs", "1", "--lr", "0.01",
                     "--output", out, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "srs train: error:" in err and "lr: 0.001 -> 0.01" in err and "--force" in err and "Traceback" not in err


def test_a_second_process_is_refused_while_the_first_lives(toy, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run / LOCK_FILE).write_text(str(sleeper.pid))
        with pytest.raises(ValueError, match=f"process {sleeper.pid} is training into it"):
            fit(cfg(toy, epochs=1), run, quiet=True)
    finally:
        sleeper.kill()
        sleeper.wait()
    # the process is gone: its lock is stale and the run goes ahead, then releases it
    rec = fit(cfg(toy, epochs=1), run, quiet=True)
    assert rec["status"] == "complete" and not (run / LOCK_FILE).exists()


def test_the_lock_is_released_when_training_fails(tmp_path):
    with pytest.raises(RuntimeError):
        with RunLock(tmp_path):
            assert (tmp_path / LOCK_FILE).read_text() == str(os.getpid())
            raise RuntimeError("boom")
    assert not (tmp_path / LOCK_FILE).exists()


def test_a_truncated_checkpoint_gets_one_clear_line(toy, tmp_path):
    run = tmp_path / "run"
    fit(cfg(toy, epochs=2), run, quiet=True)
    rec = json.loads((run / "result.json").read_text())
    rec["status"] = "running"  # as if killed after the checkpoint of epoch 2
    (run / "result.json").write_text(json.dumps(rec))
    (run / "checkpoint.pt").write_bytes((run / "checkpoint.pt").read_bytes()[:50])
    with pytest.raises(ValueError, match=r"checkpoint.pt: the checkpoint cannot be read .*delete it.*--force"):
        fit(cfg(toy, epochs=2), run, quiet=True)


def _disk_full(monkeypatch):
    import errno

    from srs_core import results

    def fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(results.os, "fsync", fsync)


def test_a_full_disk_keeps_the_previous_file_and_says_so(tmp_path, monkeypatch):
    from srs_core.results import atomic_write_json

    atomic_write_json(tmp_path / "result.json", {"epoch": 1})
    before = (tmp_path / "result.json").read_bytes()
    _disk_full(monkeypatch)
    with pytest.raises(OSError, match=r"result.json: no space left on the device while writing it; the previous "
                                      r"result.json is unchanged\. Free some space"):
        atomic_write_json(tmp_path / "result.json", {"epoch": 2})
    assert (tmp_path / "result.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]  # no temporary file left


def test_srs_train_on_a_full_disk_prints_one_line(toy, tmp_path, monkeypatch, capsys):
    out = str(tmp_path / "run")
    args = ["train", "--data", str(toy), "--model", "stamp", "--epochs", "1", "--output", out, "--quiet"]
    assert cli_main(args) == 0  # a finished run on disk
    before = (tmp_path / "run" / "result.json").read_bytes()
    _disk_full(monkeypatch)
    assert cli_main(args + ["--force"]) == 2  # training it again cannot write its first record
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "srs train: error:" in err and "no space left" in err and "Traceback" not in err
    assert (tmp_path / "run" / "result.json").read_bytes() == before


def test_a_checkpoint_of_another_run_is_refused_clearly(toy, tmp_path, capsys):
    import torch

    fit(cfg(toy, epochs=1), tmp_path / "a", quiet=True)
    fit(cfg(toy, epochs=1, lr=0.01), tmp_path / "b", quiet=True)
    (tmp_path / "a" / "result.json").unlink()  # a run folder with only another run's checkpoint
    (tmp_path / "a" / "checkpoint.pt").write_bytes((tmp_path / "b" / "checkpoint.pt").read_bytes())
    args = ["train", "--data", str(toy), "--model", "stamp", "--epochs", "1", "--output", str(tmp_path / "a"), "--quiet"]
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert "checkpoint.pt belongs to another configuration" in err and "--force" in err and "Traceback" not in err
    torch.save([1, 2], tmp_path / "a" / "checkpoint.pt")
    assert cli_main(args) == 2 and "not a checkpoint of `srs train`" in capsys.readouterr().err
    assert cli_main(args + ["--force"]) == 0
