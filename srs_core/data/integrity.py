"""Writing a processed dataset directory atomically, and checking it on load.

:func:`save_dataset` writes the arrays, ``item_ids.txt``, ``stats.json`` and
``meta.json`` (with a sha256 of the arrays' bytes, ``content_sha256``) into a
temporary directory and renames it into place. :func:`read_dataset` reads
them back and refuses, in one line that names the file, the fault and the
fix, anything that is missing, truncated, of the wrong dtype or shape,
inconsistent with ``stats.json``, or whose bytes no longer match the hash.
The checks are linear passes over the arrays (a min, a max, a diff and a
hash), so a dataset with millions of events still loads in well under a
second.
"""
from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np

SPLITS = ("train", "test")  # always present
OPTIONAL_SPLITS = ("valid",)  # present when preprocessed with --valid-days > 0
#: The arrays of every split, as (file suffix, dtype, memory-mapped on load).
ARRAYS = (("items", np.int32, True), ("offsets", np.int64, False), ("times", np.float64, True))
#: The optional array of a split, which gives each session's shortest prefix
#: that is a sample (imported published splits only). Absent, it is 1 for every
#: session, and then it changes neither the files nor the content hash.
FIRST = ("first", np.int32, False)
#: ``stats.json`` counts checked against the arrays.
COUNT_KEYS = ("sessions", "samples")


class DatasetError(ValueError):
    """A processed dataset directory that fails its self-check."""


def content_hash(splits: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> str:
    """sha256 (hex) of every split's items, offsets and times bytes, in order."""
    h = hashlib.sha256()
    for arrays in splits:
        for arr in arrays:
            h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def _is_dataset_dir(path: Path) -> bool:
    return (path / "stats.json").is_file() or (path / "meta.json").is_file()


def save_dataset(output_dir: str | Path, splits: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
                 item_ids: Iterable, stats: dict, meta: dict) -> Path:
    """Write a processed dataset directory, atomically.

    ``splits`` maps ``train``, ``test`` (and ``valid``) to ``(items, offsets,
    times)``, which are stored as int32, int64 and float64, or to ``(items,
    offsets, times, first)`` where not every prefix is a sample (``first``
    int32; ``None`` leaves it out). Files go to a
    temporary directory next to ``output_dir``, which is then renamed into
    place, so a failure leaves nothing half-written. An existing processed
    dataset at ``output_dir`` is replaced; any other non-empty path is refused.
    """
    output_dir = Path(output_dir)
    if output_dir.exists() and not (output_dir.is_dir() and (_is_dataset_dir(output_dir)
                                                             or not any(output_dir.iterdir()))):
        raise FileExistsError(
            f"{output_dir} exists and is not a processed dataset; choose another --output or remove it."
        )
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    typed = {name: tuple(np.ascontiguousarray(a, dtype=dt)
                         for a, (_, dt, _) in zip(arrays, ARRAYS + (FIRST,)) if a is not None)
             for name, arrays in splits.items()}
    meta = {**meta, "content_sha256": content_hash(typed.values())}
    tmp = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", suffix=".tmp", dir=output_dir.parent))
    try:
        os.chmod(tmp, 0o755)
        for name, arrays in typed.items():
            for arr, (suffix, _, _) in zip(arrays, ARRAYS + (FIRST,)):
                np.save(tmp / f"{name}_{suffix}.npy", arr)
        with open(tmp / "item_ids.txt", "w", encoding="utf-8") as fh:
            fh.write("\n".join(map(str, list(item_ids))))
            fh.write("\n")
        (tmp / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n")
        if output_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", suffix=".old", dir=output_dir.parent))
            os.replace(output_dir, old / "data")
            try:
                os.replace(tmp, output_dir)
            except OSError:
                os.replace(old / "data", output_dir)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, output_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return output_dir


def rebuild_hint(path: Path) -> str:
    """How to make ``path`` again: the command recorded in its meta.json
    (which leaves out ``--output``: the dataset may have moved)."""
    try:
        command = json.loads((path / "meta.json").read_text()).get("command")
    except (OSError, ValueError, AttributeError):
        command = None
    if command:
        return f"re-create it with `{command} --output {shlex.quote(str(path))}` (the command recorded in its meta.json)"
    return "re-create it with `srs preprocess` (or `srs synth`) and the parameters it was made with"


def _fail(path: Path, file: str, problem: str) -> DatasetError:
    return DatasetError(f"{path / file}: {problem}. The processed dataset {path} is damaged; {rebuild_hint(path)}.")


def _read_json(path: Path, file: str) -> dict:
    if not (path / file).is_file():
        raise _fail(path, file, "missing")
    try:
        out = json.loads((path / file).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise _fail(path, file, f"not readable JSON ({exc})") from None
    if not isinstance(out, dict):
        raise _fail(path, file, "not a JSON object")
    return out


def _read_array(path: Path, file: str, dtype, mmap: bool) -> np.ndarray:
    if not (path / file).is_file():
        raise _fail(path, file, "missing")
    try:
        arr = np.load(path / file, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise _fail(path, file, f"unreadable or truncated ({exc})") from None
    if arr.dtype != np.dtype(dtype) or arr.ndim != 1:
        raise _fail(path, file, f"holds a {arr.ndim}-d {arr.dtype} array where a 1-d {np.dtype(dtype)} one belongs")
    return arr


def _check_split(path: Path, name: str, items, offsets, times, n_items: int, first=None) -> None:
    if len(offsets) == 0 or offsets[0] != 0:
        raise _fail(path, f"{name}_offsets.npy", "does not start at 0")
    if len(offsets) > 1 and (np.diff(offsets) < 0).any():
        raise _fail(path, f"{name}_offsets.npy", "decreases somewhere")
    if offsets[-1] != len(items):
        raise _fail(path, f"{name}_offsets.npy", f"ends at {int(offsets[-1])} but {name}_items.npy holds "
                    f"{len(items)} items")
    if len(times) != len(offsets) - 1:
        raise _fail(path, f"{name}_times.npy", f"holds {len(times)} times for {len(offsets) - 1} sessions")
    if len(items) and (int(items.min()) < 1 or int(items.max()) > n_items):
        raise _fail(path, f"{name}_items.npy", f"holds item ids in [{int(items.min())}, {int(items.max())}] "
                    f"outside the catalogue [1, {n_items}] of stats.json")
    if first is not None:
        if len(first) != len(offsets) - 1:
            raise _fail(path, f"{name}_first.npy", f"holds {len(first)} entries for {len(offsets) - 1} sessions")
        if len(first) and (int(first.min()) < 1 or (np.diff(offsets) - first < 1).any()):
            raise _fail(path, f"{name}_first.npy", "names a first sample outside a session (each entry must be at "
                        "least 1 and below its session's length)")


def read_dataset(path: str | Path) -> tuple[dict, dict, dict]:
    """``(stats, meta, splits)`` of a processed dataset directory, checked.

    ``splits`` maps each present split to ``(items, offsets, times)``
    (items and times memory-mapped). Raises :class:`DatasetError` on any fault.
    """
    path = Path(path)
    if not (path / "stats.json").is_file():
        raise FileNotFoundError(f"{path} is not a processed dataset (no stats.json). "
                                "Create one with `srs preprocess` or `srs synth`.")
    stats, meta = _read_json(path, "stats.json"), _read_json(path, "meta.json")
    n_items = stats.get("n_items")
    if not isinstance(n_items, int) or n_items < 1:
        raise _fail(path, "stats.json", f"n_items is {n_items!r}, not a positive integer")
    splits = {}
    for name in SPLITS + OPTIONAL_SPLITS:
        if name in OPTIONAL_SPLITS and not (path / f"{name}_items.npy").is_file():
            continue
        arrays = tuple(_read_array(path, f"{name}_{suffix}.npy", dt, mm) for suffix, dt, mm in ARRAYS)
        if (path / f"{name}_{FIRST[0]}.npy").is_file():
            arrays += (_read_array(path, f"{name}_{FIRST[0]}.npy", FIRST[1], FIRST[2]),)
        _check_split(path, name, *arrays[:3], n_items, *arrays[3:])
        n_sessions = len(arrays[1]) - 1
        for key in COUNT_KEYS:
            have = n_sessions if key == "sessions" else len(arrays[0]) - (
                n_sessions if len(arrays) == 3 else int(arrays[3].sum()))
            want = stats.get(f"n_{name}_{key}")
            if want != have:
                raise _fail(path, "stats.json", f"n_{name}_{key} is {want!r} but the {name} arrays hold {have}")
        splits[name] = arrays
    if "valid" not in splits and "n_valid_sessions" in stats:
        raise _fail(path, "valid_items.npy", "missing, though stats.json counts a validation split")
    recorded = meta.get("content_sha256")
    if recorded is None:
        raise _fail(path, "meta.json", "records no content_sha256 (it was written before datasets checked "
                    "themselves)")
    if recorded != content_hash(splits.values()):
        raise _fail(path, "meta.json", "content_sha256 does not match the arrays' bytes (an array was changed "
                    "after preprocessing)")
    return stats, meta, splits
