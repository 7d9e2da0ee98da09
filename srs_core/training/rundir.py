"""A run directory belongs to one configuration and one process at a time.

* :func:`claim` refuses a ``--output`` that holds a run of another
  configuration, naming the fields that differ and the way out (another
  folder, or ``--force``, which moves the old record and checkpoint aside
  into ``replaced-<hash>/`` rather than deleting them);
* :class:`RunLock` keeps a second process from training into the same
  folder. The lock file holds the owner's process id; a lock whose process
  no longer runs (killed with SIGKILL, say) is stale and taken over, so a
  killed run never blocks its own resumption.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from srs_core.results import RESULT_FILE, read_record

from .checkpoint import CHECKPOINT

LOCK_FILE = ".lock"


def differing_fields(old: dict, new: dict) -> list[str]:
    """``field: old -> new`` for every field of two run identities that differs."""
    return [f"{k}: {old.get(k, '(unset)')!r} -> {new.get(k, '(unset)')!r}" for k in sorted(set(old) | set(new))
            if old.get(k) != new.get(k)]


def claim(run_dir: Path, key: str, identity: dict, force: bool) -> None:
    """Make sure ``run_dir`` holds nothing of another configuration (see module doc)."""
    try:
        old = read_record(run_dir)
    except ValueError:
        old = {"config_hash": "unreadable", "identity": {}}
    if old is None or old.get("config_hash") == key:
        return
    diff = "; ".join(differing_fields(old.get("identity") or {}, identity)) or "its record is unreadable"
    if not force:
        raise ValueError(f"{run_dir} holds a run of another configuration ({diff}). Choose another --output, or pass "
                         f"--force to move the old run aside into {run_dir / ('replaced-' + str(old.get('config_hash')))}")
    aside = run_dir / f"replaced-{old.get('config_hash')}"
    aside.mkdir(exist_ok=True)
    for name in (RESULT_FILE, CHECKPOINT):
        if (run_dir / name).exists():
            shutil.move(str(run_dir / name), str(aside / name))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """``with RunLock(run_dir): ...``: this process alone trains into ``run_dir``.
    Taking the lock also removes the temporary files a killed process left
    half-written (the finished files they were to replace are untouched)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE

    def __enter__(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    pid = int(self.path.read_text().strip() or 0)
                except (OSError, ValueError):
                    pid = 0
                if pid and pid != os.getpid() and _alive(pid):
                    raise ValueError(f"{self.path.parent} is in use: process {pid} is training into it. Wait for it "
                                     f"to finish, stop it, or choose another --output (if no run uses the folder, "
                                     f"delete {self.path})") from None
                self.path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(str(os.getpid()))
            for partial in self.path.parent.glob(".*.tmp"):  # a killed writer's temporary files
                partial.unlink(missing_ok=True)
            return self
        raise ValueError(f"{self.path}: could not take the run lock; delete the file if no run uses the folder")

    def __exit__(self, *exc) -> None:
        self.path.unlink(missing_ok=True)
