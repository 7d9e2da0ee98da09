"""Preprocessing: the dissertation's Section 4.5.4, steps 1-8, made exact.

Starting from an events table (:mod:`srs_core.data.readers`), in this order:

1. drop sessions with fewer than 2 events;
2. drop events whose item occurs fewer than ``min_item_support`` times
   (counted over the events left by step 1);
3. drop sessions with fewer than 2 events;
4. split by session time, the time of a session's last event: with
   ``T = latest session time - test_days days``, a session is *train* when its
   time is ``< T`` and *test* when it is ``>= T``; ``fraction`` (1/4 or 1/64,
   how Yoochoose 1/4 and 1/64 are made) then keeps only the
   ``floor(n_train * fraction)`` most recent train sessions (ordered by session
   time, ties by raw session id); with ``valid_days`` V > 0 the kept train
   sessions are cut once more at ``T - V days``: those at or after it form the
   *validation* split, the rest the (new) training part;
5. drop test and validation events whose item does not occur in the training
   part;
6. drop test and validation sessions with fewer than 2 events;
7. keep the last ``max_len`` events of every session (both splits);
8. augment: a session of ``n`` events yields ``n - 1`` samples (prefix, next
   item). Samples are not stored; :class:`srs_core.data.dataset.Split` derives
   them, and ``stats.json`` counts them.

Conventions fixed here (the dissertation leaves them open):

- events of a session are ordered by time, ties by file order;
- the item vocabulary is the set of items of the kept train sessions at step 5
  (before the trim of step 7, so every test item is in it); item ids
  ``1..N`` follow the **sorted raw item id** (``item_ids.txt`` line ``i``
  holds the raw id of item ``i``); 0 is padding;
- sessions are stored in order of session time, ties by raw session id, and
  ``{split}_times.npy`` holds the session time used by the split at step 4
  (so every test time is ``>= T`` and every train time ``< T``, even when
  step 5 removed a test session's last event).

Everything is vectorised numpy on flat arrays (sorts, ``bincount``, boolean
masks): no Python loop runs over sessions, so the 33M-event Yoochoose file
preprocesses in well under a minute once read.
"""
from __future__ import annotations

import hashlib
import json
import shlex
from dataclasses import dataclass, field
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
from srs_core.progress import tqdm

from .. import __version__
from .dataset import Split
from .integrity import save_dataset
from .readers import EVENT_COLUMNS, get_reader

FORMAT_VERSION = 1
SECONDS_PER_DAY = 86_400.0

#: ``test_days`` used when none is given. The dissertation's splits use the
#: last day for Yoochoose and the last week for Diginetica; for MeLi 2020 we
#: use the last week too (the dissertation does not say). A generic TSV has
#: no sensible default, so it must be given.
DEFAULT_TEST_DAYS: dict[str, float | None] = {"yoochoose": 1, "diginetica": 7, "meli2020": 7, "tsv": None}


def default_valid_days(test_days: float) -> float:
    """``valid_days`` used when none is given: as many days as the test split
    (session-rec and the official GRU4Rec code cut their validation day from
    the training period the same way). 0 makes no validation split, the
    dissertation's train/test split."""
    return float(test_days)


#: The only train fractions the dissertation uses (Yoochoose 1/4 and 1/64).
FRACTIONS = (Fraction(1, 4), Fraction(1, 64))

#: The keys of ``stats.json``, in order.
STATS_KEYS = (
    "n_items",
    "n_train_sessions",
    "n_train_samples",
    "n_test_sessions",
    "n_test_samples",
    "avg_train_session_length",
)

#: Added to ``stats.json`` (after :data:`STATS_KEYS`) when there is a validation split.
VALID_STATS_KEYS = ("n_valid_sessions", "n_valid_samples")


class PreprocessError(ValueError):
    """Preprocessing parameters are invalid, or filtering left nothing to train or test on."""


# --------------------------------------------------------------------------
# parameters


def parse_fraction(value) -> Fraction | None:
    """``None`` (keep every train session), or exactly 1/4 or 1/64.

    Accepts ``"1/4"``, ``"1/64"``, ``0.25``, ``1/64`` (the float) and
    :class:`fractions.Fraction`; anything else is an error.
    """
    if value is None:
        return None
    try:
        frac = Fraction(value.strip()) if isinstance(value, str) else Fraction(value)
    except (ValueError, TypeError, ZeroDivisionError):
        frac = None
    if frac not in FRACTIONS:
        raise PreprocessError(
            f"fraction {value!r} is not supported: use 1/4 or 1/64 (Yoochoose 1/4 and 1/64), "
            "or leave it out to keep every train session."
        )
    return frac


def _check_params(test_days, max_len, min_item_support) -> float:
    if isinstance(test_days, bool) or not isinstance(test_days, (int, float, np.integer, np.floating)):
        raise PreprocessError(f"test_days must be a positive number of days (got {test_days!r}); pass --test-days N.")
    if not np.isfinite(test_days) or test_days <= 0:
        raise PreprocessError(f"test_days must be a positive number of days (got {test_days!r}); pass --test-days N.")
    if isinstance(max_len, bool) or not isinstance(max_len, (int, np.integer)) or max_len < 2:
        raise PreprocessError(f"max_len must be an integer >= 2 (got {max_len!r}); the dissertation uses 25.")
    if isinstance(min_item_support, bool) or not isinstance(min_item_support, (int, np.integer)) \
            or min_item_support < 1:
        raise PreprocessError(
            f"min_item_support must be an integer >= 1 (got {min_item_support!r}); the dissertation uses 5."
        )
    return float(test_days)


def _check_valid_days(valid_days) -> float:
    if isinstance(valid_days, bool) or not isinstance(valid_days, (int, float, np.integer, np.floating)) \
            or not np.isfinite(valid_days) or valid_days < 0:
        raise PreprocessError(f"valid_days must be a number of days >= 0 (got {valid_days!r}); pass --valid-days N "
                              "(0: no validation split).")
    return float(valid_days)


# --------------------------------------------------------------------------
# the result


@dataclass(frozen=True)
class PreprocessResult:
    """A preprocessed dataset in memory: what :func:`write_processed` puts on disk."""

    train: Split
    test: Split
    item_ids: np.ndarray  # raw id of item i at index i - 1
    threshold: float  # T of step 4, Unix seconds
    params: dict
    trace: list = field(default_factory=list)  # events / sessions left after each step
    valid: Split | None = None  # the validation split (valid_days > 0)
    valid_threshold: float | None = None  # T - valid_days days

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def stats(self) -> dict:
        """The dissertation's Table 3 statistics (exactly :data:`STATS_KEYS`)."""
        train_len = self.train.lengths
        return {
            "n_items": int(self.n_items),
            "n_train_sessions": int(self.train.n_sessions),
            "n_train_samples": int(self.train.n_samples),
            "n_test_sessions": int(self.test.n_sessions),
            "n_test_samples": int(self.test.n_samples),
            "avg_train_session_length": float(train_len.mean()) if len(train_len) else 0.0,
            **({} if self.valid is None else {"n_valid_sessions": int(self.valid.n_sessions),
                                              "n_valid_samples": int(self.valid.n_samples)}),
        }

    def splits(self) -> tuple[tuple[str, Split], ...]:
        """``(name, split)`` of every split present, in file order."""
        extra = () if self.valid is None else (("valid", self.valid),)
        return (("train", self.train), ("test", self.test)) + extra


# --------------------------------------------------------------------------
# the pipeline


def _sorted_order(sess: np.ndarray, time: np.ndarray, order: np.ndarray) -> np.ndarray | None:
    """Permutation ordering events by (session, time, file order); ``None`` if already so."""
    if len(sess) < 2:
        return None
    ds = np.diff(sess)
    if (ds >= 0).all():
        dt = np.diff(time)
        ok = (ds > 0) | (dt > 0) | ((dt == 0) & (np.diff(order) > 0))
        if ok.all():
            return None
    return np.lexsort((order, time, sess))


def _lengths(sid: np.ndarray, n_sessions: int) -> np.ndarray:
    return np.bincount(sid, minlength=n_sessions)


def _session_bounds(sid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start index and length of each run of equal ``sid`` (events are grouped by session)."""
    if len(sid) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    starts = np.flatnonzero(np.r_[True, sid[1:] != sid[:-1]])
    lengths = np.diff(np.r_[starts, len(sid)])
    return starts, lengths


def _pack(sid, codes, new_id, session_time, raw_session) -> Split:
    """Flat arrays of one split, sessions ordered by (session time, raw session id)."""
    starts, lengths = _session_bounds(sid)
    sessions = sid[starts]
    order = np.lexsort((raw_session[sessions], session_time[sessions]))
    lengths = lengths[order]
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    gather = np.repeat(starts[order] - offsets[:-1], lengths) + np.arange(offsets[-1], dtype=np.int64)
    items = new_id[codes[gather]].astype(np.int32)
    return Split(items=items, offsets=offsets, times=session_time[sessions[order]].astype(np.float64))


def preprocess_events(
    events: pd.DataFrame,
    *,
    test_days: float,
    fraction=None,
    max_len: int = 25,
    min_item_support: int = 5,
    valid_days: float = 0,
    source: str | None = None,
    quiet: bool = True,
) -> PreprocessResult:
    """Apply steps 1-8 of Section 4.5.4 to an events table (see the module docstring).

    ``source`` names the input in error messages. Raises
    :class:`PreprocessError` for invalid parameters and when a step leaves no
    train or no test session.
    """
    test_days = _check_params(test_days, max_len, min_item_support)
    valid_days = _check_valid_days(valid_days)
    frac = parse_fraction(fraction)
    where = f"{source}: " if source else ""
    missing = [c for c in EVENT_COLUMNS if c not in getattr(events, "columns", ())]
    if missing:
        raise PreprocessError(f"{where}the events table lacks columns {missing}; build it with a reader "
                              "from srs_core.data.readers or readers.make_events.")
    params = {"test_days": test_days, "fraction": None if frac is None else str(frac),
              "max_len": int(max_len), "min_item_support": int(min_item_support)}
    if valid_days > 0:  # absent when 0, so the dissertation's split keeps its bytes
        params["valid_days"] = valid_days
    bar = tqdm(total=8, desc="preprocessing", disable=quiet, leave=False)
    trace: list[dict] = []

    def empty(step: str, fix: str) -> PreprocessError:
        bar.close()
        return PreprocessError(f"{where}{step} left no sessions, so there is nothing to write. {fix}")

    # --- order events by (session, time, file order); items as sorted codes
    sess = events["session"].to_numpy(dtype=np.int64)
    time = events["time"].to_numpy(dtype=np.float64)
    order = events["order"].to_numpy(dtype=np.int64)
    if len(sess) and not np.isfinite(time).all():
        bar.close()
        raise PreprocessError(f"{where}some event times are NaN or infinite; fix the reader or the input.")
    codes, uniques = pd.factorize(events["item"], sort=True)
    if len(codes) and codes.min() < 0:
        bar.close()
        raise PreprocessError(f"{where}some item ids are missing (NaN/None); drop those events first.")
    codes = codes.astype(np.int64 if len(uniques) > np.iinfo(np.int32).max else np.int32, copy=False)
    perm = _sorted_order(sess, time, order)
    if perm is not None:
        sess, time, codes = sess[perm], time[perm], codes[perm]
        del perm
    del order
    is_start = np.r_[True, sess[1:] != sess[:-1]] if len(sess) else np.empty(0, bool)
    raw_session = sess[is_start]
    sid = np.cumsum(is_start) - 1
    del sess, is_start
    n_sessions = len(raw_session)

    def record(step: int, name: str, **extra) -> None:
        trace.append({"step": step, "name": name, "events": int(len(sid)),
                      "sessions": int(np.count_nonzero(_lengths(sid, n_sessions))), **extra})
        bar.update(1)

    def keep(mask: np.ndarray) -> None:
        nonlocal sid, time, codes
        sid, time, codes = sid[mask], time[mask], codes[mask]

    trace.append({"step": 0, "name": "raw events", "events": int(len(sid)), "sessions": int(n_sessions)})

    # 1. drop sessions with fewer than 2 events
    keep(_lengths(sid, n_sessions)[sid] >= 2)
    record(1, "drop sessions with < 2 events")
    # 2. drop events of items seen fewer than min_item_support times
    keep(np.bincount(codes, minlength=len(uniques))[codes] >= min_item_support)
    record(2, f"drop events of items with < {min_item_support} occurrences")
    # 3. drop sessions with fewer than 2 events
    keep(_lengths(sid, n_sessions)[sid] >= 2)
    record(3, "drop sessions with < 2 events")
    if len(sid) == 0:
        raise empty("step 3 (item support and session length filters)",
                    f"Use a larger input or lower --min-item-support (now {min_item_support}).")

    # 4. split by session time (time of the last event); optional train fraction
    starts, lengths = _session_bounds(sid)
    present = sid[starts]
    session_time = np.full(n_sessions, np.nan)
    session_time[present] = time[starts + lengths - 1]  # events are time-sorted within a session
    threshold = float(session_time[present].max() - test_days * SECONDS_PER_DAY)
    split = np.zeros(n_sessions, dtype=np.int8)  # 0 dropped, 1 train, 2 test
    is_train = session_time[present] < threshold
    split[present[~is_train]] = 2
    train_sessions = present[is_train]
    n_before = len(train_sessions)
    if frac is not None:
        n_keep = len(train_sessions) * frac.numerator // frac.denominator
        recent = np.lexsort((raw_session[train_sessions], session_time[train_sessions]))
        train_sessions = train_sessions[recent[len(recent) - n_keep:]]
    split[train_sessions] = 1
    valid_threshold = None
    if valid_days > 0:  # 3: validation, the last valid_days days before T
        valid_threshold = threshold - valid_days * SECONDS_PER_DAY
        split[train_sessions[session_time[train_sessions] >= valid_threshold]] = 3
    ev_split = split[sid]
    keep(ev_split > 0)
    ev_split = ev_split[ev_split > 0]
    n_train = int(np.count_nonzero(split == 1))
    n_valid = {} if valid_threshold is None else {"valid_sessions": int(np.count_nonzero(split == 3))}
    record(4, "split by session time" + ("" if frac is None else f", keep the latest {frac} of train"),
           train_sessions=n_train, test_sessions=int(np.count_nonzero(~is_train)), **n_valid)
    if n_before == 0:
        raise empty("step 4 (time split)", f"Every session falls in the last {test_days:g} test days; "
                    "lower --test-days.")
    if n_train == 0 and len(train_sessions) > 0:
        raise empty(f"step 4 (the {valid_days:g} validation days before the test split)",
                    f"Every training session falls in the validation window; lower --valid-days (now {valid_days:g}).")
    if n_train == 0:
        raise empty(f"step 4 (fraction {frac} of {n_before} train sessions)",
                    "Use a larger input or drop --fraction.")

    # 5. drop test (and validation) events whose item is not in the training part
    in_train = ev_split == 1
    vocab = np.zeros(len(uniques), dtype=bool)
    vocab[codes[in_train]] = True
    mask = in_train | vocab[codes]
    keep(mask)
    ev_split = ev_split[mask]
    held = "test" if valid_threshold is None else "test and validation"
    record(5, f"drop {held} events of items not in train")
    # 6. drop test (and validation) sessions with fewer than 2 events
    mask = (ev_split == 1) | (_lengths(sid, n_sessions)[sid] >= 2)
    keep(mask)
    ev_split = ev_split[mask]
    record(6, f"drop {held} sessions with < 2 events")
    if np.count_nonzero(ev_split == 2) == 0:
        raise empty("step 6 (test sessions need 2+ events of train items)",
                    f"Raise --test-days (now {test_days:g}) so the test window holds more sessions.")
    if valid_threshold is not None and np.count_nonzero(ev_split == 3) == 0:
        raise empty("step 6 (validation sessions need 2+ events of train items)",
                    f"Raise --valid-days (now {valid_days:g}), or pass --valid-days 0 for no validation split.")

    # 7. keep the last max_len events of every session
    starts, lengths = _session_bounds(sid)
    from_end = np.repeat(starts + lengths, lengths) - np.arange(len(sid)) - 1
    mask = from_end < max_len
    keep(mask)
    ev_split = ev_split[mask]
    record(7, f"keep the last {max_len} events of every session")

    # remap items to 1..N in sorted raw-id order, and pack the splits
    new_id = np.cumsum(vocab, dtype=np.int64)
    item_ids = np.asarray(uniques)[vocab]
    packed = {code: _pack(sid[ev_split == code], codes[ev_split == code], new_id, session_time, raw_session)
              for code in ((1, 2) if valid_threshold is None else (1, 2, 3))}
    train, test, valid = packed[1], packed[2], packed.get(3)
    trace.append({"step": 8, "name": "augment: n - 1 samples per session",
                  "train_samples": int(train.n_samples), "test_samples": int(test.n_samples),
                  **({} if valid is None else {"valid_samples": int(valid.n_samples)})})
    bar.update(1)
    bar.close()
    return PreprocessResult(train=train, test=test, item_ids=item_ids, threshold=threshold,
                            params=params, trace=trace, valid=valid, valid_threshold=valid_threshold)


# --------------------------------------------------------------------------
# writing


def file_fingerprint(path: str | Path) -> dict:
    """Absolute path, size in bytes and sha256 of a file (read in 4 MiB blocks)."""
    path = Path(path).resolve()
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return {"path": str(path), "size": path.stat().st_size, "sha256": digest.hexdigest()}


def write_processed(result: PreprocessResult, output_dir: str | Path, meta: dict | None = None) -> Path:
    """Write ``result`` as a processed dataset directory, atomically (see
    :func:`srs_core.data.integrity.save_dataset`).

    ``meta`` (the source file's fingerprint, the command that made it) is
    merged into ``meta.json`` next to the parameters, the split threshold,
    the per-step trace, the library version and the arrays' sha256.
    """
    full_meta = {
        **(meta or {}),
        "format_version": FORMAT_VERSION,
        "srs_core_version": __version__,
        "params": result.params,
        "split_threshold": result.threshold,
        "split_threshold_utc": datetime.fromtimestamp(result.threshold, tz=timezone.utc).isoformat(),
        **({} if result.valid_threshold is None else {
            "valid_threshold": result.valid_threshold,
            "valid_threshold_utc": datetime.fromtimestamp(result.valid_threshold, tz=timezone.utc).isoformat()}),
        "item_id_order": "sorted raw item id",
        "trace": result.trace,
    }
    splits = {name: (split.items, split.offsets, split.times) for name, split in result.splits()}
    return save_dataset(output_dir, splits, result.item_ids.tolist(), result.stats, full_meta)


def preprocess_command(dataset: str, input_path, params: dict) -> str:
    """The ``srs preprocess`` command line, less ``--output``, that makes the
    dataset again (meta.json records it; the output is wherever it lies)."""
    argv = ["srs", "preprocess", "--dataset", dataset, "--input", str(Path(input_path).resolve()),
            "--test-days", f"{params['test_days']:g}",
            "--valid-days", f"{params.get('valid_days', 0):g}", "--max-len", str(params["max_len"]),
            "--min-item-support", str(params["min_item_support"])]
    if params.get("fraction"):
        argv += ["--fraction", params["fraction"]]
    return shlex.join(argv)


def resolve_test_days(dataset: str, test_days) -> float:
    """``test_days`` if given, else the dataset's default (an error for ``tsv``)."""
    if test_days is None:
        test_days = DEFAULT_TEST_DAYS.get(dataset)
        if test_days is None:
            raise PreprocessError(
                f"--test-days is required for the {dataset!r} format (no default test window); pass --test-days N."
            )
    return test_days


def preprocess_file(
    dataset: str,
    input_path: str | Path,
    output_dir: str | Path,
    *,
    test_days: float | None = None,
    fraction=None,
    max_len: int = 25,
    min_item_support: int = 5,
    valid_days: float | None = None,
    quiet: bool = False,
) -> Path:
    """Read a raw file, run steps 1-8, and write the processed dataset to ``output_dir``.

    ``test_days`` defaults to :data:`DEFAULT_TEST_DAYS` (1 for Yoochoose, 7
    for Diginetica and MeLi 2020; required for ``tsv``) and ``valid_days`` to
    ``test_days`` (:func:`default_valid_days`; 0 for no validation split).
    Parameters are checked before the (possibly large) file is read.
    """
    reader = get_reader(dataset)
    test_days = _check_params(resolve_test_days(dataset, test_days), max_len, min_item_support)
    valid_days = _check_valid_days(default_valid_days(test_days) if valid_days is None else valid_days)
    parse_fraction(fraction)
    input_path = Path(input_path)
    events = reader(input_path, quiet=quiet)
    result = preprocess_events(events, test_days=test_days, fraction=fraction, max_len=max_len,
                               min_item_support=min_item_support, valid_days=valid_days, source=str(input_path),
                               quiet=quiet)
    del events
    meta = {"dataset": dataset, "source": file_fingerprint(input_path),
            "command": preprocess_command(dataset, input_path, result.params)}
    return write_processed(result, output_dir, meta)
