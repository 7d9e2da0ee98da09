"""The results store: one JSON record per run, written atomically.

A store is a directory. Each run lives in ``<root>/<config-hash>/`` with its
``result.json`` (the record) and, while it trains, ``checkpoint.pt``. Running
a config whose record is complete is a no-op unless forced, so a notebook of
many runs can be re-executed after a crash and only redoes what is missing.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

RESULT_FILE = "result.json"
RANKS = "ranks.npy"  # a run's test ranks at its chosen epoch, beside its record


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new file,
    never a half-written one (temporary file in the same folder, then rename).
    A full disk raises an ``OSError`` that names the file and keeps the old one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            kept = f"the previous {path.name} is unchanged" if path.exists() else f"no {path.name} was written"
            raise OSError(exc.errno, f"{path}: no space left on the device while writing it; {kept}. Free some "
                          "space and run the same command again") from None
        raise


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def atomic_write_ranks(path: str | Path, ranks) -> None:
    """Write per-target ranks as an int32 ``.npy`` file, atomically."""
    import io

    import numpy as np

    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(ranks, dtype=np.int32))
    atomic_write_bytes(path, buf.getvalue())


def config_hash(obj: dict) -> str:
    """A short, stable hash of a JSON-able dict (key order does not matter)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def read_record(path: str | Path) -> dict | None:
    """The record at ``path`` (a run dir or a result.json), or None if absent."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULT_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def is_complete(record: dict | None, key: str | None = None) -> bool:
    if not record or record.get("status") != "complete":
        return False
    return key is None or record.get("config_hash") == key


class ResultsStore:
    """A folder of run records keyed by config hash."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def run_dir(self, key: str) -> Path:
        return self.root / key

    def get(self, key: str) -> dict | None:
        return read_record(self.run_dir(key))

    def put(self, record: dict) -> Path:
        path = self.run_dir(record["config_hash"]) / RESULT_FILE
        atomic_write_json(path, record)
        return path

    def __iter__(self) -> Iterator[dict]:
        if not self.root.is_dir():
            return
        for sub in sorted(self.root.iterdir()):
            rec = read_record(sub) if sub.is_dir() else None
            if rec is not None:
                yield rec

    def records(self, complete_only: bool = True) -> list[dict]:
        return [r for r in self if not complete_only or r.get("status") == "complete"]
