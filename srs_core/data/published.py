"""Importing a published, already preprocessed train/test split.

The results most session-based papers report (the dissertation's Table 1
among them) come from splits made by the SR-GNN authors' preprocessing
script, shared as Python pickles:

* ``all_train_seq.txt``, a list of training sessions, each a list of item
  ids, in chronological order;
* ``train.txt`` (SR-GNN's own copies, instead of the above), a pair
  ``(prefixes, labels)`` of every prefix of every training session and the
  item after it;
* ``test.txt``, the pair ``(prefixes, labels)`` of the test samples.

:func:`import_split` turns such a directory into a processed dataset
(:mod:`srs_core.data.dataset`) that keeps the split exactly:

* training samples are every prefix of every training session;
* test samples are the published rows, no more and no fewer. A session's
  rows are normally consecutive and longest first (``seq[:-1] -> seq[-1]``,
  ``seq[:-2] -> seq[-2]``, ...); such runs of rows become one session again.
  A row that continues no run becomes a session of its own whose only
  sample is that row (``{split}_first.npy``);
* item ids stay as published; the catalogue runs from 1 to the largest id,
  and ids that no session uses are allowed;
* ``fraction`` (for quick checks) keeps only the most recent share of the
  training sessions and of the test sessions;
* ``valid_fraction`` F > 0 moves the last F of the training sessions (file
  order, which the script made chronological) into a validation split, and
  removes from them the items unseen in the rest of the training part, as
  ``srs preprocess --valid-days`` does (then sessions shorter than 2 go).

The files carry no dates, so each session's "time" is its position in the
files (training sessions first, then test), which keeps their order for the
methods that weigh recent sessions.

Pickles can name code to run when they are loaded: :class:`SafeUnpickler`
accepts only lists, tuples and ints and refuses any other object without
building it.
"""
from __future__ import annotations

import io
import pickle
import shlex
from pathlib import Path

import numpy as np

from .. import __version__
from .integrity import save_dataset
from .preprocess import STATS_KEYS, VALID_STATS_KEYS, PreprocessError, file_fingerprint

TRAIN_SESSIONS, TRAIN_PAIRS, TEST_PAIRS = "all_train_seq.txt", "train.txt", "test.txt"
MAX_ID = np.iinfo(np.int32).max  # ids are stored as int32
FIX = "re-download it or give the directory of the unchanged published files"


class SplitImportError(PreprocessError):
    """A published split that cannot be imported (the message names the file and the fix)."""


class Refused(pickle.UnpicklingError):
    """A pickle asked for an object that :class:`SafeUnpickler` does not build."""


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that builds no object by name: a pickle that asks for a
    class or a function (how a pickle runs code) is refused before anything
    runs. Lists, tuples and ints need no name, so plain data still loads."""

    def find_class(self, module: str, name: str):  # noqa: D401 - pickle's API
        raise Refused(f"it asks to load {module}.{name}, and only lists, tuples and ints are accepted")

    def persistent_load(self, pid):
        raise Refused("it refers to a persistent object, and only lists, tuples and ints are accepted")


def load_pickle(path: Path) -> object:
    """The object in the pickle ``path``, loaded without running any code."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SplitImportError(f"{path}: missing; the directory must hold {TEST_PAIRS} and {TRAIN_SESSIONS} "
                               f"(or SR-GNN's {TRAIN_PAIRS})") from None
    try:
        return SafeUnpickler(io.BytesIO(data)).load()
    except Refused as exc:
        raise SplitImportError(f"{path}: refused, not loaded: {exc}; {FIX}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, IndexError, KeyError, TypeError, AttributeError, OverflowError,
            MemoryError, UnicodeDecodeError) as exc:
        raise SplitImportError(f"{path}: not a readable pickle, truncated or damaged ({type(exc).__name__}: "
                               f"{exc}); {FIX}") from None


def _id_lists(obj: object, path: Path, what: str, *, min_len: int) -> list[np.ndarray]:
    """``obj`` as a list of int64 arrays of item ids >= 1, each at least ``min_len`` long."""
    if not isinstance(obj, (list, tuple)):
        raise SplitImportError(f"{path}: holds a {type(obj).__name__} where a list of {what} belongs; {FIX}")
    out = []
    for i, seq in enumerate(obj):
        if not isinstance(seq, (list, tuple)) or not all(type(x) is int for x in seq):
            raise SplitImportError(f"{path}: {what} {i} is not a list of integer item ids "
                                   f"(it holds {_kind(seq)}); {FIX}")
        if len(seq) < min_len:
            raise SplitImportError(f"{path}: {what} {i} has {len(seq)} items, fewer than {min_len}; {FIX}")
        arr = np.asarray(seq, dtype=np.int64) if seq else np.zeros(0, np.int64)
        if len(arr) and (arr.min() < 1 or arr.max() > MAX_ID):
            raise SplitImportError(f"{path}: {what} {i} holds the item id {int(arr.min() if arr.min() < 1 else arr.max())}"
                                   f"; ids must lie in 1..{MAX_ID} (0 is padding); {FIX}")
        out.append(arr)
    return out


def _kind(seq) -> str:
    if not isinstance(seq, (list, tuple)):
        return f"a {type(seq).__name__}"
    bad = next((x for x in seq if type(x) is not int), None)
    return f"a {type(bad).__name__} {bad!r}"


def _id_list(obj: object, path: Path, what: str) -> np.ndarray:
    if not isinstance(obj, (list, tuple)) or not all(type(x) is int for x in obj):
        raise SplitImportError(f"{path}: the {what} are not a list of integer item ids; {FIX}")
    arr = np.asarray(obj, dtype=np.int64) if obj else np.zeros(0, np.int64)
    if len(arr) and (arr.min() < 1 or arr.max() > MAX_ID):
        raise SplitImportError(f"{path}: the {what} hold an item id outside 1..{MAX_ID}; {FIX}")
    return arr


def read_pairs(path: Path) -> tuple[list[np.ndarray], np.ndarray]:
    """``(prefixes, labels)`` of a ``train.txt`` / ``test.txt`` pickle, checked."""
    obj = load_pickle(path)
    if not isinstance(obj, (list, tuple)) or len(obj) != 2:
        shape = f"a {type(obj).__name__}" + (f" of {len(obj)} entries" if isinstance(obj, (list, tuple)) else "")
        raise SplitImportError(f"{path}: holds {shape} where a pair (prefixes, labels) belongs; {FIX}")
    prefixes = _id_lists(obj[0], path, "prefix", min_len=1)
    labels = _id_list(obj[1], path, "labels")
    if len(prefixes) != len(labels):
        raise SplitImportError(f"{path}: {len(prefixes)} prefixes but {len(labels)} labels; the two lists must have "
                               f"one entry per sample; {FIX}")
    if not len(labels):
        raise SplitImportError(f"{path}: holds no samples; {FIX}")
    return prefixes, labels


def sessions_from_pairs(prefixes: list[np.ndarray], labels: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Sessions rebuilt from rows ``prefixes[i] -> labels[i]``, and each
    session's shortest prefix that is a sample (``first``).

    Row ``i + 1`` continues row ``i``'s session when it is row ``i``'s prefix
    less its last item, and its label is that item (the script writes a
    session's prefixes longest first). A session rebuilt from a run down to
    the one-item prefix has ``first = 1``; a row that continues nothing is a
    session of its own with one sample, ``first = len(prefix)``.
    """
    sessions, first = [], []
    i, n = 0, len(labels)
    while i < n:
        j = i + 1
        while (j < n and len(prefixes[j]) == len(prefixes[j - 1]) - 1 and labels[j] == prefixes[j - 1][-1]
               and np.array_equal(prefixes[j], prefixes[j - 1][:-1])):
            j += 1
        sessions.append(np.r_[prefixes[i], labels[i]])
        first.append(len(prefixes[j - 1]))
        i = j
    return sessions, np.asarray(first, dtype=np.int64)


def _pack(sessions: list[np.ndarray], first: np.ndarray | None, start_time: int) -> tuple:
    """``(items, offsets, times, first)`` arrays of a split (``first`` None when every prefix is a sample)."""
    lengths = np.fromiter((len(s) for s in sessions), dtype=np.int64, count=len(sessions))
    offsets = np.zeros(len(sessions) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    items = np.concatenate(sessions).astype(np.int32) if sessions else np.zeros(0, np.int32)
    times = np.arange(start_time, start_time + len(sessions), dtype=np.float64)
    keep_first = first is not None and bool((first != 1).any())
    return items, offsets, times, (first.astype(np.int32) if keep_first else None)


def _split_validation(sessions: list[np.ndarray], fraction: float) -> tuple[list, list, dict]:
    """The first ``1 - fraction`` of ``sessions`` and the validation sessions
    made from the rest (items unseen in the first part removed, then sessions
    shorter than 2 dropped), with counts for the trace."""
    n_valid = int(len(sessions) * fraction)
    if n_valid < 1:
        raise SplitImportError(f"--valid-fraction {fraction:g} of {len(sessions)} training sessions is no session; "
                               "raise it, or pass 0 to keep the published split")
    train, held = sessions[:len(sessions) - n_valid], sessions[len(sessions) - n_valid:]
    seen = np.zeros(max(int(max(s.max() for s in sessions)) + 1, 1), dtype=bool)
    for s in train:
        seen[s] = True
    kept = [s[seen[s]] for s in held]
    valid = [s for s in kept if len(s) >= 2]
    if not valid:
        raise SplitImportError(f"the validation split (--valid-fraction {fraction:g}) is empty once items unseen in "
                               "training are removed; raise --valid-fraction, or pass 0")
    return train, valid, {"valid_sessions_cut": n_valid, "valid_sessions_kept": len(valid),
                          "valid_events_removed": int(sum(len(s) for s in held) - sum(len(s) for s in kept))}


def import_command(input_dir: Path, valid_fraction: float, fraction: float | None = None) -> str:
    """The ``srs import-split`` command, less ``--output``, that makes the dataset again."""
    return shlex.join(["srs", "import-split", "--input", str(Path(input_dir).resolve()),
                       "--valid-fraction", f"{valid_fraction:g}"] + ([] if fraction is None else
                                                                     ["--fraction", f"{fraction:g}"]))


def _latest(sessions: list, first: np.ndarray | None, fraction: float) -> tuple[list, np.ndarray | None]:
    """The most recent ``fraction`` of ``sessions`` (at least one)."""
    n = max(1, int(len(sessions) * fraction))
    return sessions[len(sessions) - n:], None if first is None else first[len(sessions) - n:]


def import_split(input_dir: str | Path, output_dir: str | Path, *, valid_fraction: float = 0.1,
                 fraction: float | None = None, quiet: bool = True) -> Path:
    """Import the published split in ``input_dir`` as a processed dataset at
    ``output_dir`` (written atomically; see the module docstring)."""
    input_dir = Path(input_dir)
    if isinstance(valid_fraction, bool) or not isinstance(valid_fraction, (int, float)) \
            or not 0 <= valid_fraction < 1:
        raise SplitImportError(f"--valid-fraction must be in [0, 1) (got {valid_fraction!r}); 0 keeps the "
                               "published split, 0.1 (the default) validates on the last tenth of the training sessions")
    if fraction is not None and (isinstance(fraction, bool) or not isinstance(fraction, (int, float))
                                 or not 0 < fraction <= 1):
        raise SplitImportError(f"--fraction must be in (0, 1] (got {fraction!r}); leave it out to keep every session")
    if not input_dir.is_dir():
        raise SplitImportError(f"{input_dir}: not a directory; give the directory that holds {TEST_PAIRS} and "
                               f"{TRAIN_SESSIONS} (or {TRAIN_PAIRS})")
    test_path = input_dir / TEST_PAIRS
    train_path = input_dir / TRAIN_SESSIONS
    if not train_path.is_file() and (input_dir / TRAIN_PAIRS).is_file():
        train_path = input_dir / TRAIN_PAIRS
    if not test_path.is_file() or not train_path.is_file():
        missing = test_path if not test_path.is_file() else train_path
        raise SplitImportError(f"{missing}: missing; the directory must hold {TEST_PAIRS} and {TRAIN_SESSIONS} "
                               f"(or SR-GNN's {TRAIN_PAIRS})")
    if train_path.name == TRAIN_SESSIONS:
        train = _id_lists(load_pickle(train_path), train_path, "training session", min_len=2)
        train_first = None
    else:
        train, train_first = sessions_from_pairs(*read_pairs(train_path))
    if not train:
        raise SplitImportError(f"{train_path}: holds no training sessions; {FIX}")
    test, test_first = sessions_from_pairs(*read_pairs(test_path))

    # the catalogue runs to the largest published id, also when only a slice is kept
    n_items = int(max(max(int(x.max()) for x in train), max(int(x.max()) for x in test)))
    trace = {"items_published": n_items, "train_sessions_published": len(train),
             "train_samples_published": int(sum(len(x) for x in train) - (len(train) if train_first is None
                                                                           else int(train_first.sum()))),
             "test_rows_published": int(sum(len(x) - f for x, f in zip(test, test_first))),
             "test_sessions_rebuilt": len(test), "test_rows_alone": int(sum(f > 1 for f in test_first))}
    if fraction is not None and fraction < 1:
        train, train_first = _latest(train, train_first, fraction)
        test, test_first = _latest(test, test_first, fraction)
        trace.update(fraction_kept=fraction, train_sessions_kept=len(train), test_sessions_kept=len(test))
    valid = None
    if valid_fraction > 0:
        if train_first is not None and (train_first != 1).any():
            raise SplitImportError(f"{train_path}: some training rows are not every prefix of one session, so its "
                                   "sessions cannot be cut for validation; pass --valid-fraction 0")
        train, valid, counts = _split_validation(train, float(valid_fraction))
        trace.update(counts)
        train_first = None
    splits = {"train": _pack(train, train_first, 0), "test": _pack(test, test_first, len(train) + (
        0 if valid is None else len(valid)))}
    if valid is not None:
        splits["valid"] = _pack(valid, None, len(train))
    stats = _stats(n_items, splits)
    params = {"valid_fraction": float(valid_fraction), **({} if fraction is None else {"fraction": float(fraction)})}
    meta = {"dataset": "published-split", "format_version": 1, "srs_core_version": __version__,
            "source": {p.name: file_fingerprint(p) for p in (train_path, test_path)},
            "command": import_command(input_dir, valid_fraction, fraction), "params": params,
            "item_id_order": "as published (item i is the published id i)", "times": "position in the files",
            "trace": trace}
    return save_dataset(output_dir, splits, range(1, n_items + 1), stats, meta)


def _stats(n_items: int, splits: dict) -> dict:
    def count(name):
        items, offsets, _, first = splits[name]
        n_sess = len(offsets) - 1
        return n_sess, len(items) - (n_sess if first is None else int(first.sum()))

    (n_tr, s_tr), (n_te, s_te) = count("train"), count("test")
    train_len = np.diff(splits["train"][1])
    stats = dict(zip(STATS_KEYS, (n_items, n_tr, s_tr, n_te, s_te, float(train_len.mean()))))
    if "valid" in splits:
        stats.update(zip(VALID_STATS_KEYS, count("valid")))
    return stats

