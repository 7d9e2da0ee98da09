"""Readers under fuzzing: small raw files of every format,
truncated, byte-flipped or re-encoded, go through ``srs preprocess``. Each
either becomes a dataset that passes its self-check, or is refused in one
line that names the input file; never a traceback, and nothing is left on
disk. Examples are derandomised, so CI sees the same ones every run."""
from __future__ import annotations

import gzip
import json
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from srs_core.cli import main as cli_main
from srs_core.data.dataset import ProcessedDataset

START = datetime(2016, 5, 2, tzinfo=timezone.utc)


def _sessions(n: int = 40):
    """``(session, item, time)`` rows: n sessions of 3 clicks over 5 days, 6 items."""
    for s in range(n):
        t0 = START + timedelta(hours=3 * s)
        for j in range(3):
            yield s + 1, 100 + (s + j) % 6, t0 + timedelta(seconds=60 * j)


def _yoochoose() -> bytes:
    return "".join(f"{s},{t.strftime('%Y-%m-%dT%H:%M:%S.000Z')},{i},0\n" for s, i, t in _sessions()).encode()


def _diginetica() -> bytes:
    rows = ["sessionId;userId;itemId;timeframe;eventdate"]
    for s, i, t in _sessions():
        day = t.replace(hour=0, minute=0, second=0)
        rows.append(f"{s};NA;{i};{int((t - day).total_seconds() * 1000)};{day.date().isoformat()}")
    return ("\n".join(rows) + "\n").encode()


def _tsv() -> bytes:
    return ("SessionId\tItemId\tTime\n" + "".join(f"{s}\t{i}\t{t.timestamp():.3f}\n" for s, i, t in _sessions())).encode()


def _meli() -> bytes:
    by_session: dict[int, list] = {}
    for s, i, t in _sessions():
        by_session.setdefault(s, []).append({"event_info": i, "event_timestamp": t.strftime("%Y-%m-%dT%H:%M:%S.000-0000"),
                                             "event_type": "view"})
    return "".join(json.dumps({"user_history": h[:-1], "item_bought": h[-1]["event_info"]}) + "\n"
                   for h in by_session.values()).encode()


RAW = {"yoochoose": (_yoochoose, "clicks.dat"), "diginetica": (_diginetica, "train-item-views.csv"),
       "tsv": (_tsv, "train.tsv"), "meli2020": (_meli, "train_dataset.jl")}


def _reencode(data: bytes, how: str) -> bytes:
    text = data.decode()
    if how == "gzip":
        return gzip.compress(data)
    if how == "crlf":
        return text.replace("\n", "\r\n").encode()
    if how == "bom":
        return "\ufeff".encode() + data
    return text.encode(how)  # utf-16, utf-32, latin-1, cp500 ...


mutations = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("flip"), st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), min_size=1, max_size=6)),
    st.tuples(st.just("digits"), st.lists(st.tuples(st.floats(0, 1), st.sampled_from(b"0123456789")), min_size=1,
                                          max_size=4)),
    st.tuples(st.just("drop-line"), st.floats(0, 1)),
    st.tuples(st.just("reencode"), st.sampled_from(["gzip", "crlf", "bom", "utf-16", "utf-32", "latin-1", "cp500"])),
    st.tuples(st.just("gzip-truncate"), st.floats(0, 1)),
)


def _mutate(data: bytes, mutation) -> bytes:
    kind, arg = mutation
    if kind == "truncate":
        return data[: int(arg * len(data))]
    if kind == "drop-line":
        lines = data.splitlines(keepends=True)
        del lines[min(int(arg * len(lines)), len(lines) - 1)]
        return b"".join(lines)
    if kind in ("flip", "digits"):
        out = bytearray(data)
        for where, byte in arg:
            out[min(int(where * len(out)), len(out) - 1)] = byte
        return bytes(out)
    if kind == "gzip-truncate":
        packed = gzip.compress(data)
        return packed[: int(arg * len(packed))]
    return _reencode(data, arg)


def test_the_unmutated_files_preprocess(tmp_path):
    for fmt, (make, name) in RAW.items():
        (tmp_path / name).write_bytes(make())
        assert _preprocess(fmt, tmp_path / name, tmp_path / fmt) == (0, ""), fmt
        ds = ProcessedDataset.load(tmp_path / fmt)
        assert ds.train.n_sessions > 0 and ds.test.n_sessions > 0 and ds.valid is not None, fmt


def _preprocess(fmt: str, raw: Path, out: Path) -> tuple[int, str]:
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = cli_main(["preprocess", "--dataset", fmt, "--input", str(raw), "--output", str(out), "--test-days", "1",
                       "--min-item-support", "1", "--quiet"])
    return rc, err.getvalue()


@pytest.mark.parametrize("fmt", sorted(RAW))
def test_a_damaged_raw_file_is_read_or_refused_clearly(fmt):
    make, name = RAW[fmt]
    clean = make()

    @settings(max_examples=80, deadline=None, derandomize=True, database=None)
    @given(mutation=mutations)
    def check(mutation):
        with tempfile.TemporaryDirectory() as tmp:
            raw, out = Path(tmp) / name, Path(tmp) / "out" / "data"
            raw.write_bytes(_mutate(clean, mutation))
            rc, err = _preprocess(fmt, raw, out)
            if rc == 0:
                ProcessedDataset.load(out)  # a dataset that passes its self-check
            else:
                assert rc == 2 and err.startswith("srs preprocess: error: ") and err.count("\n") == 1, err
                assert str(raw) in err, f"the message does not name the input file: {err}"
                assert not out.exists()
            leftovers = [p.name for p in (Path(tmp) / "out").glob("*")] if (Path(tmp) / "out").exists() else []
            assert leftovers in ([], ["data"]) and (rc == 0) == bool(leftovers), leftovers

    check()
