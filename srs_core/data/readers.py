"""Readers: one per raw dataset format, all returning the same events table.

The events table is a :class:`pandas.DataFrame` with one row per event and
the columns of :data:`EVENT_COLUMNS`:

``session``
    int64, the raw session id of the file
``item``
    int64, the raw item id of the file (remapped later, in preprocessing)
``time``
    float64, the event time in Unix seconds (UTC), millisecond precision
``order``
    int64, the event's position in the file (0, 1, 2, ...), which breaks
    ties between events of a session that share a time stamp

Supported formats (:data:`READERS`):

``yoochoose``  RecSys Challenge 2015 ``yoochoose-clicks.dat``: no header,
               ``SessionId,Timestamp,ItemId,Category`` (the category is ignored).
``diginetica`` CIKM Cup 2016 ``train-item-views.csv``: ``;``-separated with the
               header ``sessionId;userId;itemId;timeframe;eventdate`` (or the
               ``session_id;user_id;item_id;...`` spelling); the event time is
               ``eventdate`` at 00:00 UTC plus ``timeframe`` milliseconds.
``meli2020``   MercadoLibre Data Challenge 2020 ``train_dataset.jl`` (optionally
               gzip-compressed): one JSON object per line; line ``n`` becomes
               session ``n`` made of the viewed items in time order followed by
               ``item_bought`` one millisecond after the last event of the
               history; searches are ignored.
``tsv``        the session-rec framework's splits: tab-separated with a header
               holding ``SessionId``, ``ItemId`` and ``Time`` (Unix seconds).

Every reader accepts a gzip-compressed file (detected by its magic bytes),
streams the file in blocks (the 33M-row Yoochoose file never exists as Python
objects) and shows a byte-based progress bar unless ``quiet``. Input that does
not match the format raises one :class:`DataFormatError` naming the file, the
line where there is one, and what to do about it.
"""
from __future__ import annotations

import gzip
import io
import json
import zlib
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from srs_core.progress import tqdm

#: Columns of the events table every reader returns.
EVENT_COLUMNS = ("session", "item", "time", "order")

_GZIP_MAGIC = b"\x1f\x8b"
_BLOCK = 1 << 24  # 16 MiB of text per parsed block


class DataFormatError(ValueError):
    """A raw input file does not match the format it was read as."""


# --------------------------------------------------------------------------
# shared helpers


def make_events(session, item, time, order=None) -> pd.DataFrame:
    """Build an events table from four columns (``order`` defaults to 0, 1, ...)."""
    session = np.asarray(session, dtype=np.int64)
    item = np.asarray(item)
    if item.dtype.kind in "iub":
        item = item.astype(np.int64, copy=False)
    time = np.asarray(time, dtype=np.float64)
    order = np.arange(len(session), dtype=np.int64) if order is None else np.asarray(order, dtype=np.int64)
    if not (len(session) == len(item) == len(time) == len(order)):
        raise ValueError("session, item, time and order must have the same length")
    return pd.DataFrame({"session": session, "item": item, "time": time, "order": order}, copy=False)


def _empty_events() -> pd.DataFrame:
    return make_events([], np.array([], dtype=np.int64), [])


def _check_file(path: Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise DataFormatError(f"{path}: no such file. Check the --input path (download the dataset first).")
    if not path.is_file():
        raise DataFormatError(f"{path}: is not a file. Point --input at the raw data file itself.")
    if path.stat().st_size == 0:
        raise DataFormatError(f"{path}: the file is empty. Re-download or re-extract it.")
    return path


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == _GZIP_MAGIC


def _truncated(path: Path, exc: BaseException) -> DataFormatError:
    return DataFormatError(
        f"{path}: the compressed file is truncated or corrupt ({exc}). "
        "Re-download it, or decompress it with `gunzip -t` to check it."
    )


@contextmanager
def _open_binary(path: Path, quiet: bool, desc: str):
    """Open ``path`` (gzip or plain) for streaming; yield ``(stream, advance)``.

    ``advance()`` moves the byte-based progress bar to the position reached in
    the *raw* file, so compressed files show honest progress too.
    """
    raw = open(path, "rb")
    size = path.stat().st_size
    bar = tqdm(total=size, unit="B", unit_scale=True, desc=desc, disable=quiet, leave=False)
    stream = gzip.GzipFile(fileobj=raw, mode="rb") if _is_gzip(path) else raw

    def advance() -> None:
        bar.update(raw.tell() - bar.n)

    try:
        yield stream, advance
    finally:
        bar.close()
        stream.close()
        raw.close()


def _first_line(path: Path) -> str:
    """The first line of the (possibly compressed) file, decoded."""
    try:
        with _open_binary(path, quiet=True, desc="") as (stream, _):
            line = stream.readline()
    except (EOFError, OSError, zlib.error) as exc:
        raise _truncated(path, exc) from None
    try:
        return line.decode("utf-8").rstrip("\r\n").lstrip("\ufeff")
    except UnicodeDecodeError:
        raise DataFormatError(
            f"{path}, line 1: not UTF-8 text. Is this the right file (not an archive such as .7z or .zip)?"
        ) from None


def _first_fields(path: Path, sep: str) -> tuple[str, list[str], bool]:
    """Check ``path`` and split its first line on ``sep``.

    Returns the line, its fields, and whether another common delimiter
    (``,``, ``;``, tab) splits it instead, i.e. the file uses the wrong one.
    """
    line = _first_line(_check_file(Path(path)))
    fields = line.split(sep)
    wrong_sep = len(fields) == 1 and any(d in line for d in ",;\t" if d != sep)
    return line, fields, wrong_sep


def _iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line_number, text)`` for every line; used only to explain a failure."""
    with _open_binary(path, quiet=True, desc="") as (stream, _):
        for n, raw in enumerate(io.TextIOWrapper(stream, encoding="utf-8", errors="replace"), start=1):
            yield n, raw.rstrip("\r\n")


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _is_timestamp(text: str) -> bool:
    """An ISO-8601 time stamp with a zone (``Z`` or an offset), as the fast parser requires."""
    try:
        return datetime.fromisoformat(text).tzinfo is not None
    except ValueError:
        return False


def _is_date(text: str) -> bool:
    """A calendar date spelled ``YYYY-MM-DD``."""
    if len(text) != 10 or text[4] != "-" or text[7] != "-":
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _find_bad_line(
    path: Path,
    sep: str,
    n_fields: int,
    checks: dict[int, tuple[str, Callable[[str], bool]]],
    skip: int,
) -> tuple[int, str] | None:
    """Scan the file line by line for the first line that breaks the format.

    Slow (pure Python), so it only runs after the fast reader failed, to turn
    the parser's message into one naming the line. ``checks`` maps a field
    index to ``(what it should be, test)``.
    """
    for n, line in _iter_lines(path):
        if n <= skip or not line.strip():
            continue
        fields = line.split(sep)
        if len(fields) != n_fields:
            return n, f"expected {n_fields} {sep!r}-separated fields, found {len(fields)}: {line[:80]!r}"
        for col, (what, ok) in checks.items():
            if not ok(fields[col]):
                return n, f"field {col + 1} should be {what}, found {fields[col]!r}"
    return None


def _read_csv_blocks(
    path: Path,
    *,
    sep: str,
    column_names: list[str] | None,
    column_types: dict[str, pa.DataType],
    quiet: bool,
    on_error: Callable[[Exception], DataFormatError],
) -> Iterator[pa.RecordBatch]:
    """Stream ``path`` as Arrow record batches of the typed ``column_types`` columns.

    ``column_names=None`` takes the names from the header line.
    """
    read_options = pacsv.ReadOptions(column_names=column_names, block_size=_BLOCK)
    parse_options = pacsv.ParseOptions(delimiter=sep, quote_char=False)
    convert_options = pacsv.ConvertOptions(
        column_types=column_types,
        include_columns=list(column_types),
        null_values=[],
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    try:
        with _open_binary(path, quiet, f"reading {path.name}") as (stream, advance):
            reader = pacsv.open_csv(stream, read_options, parse_options, convert_options)
            for batch in reader:
                advance()
                yield batch
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise _truncated(path, exc) from None
    except (pa.ArrowInvalid, pa.ArrowKeyError) as exc:
        if "compressed" in str(exc).lower() or "end-of-stream" in str(exc).lower():
            raise _truncated(path, exc) from None
        raise on_error(exc) from None
    except OSError as exc:  # gzip raises plain OSError for some corruptions
        raise _truncated(path, exc) from None


def _bad_input(path: Path, found: tuple[int, str] | None, exc: Exception, fix: str) -> DataFormatError:
    if found is None:
        return DataFormatError(f"{path}: could not be parsed ({exc}). {fix}")
    line, what = found
    return DataFormatError(f"{path}, line {line}: {what}. {fix}")


def _read_delimited(
    path: Path,
    *,
    sep: str,
    column_names: list[str] | None,
    n_fields: int,
    types: dict[str, pa.DataType],
    checks: dict[int, tuple[str, Callable[[str], bool]]],
    fix: str,
    convert: Callable[[pa.RecordBatch], tuple[np.ndarray, np.ndarray, np.ndarray]],
    quiet: bool,
) -> pd.DataFrame:
    """Read a delimited file block by block; ``convert`` maps a batch to (session, item, seconds).

    On a parse error, ``checks`` (field index -> what it should be, test) find
    the offending line for the message, which ends with ``fix``.
    """
    skip = 0 if column_names is not None else 1

    def on_error(exc: Exception) -> DataFormatError:
        return _bad_input(path, _find_bad_line(path, sep, n_fields, checks, skip=skip), exc, fix)

    blocks = _read_csv_blocks(path, sep=sep, column_names=column_names, column_types=types, quiet=quiet,
                              on_error=on_error)
    return _assemble([convert(batch) for batch in blocks])


def _assemble(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> pd.DataFrame:
    if not parts:
        return _empty_events()
    session = np.concatenate([p[0] for p in parts])
    item = np.concatenate([p[1] for p in parts])
    time = np.concatenate([p[2] for p in parts])
    return make_events(session, item, time)


# --------------------------------------------------------------------------
# Yoochoose


_YOOCHOOSE_FIX = (
    "read_yoochoose expects yoochoose-clicks.dat: no header, comma-separated "
    "SessionId,Timestamp,ItemId,Category with integer ids and ISO-8601 UTC timestamps "
    "such as 2014-04-07T10:51:09.277Z"
)


def read_yoochoose(path: str | Path, *, quiet: bool = False) -> pd.DataFrame:
    """Read RecSys Challenge 2015 ``yoochoose-clicks.dat`` into an events table."""
    path = Path(path)
    _, fields, wrong_sep = _first_fields(path, ",")
    if len(fields) != 4:
        hint = {5: " (5 fields: is this yoochoose-buys.dat? Use yoochoose-clicks.dat)"}.get(len(fields), "")
        hint = " (the file does not look comma-separated)" if wrong_sep else hint
        raise DataFormatError(
            f"{path}, line 1: expected 4 comma-separated fields, found {len(fields)}{hint}. {_YOOCHOOSE_FIX}."
        )
    if not _is_int(fields[0]):
        raise DataFormatError(
            f"{path}, line 1: SessionId {fields[0]!r} is not an integer (yoochoose-clicks.dat has no header "
            f"line; remove it). {_YOOCHOOSE_FIX}."
        )

    def convert(batch: pa.RecordBatch):
        ms = batch.column("time").cast(pa.int64()).to_numpy()
        return batch.column("session").to_numpy(), batch.column("item").to_numpy(), ms / 1000.0

    return _read_delimited(
        path, sep=",", column_names=["session", "time", "item", "category"], n_fields=4,
        types={"session": pa.int64(), "time": pa.timestamp("ms", tz="UTC"), "item": pa.int64()},
        checks={0: ("an integer SessionId", _is_int), 1: ("an ISO-8601 timestamp", _is_timestamp),
                2: ("an integer ItemId", _is_int)},
        fix=_YOOCHOOSE_FIX + ".", convert=convert, quiet=quiet,
    )


# --------------------------------------------------------------------------
# Diginetica


_DIGINETICA_HEADERS = (
    ["sessionId", "userId", "itemId", "timeframe", "eventdate"],
    ["session_id", "user_id", "item_id", "timeframe", "eventdate"],
)
_DIGINETICA_FIX = (
    "read_diginetica expects train-item-views.csv: ';'-separated with the header "
    "sessionId;userId;itemId;timeframe;eventdate (or session_id;user_id;item_id;timeframe;eventdate), "
    "integer ids and timeframe, eventdate as YYYY-MM-DD"
)


def read_diginetica(path: str | Path, *, quiet: bool = False) -> pd.DataFrame:
    """Read CIKM Cup 2016 ``train-item-views.csv``: time = eventdate 00:00 UTC + timeframe ms."""
    path = Path(path)
    header, names, wrong_sep = _first_fields(path, ";")
    if names not in _DIGINETICA_HEADERS:
        what = "the header is not ';'-separated" if wrong_sep else f"unexpected header {header[:80]!r}"
        raise DataFormatError(f"{path}, line 1: {what}. {_DIGINETICA_FIX}.")

    sess, _, item, frame, day = names

    def convert(batch: pa.RecordBatch):
        days = batch.column(day).cast(pa.int32()).to_numpy().astype(np.int64)
        ms = days * 86_400_000 + batch.column(frame).to_numpy()
        return batch.column(sess).to_numpy(), batch.column(item).to_numpy(), ms / 1000.0

    return _read_delimited(
        path, sep=";", column_names=None, n_fields=5,
        types={sess: pa.int64(), item: pa.int64(), frame: pa.int64(), day: pa.date32()},
        checks={0: ("an integer session id", _is_int), 2: ("an integer item id", _is_int),
                3: ("an integer timeframe (ms)", _is_int), 4: ("a date YYYY-MM-DD", _is_date)},
        fix=_DIGINETICA_FIX + ".", convert=convert, quiet=quiet,
    )


# --------------------------------------------------------------------------
# Generic session-rec TSV


_TSV_COLUMNS = ("SessionId", "ItemId", "Time")
_TSV_FIX = (
    "the tsv format is tab-separated with a header naming SessionId, ItemId and Time "
    "(integer ids, Time in Unix seconds)"
)


def read_tsv(path: str | Path, *, quiet: bool = False) -> pd.DataFrame:
    """Read a session-rec style ``SessionId\\tItemId\\tTime`` file (extra columns are ignored)."""
    path = Path(path)
    header, names, wrong_sep = _first_fields(path, "\t")
    missing = [c for c in _TSV_COLUMNS if c not in names]
    if missing:
        what = "the header is not tab-separated" if wrong_sep else \
            f"the header {header[:80]!r} lacks {', '.join(missing)}"
        raise DataFormatError(f"{path}, line 1: {what}. Fix: {_TSV_FIX}.")

    pos = {c: names.index(c) for c in _TSV_COLUMNS}

    def convert(batch: pa.RecordBatch):
        return (batch.column("SessionId").to_numpy(), batch.column("ItemId").to_numpy(),
                batch.column("Time").to_numpy())

    return _read_delimited(
        path, sep="\t", column_names=None, n_fields=len(names),
        types={"SessionId": pa.int64(), "ItemId": pa.int64(), "Time": pa.float64()},
        checks={pos["SessionId"]: ("an integer SessionId", _is_int), pos["ItemId"]: ("an integer ItemId", _is_int),
                pos["Time"]: ("a number (Unix seconds)", _is_float)},
        fix=f"Fix: {_TSV_FIX}.", convert=convert, quiet=quiet,
    )


# --------------------------------------------------------------------------
# MercadoLibre 2020


_MELI_FIX = (
    "read_meli2020 expects train_dataset.jl(.gz): one JSON object per line with "
    "'user_history' (a list of events with event_info, event_timestamp, event_type) and an integer "
    "'item_bought'"
)
_MELI_CHUNK = 20_000  # lines parsed per vectorised time-stamp conversion


def _meli_line(path: Path, n: int, text: bytes, sessions, items, stamps, bought_at) -> None:
    """Append the views and the purchase of line ``n`` (timestamps as strings)."""
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"{path}, line {n}: malformed JSON ({exc.msg if hasattr(exc, 'msg') else exc}). "
                              f"{_MELI_FIX}.") from None
    if not isinstance(obj, dict) or "user_history" not in obj:
        raise DataFormatError(f"{path}, line {n}: no 'user_history' field. {_MELI_FIX}.")
    bought = obj.get("item_bought")
    if bought is None:
        raise DataFormatError(
            f"{path}, line {n}: no 'item_bought' (is this test_dataset.jl? Sessions need the purchase; "
            f"use train_dataset.jl). {_MELI_FIX}."
        )
    if not isinstance(bought, int) or isinstance(bought, bool):
        raise DataFormatError(f"{path}, line {n}: item_bought {bought!r} is not an integer. {_MELI_FIX}.")
    history = obj["user_history"]
    if not history:
        return  # a lone purchase is a one-event session, which step 1 drops anyway
    last = len(stamps)
    try:
        for event in history:
            stamps.append(event["event_timestamp"])
            if event["event_type"] == "view":
                info = event["event_info"]
                if not isinstance(info, int) or isinstance(info, bool):
                    raise DataFormatError(
                        f"{path}, line {n}: viewed item {info!r} is not an integer id. {_MELI_FIX}."
                    )
                sessions.append(n)
                items.append(info)
            else:
                sessions.append(-1)  # searches keep their time stamp (for the purchase time) only
                items.append(0)
    except (KeyError, TypeError):
        raise DataFormatError(f"{path}, line {n}: an event of user_history lacks event_info, event_timestamp "
                              f"or event_type. {_MELI_FIX}.") from None
    bought_at.append((n, bought, last, len(stamps)))


def _meli_flush(path: Path, sessions, items, stamps, bought_at, parts) -> None:
    if not stamps:
        return
    text = pd.Series(stamps, dtype=object)
    parsed = pd.to_datetime(text.where(text.map(type) == str), format="ISO8601", utc=True, errors="coerce")
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if len(bad):
        k = int(bad[0])
        line = next(n for n, _, lo, hi in bought_at if lo <= k < hi)
        raise DataFormatError(f"{path}, line {line}: bad event_timestamp {stamps[k]!r} (expected ISO-8601 "
                              f"such as 2019-10-19T11:25:42.444-0400). {_MELI_FIX}.")
    ms = parsed.dt.as_unit("ms").astype("int64").to_numpy()
    sess = np.asarray(sessions, dtype=np.int64)
    item = np.asarray(items, dtype=np.int64)
    # purchase: one millisecond after the last event of the history (views and searches alike)
    meta = np.asarray(bought_at, dtype=np.int64).reshape(-1, 4)
    last_ms = np.maximum.reduceat(ms, meta[:, 2]) if len(meta) else np.empty(0, np.int64)
    # interleave: each session's views followed by its purchase, in file order
    view = sess >= 0
    seg = np.repeat(np.arange(len(meta)), meta[:, 3] - meta[:, 2])  # history index of every stamp
    out_sess = np.concatenate([sess[view], meta[:, 0]])
    out_item = np.concatenate([item[view], meta[:, 1]])
    out_ms = np.concatenate([ms[view], last_ms + 1])
    key = np.concatenate([seg[view] * 2, np.arange(len(meta)) * 2 + 1])
    idx = np.argsort(key, kind="stable")
    parts.append((out_sess[idx], out_item[idx], out_ms[idx] / 1000.0))
    for buf in (sessions, items, stamps, bought_at):
        buf.clear()


def read_meli2020(path: str | Path, *, quiet: bool = False) -> pd.DataFrame:
    """Read MercadoLibre 2020 ``train_dataset.jl`` (or ``.jl.gz``); line ``n`` is session ``n``.

    Each session is the line's viewed items followed by ``item_bought``, which
    gets the time of the history's last event (view or search) plus 1 ms.
    Time stamps carry UTC offsets (``-0400``) and are converted to UTC.
    """
    path = _check_file(Path(path))
    sessions: list[int] = []
    items: list[int] = []
    stamps: list[str] = []
    bought_at: list[tuple[int, int, int, int]] = []
    parts: list = []
    try:
        with _open_binary(path, quiet, f"reading {path.name}") as (stream, advance):
            for n, text in enumerate(stream, start=1):
                if not text.strip():
                    continue
                _meli_line(path, n, text, sessions, items, stamps, bought_at)
                if n % _MELI_CHUNK == 0:
                    _meli_flush(path, sessions, items, stamps, bought_at, parts)
                    advance()
            _meli_flush(path, sessions, items, stamps, bought_at, parts)
            advance()
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise _truncated(path, exc) from None
    return _assemble(parts)


# --------------------------------------------------------------------------
# registry


#: Format name (``srs preprocess --dataset``) -> reader function.
READERS: dict[str, Callable[..., pd.DataFrame]] = {
    "yoochoose": read_yoochoose,
    "diginetica": read_diginetica,
    "meli2020": read_meli2020,
    "tsv": read_tsv,
}


def get_reader(dataset: str) -> Callable[..., pd.DataFrame]:
    """The reader registered for ``dataset``, or a :class:`DataFormatError` listing the choices."""
    try:
        return READERS[dataset]
    except (KeyError, TypeError):
        raise DataFormatError(
            f"unknown dataset {dataset!r}: choose one of {', '.join(sorted(READERS))} (--dataset)."
        ) from None


def read_events(dataset: str, path: str | Path, *, quiet: bool = False) -> pd.DataFrame:
    """Read ``path`` with the reader registered for ``dataset``."""
    return get_reader(dataset)(path, quiet=quiet)
