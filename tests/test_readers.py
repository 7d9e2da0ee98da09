"""Each raw-format reader on small files written here, well-formed and broken."""
import gzip
import json
from datetime import datetime, timezone

import numpy as np
import pytest

from srs_core.data.readers import (
    EVENT_COLUMNS,
    READERS,
    DataFormatError,
    read_diginetica,
    read_events,
    read_meli2020,
    read_tsv,
    read_yoochoose,
)


def utc(*args) -> float:
    return datetime(*args, tzinfo=timezone.utc).timestamp()


def write(path, text: str, compress: bool = False):
    data = text.encode()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def truncated_gzip(path, text: str):
    data = gzip.compress(text.encode())
    path.write_bytes(data[: len(data) // 2])
    return path


def columns(events):
    return {c: events[c].tolist() for c in EVENT_COLUMNS}


# --------------------------------------------------------------------------- yoochoose

YOOCHOOSE = (
    "1,2014-04-07T10:51:09.277Z,214536502,0\n"
    "1,2014-04-07T10:54:09.868Z,214536500,S\n"
    "2,2014-04-07T13:56:37.614Z,214662742,2053813774\n"
    "2,2014-04-07T13:56:37.614Z,214662742,0\n"
)


@pytest.mark.parametrize("compress", [False, True])
def test_yoochoose_reads_ids_times_and_file_order(tmp_path, compress):
    events = read_yoochoose(write(tmp_path / "clicks.dat", YOOCHOOSE, compress), quiet=True)
    assert list(events.columns) == list(EVENT_COLUMNS)
    assert events["session"].dtype == np.int64 and events["time"].dtype == np.float64
    assert columns(events) == {
        "session": [1, 1, 2, 2],
        "item": [214536502, 214536500, 214662742, 214662742],
        "time": [utc(2014, 4, 7, 10, 51, 9, 277000), utc(2014, 4, 7, 10, 54, 9, 868000),
                 utc(2014, 4, 7, 13, 56, 37, 614000), utc(2014, 4, 7, 13, 56, 37, 614000)],
        "order": [0, 1, 2, 3],
    }


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1;2014-04-07T10:51:09.277Z;214536502;0\n", "line 1: expected 4 comma-separated fields, found 1"),
        ("1,2014-04-07T10:51:09.277Z,214536502,12462,1\n", "yoochoose-buys.dat"),
        ("SessionId,Timestamp,ItemId,Category\n1,2014-04-07T10:51:09.277Z,214536502,0\n", "no header"),
        (YOOCHOOSE + "3,2014-04-07T13:56:37.614Z,P2146,0\n", "line 5: field 3 should be an integer ItemId, found 'P2146'"),
        (YOOCHOOSE + "x3,2014-04-07T13:56:37.614Z,1,0\n", "line 5: field 1 should be an integer SessionId"),
        (YOOCHOOSE + "3,yesterday,1,0\n", "line 5: field 2 should be an ISO-8601 timestamp"),
        (YOOCHOOSE + "3,2014-04-07T13:56:37.614Z\n", "line 5: expected 4 ',"),
    ],
)
def test_yoochoose_bad_input_names_file_and_line(tmp_path, text, expected):
    path = write(tmp_path / "clicks.dat", text)
    with pytest.raises(DataFormatError) as err:
        read_yoochoose(path, quiet=True)
    assert expected in str(err.value)
    assert str(path) in str(err.value)


def test_missing_empty_and_truncated_files(tmp_path):
    with pytest.raises(DataFormatError, match="no such file"):
        read_yoochoose(tmp_path / "absent.dat", quiet=True)
    with pytest.raises(DataFormatError, match="empty"):
        read_yoochoose(write(tmp_path / "empty.dat", ""), quiet=True)
    big = YOOCHOOSE * 2000
    with pytest.raises(DataFormatError, match="truncated or corrupt"):
        read_yoochoose(truncated_gzip(tmp_path / "clicks.dat.gz", big), quiet=True)


# --------------------------------------------------------------------------- diginetica


@pytest.mark.parametrize("header", ["sessionId;userId;itemId;timeframe;eventdate",
                                    "session_id;user_id;item_id;timeframe;eventdate"])
def test_diginetica_time_is_eventdate_plus_timeframe(tmp_path, header):
    text = header + "\n1;NA;81766;526309;2016-05-09\n1;NA;31331;1031018;2016-05-09\n2;17;9654;0;2016-06-01\n"
    events = read_diginetica(write(tmp_path / "views.csv", text), quiet=True)
    assert columns(events) == {
        "session": [1, 1, 2],
        "item": [81766, 31331, 9654],
        "time": [utc(2016, 5, 9) + 526.309, utc(2016, 5, 9) + 1031.018, utc(2016, 6, 1)],
        "order": [0, 1, 2],
    }


@pytest.mark.parametrize(
    "text, expected",
    [
        ("sessionId,userId,itemId,timeframe,eventdate\n1,NA,5,0,2016-05-09\n", "not ';'-separated"),
        ("sessionId;itemId;timeframe;eventdate\n1;5;0;2016-05-09\n", "unexpected header"),
        ("sessionId;userId;itemId;timeframe;eventdate\n1;NA;5;0;2016-05-09\nabc;NA;5;0;2016-05-09\n",
         "line 3: field 1 should be an integer session id, found 'abc'"),
        ("sessionId;userId;itemId;timeframe;eventdate\n1;NA;5;0;2016-05-09\n1;NA;5;0;09/05/2016\n",
         "line 3: field 5 should be a date YYYY-MM-DD"),
    ],
)
def test_diginetica_bad_input(tmp_path, text, expected):
    with pytest.raises(DataFormatError, match="train-item-views") as err:
        read_diginetica(write(tmp_path / "views.csv", text), quiet=True)
    assert expected in str(err.value)


def test_diginetica_with_byte_order_mark_and_crlf(tmp_path):
    text = "\ufeffsessionId;userId;itemId;timeframe;eventdate\r\n1;NA;5;10;2016-05-09\r\n"
    events = read_diginetica(write(tmp_path / "views.csv", text), quiet=True)
    assert columns(events) == {"session": [1], "item": [5], "time": [utc(2016, 5, 9) + 0.01], "order": [0]}


def test_diginetica_real_sample(diginetica_sample):
    events = read_diginetica(diginetica_sample, quiet=True)
    assert len(events) == 12391  # data lines of the sample (the last one has no newline)
    first = events.iloc[0]
    assert (first["session"], first["item"]) == (1, 81766)
    assert first["time"] == utc(2016, 5, 9) + 526.309
    assert events["order"].tolist() == list(range(len(events)))


# --------------------------------------------------------------------------- meli2020


def meli_line(history, bought="absent") -> str:
    obj = {"user_history": [{"event_info": info, "event_timestamp": ts, "event_type": kind}
                            for info, ts, kind in history]}
    if bought != "absent":
        obj["item_bought"] = bought
    return json.dumps(obj) + "\n"


MELI = (
    meli_line([(1786148, "2019-10-19T11:25:42.444-0400", "view"),
               ("smart watch", "2019-10-19T11:26:00.000-0400", "search"),
               (1786148, "2019-10-19T11:25:50.000-0400", "view")], 1748830)
    + meli_line([], 5)
    + meli_line([(7, "2019-10-01T23:59:59.999-0400", "view")], 8)
)


@pytest.mark.parametrize("compress", [False, True])
def test_meli_sessions_are_views_then_purchase(tmp_path, compress):
    events = read_meli2020(write(tmp_path / "train_dataset.jl", MELI, compress), quiet=True)
    t0 = utc(2019, 10, 19, 15, 25, 42, 444000)  # -0400 -> UTC
    last = utc(2019, 10, 19, 15, 26, 0)  # the search is the last event of line 1
    t3 = utc(2019, 10, 2, 3, 59, 59, 999000)
    assert columns(events) == {
        "session": [1, 1, 1, 3, 3],  # line numbers; line 2 has no history
        "item": [1786148, 1786148, 1748830, 7, 8],
        "time": [t0, utc(2019, 10, 19, 15, 25, 50), (last * 1000 + 1) / 1000, t3, (t3 * 1000 + 1) / 1000],
        "order": [0, 1, 2, 3, 4],
    }


@pytest.mark.parametrize(
    "line, expected",
    [
        ('{"user_history": [{"event_info": 1,\n', "line 2: malformed JSON"),
        (meli_line([(3, "2019-10-19T11:25:42.444-0400", "view")]), "line 2: no 'item_bought'"),
        (meli_line([("abc", "2019-10-19T11:25:42.444-0400", "view")], 3), "line 2: viewed item 'abc'"),
        (meli_line([(3, "last tuesday", "view")], 3), "line 2: bad event_timestamp 'last tuesday'"),
        ('{"item_bought": 3}\n', "line 2: no 'user_history'"),
    ],
)
def test_meli_bad_lines(tmp_path, line, expected):
    text = meli_line([(1, "2019-10-19T11:25:42.444-0400", "view")], 2) + line
    with pytest.raises(DataFormatError, match="train_dataset.jl") as err:
        read_meli2020(write(tmp_path / "train_dataset.jl", text), quiet=True)
    assert expected in str(err.value)


def test_meli_truncated_gzip(tmp_path):
    with pytest.raises(DataFormatError, match="truncated or corrupt"):
        read_meli2020(truncated_gzip(tmp_path / "train_dataset.jl.gz", MELI * 300), quiet=True)


# --------------------------------------------------------------------------- tsv


def test_tsv_any_column_order_and_extra_columns(tmp_path):
    text = "Time\tSessionId\tExtra\tItemId\n1396867869.5\t4\tx\t10\n1396867870\t4\ty\t11\n"
    events = read_tsv(write(tmp_path / "train.tsv", text), quiet=True)
    assert columns(events) == {"session": [4, 4], "item": [10, 11], "time": [1396867869.5, 1396867870.0],
                               "order": [0, 1]}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("SessionId,ItemId,Time\n1,2,3\n", "not tab-separated"),
        ("SessionId\tItem\tTime\n1\t2\t3\n", "lacks ItemId"),
        ("SessionId\tItemId\tTime\n1\t2\t3\n1\titem-7\t4\n", "line 3: field 2 should be an integer ItemId"),
        ("SessionId\tItemId\tTime\n1\t2\t3\n1\t2\tnoon\n", "line 3: field 3 should be a number"),
    ],
)
def test_tsv_bad_input(tmp_path, text, expected):
    with pytest.raises(DataFormatError) as err:
        read_tsv(write(tmp_path / "train.tsv", text), quiet=True)
    assert expected in str(err.value)


# --------------------------------------------------------------------------- registry


def test_registry_and_unknown_dataset(tmp_path):
    assert set(READERS) == {"yoochoose", "diginetica", "meli2020", "tsv"}
    path = write(tmp_path / "clicks.dat", YOOCHOOSE)
    assert read_events("yoochoose", path, quiet=True)["item"].tolist()[0] == 214536502
    with pytest.raises(DataFormatError, match="unknown dataset 'yoochose'.*diginetica"):
        read_events("yoochose", path)
