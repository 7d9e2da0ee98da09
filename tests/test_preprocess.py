"""Steps 1-8 of Section 4.5.4 on hand-built events, against a plain-Python reference, and on the real sample."""
import json
from collections import Counter, defaultdict
from fractions import Fraction

import numpy as np
import pytest

from srs_core.data import ProcessedDataset
from srs_core.data.preprocess import (
    STATS_KEYS,
    PreprocessError,
    parse_fraction,
    preprocess_events,
    preprocess_file,
    write_processed,
)
from srs_core.data.readers import DataFormatError, make_events, read_diginetica

DAY = 86_400.0


def events_from(rows):
    """rows: (session, item, time); file order is the row order."""
    s, i, t = zip(*rows)
    return make_events(s, i, t)


# Hand-built case (min support 2, max_len 3, test_days 1). Raw ids 10, 20, 30 survive -> ids 1, 2, 3.
HAND = [
    (1, 10, 0), (1, 20, 1), (1, 10, 2), (1, 30, 3),  # train; trimmed to its last 3 at step 7
    (2, 60, 5),  # one event: dropped at step 1, so item 60 has support 1 afterwards
    (3, 40, DAY), (3, 10, DAY + 1),  # 40 seen once -> dropped at step 2, session dropped at step 3
    (4, 20, 2 * DAY), (4, 30, 2 * DAY + 1), (4, 60, 2 * DAY + 2), (4, 20, 2 * DAY + 3),
    (4, 10, 2 * DAY + 4), (4, 30, 2 * DAY + 5),
    (5, 10, 5 * DAY), (5, 50, 5 * DAY + 1), (5, 20, 5 * DAY + 2),  # test; 50 is not a train item (step 5)
    (6, 50, 5 * DAY), (6, 50, 5 * DAY + 1), (6, 30, 5 * DAY + 2),  # test; one event left -> step 6
    (7, 20, 3 * DAY + 100), (7, 30, 3 * DAY + 100),  # same time: file order decides (20 then 30)
    (8, 10, 3 * DAY + 5), (8, 30, 3 * DAY + 1),  # out of time order in the file: 30 comes first
]


def test_hand_built_case_step_by_step():
    res = preprocess_events(events_from(HAND), test_days=1, max_len=3, min_item_support=2)
    assert res.item_ids.tolist() == [10, 20, 30]
    assert res.threshold == 5 * DAY + 2 - DAY
    # train sessions in session-time order: 1 (t=3), 4 (2d+5), 8 (3d+5), 7 (3d+100)
    assert res.train.items.tolist() == [2, 1, 3, 2, 1, 3, 3, 1, 2, 3]
    assert res.train.offsets.tolist() == [0, 3, 6, 8, 10]
    assert res.train.times.tolist() == [3, 2 * DAY + 5, 3 * DAY + 5, 3 * DAY + 100]
    assert res.test.items.tolist() == [1, 2]
    assert res.test.offsets.tolist() == [0, 2]
    assert res.test.times.tolist() == [5 * DAY + 2]
    assert res.stats == {"n_items": 3, "n_train_sessions": 4, "n_train_samples": 6, "n_test_sessions": 1,
                         "n_test_samples": 1, "avg_train_session_length": 2.5}
    left = [(t["step"], t.get("events"), t.get("sessions")) for t in res.trace]
    assert left == [(0, 23, 8), (1, 22, 7), (2, 20, 7), (3, 19, 6), (4, 19, 6), (5, 16, 6), (6, 15, 5),
                    (7, 12, 5), (8, None, None)]
    assert res.trace[4]["train_sessions"] == 4 and res.trace[4]["test_sessions"] == 2


def test_vocabulary_is_fixed_before_the_trim():
    # item 70 only occurs in the part of a train session that step 7 trims away: it keeps its id
    rows = [(1, 70, 0), (1, 10, 1), (1, 20, 2), (1, 30, 3), (2, 70, 4), (2, 10, 5),
            (3, 10, 2 * DAY), (3, 70, 2 * DAY + 1)]
    res = preprocess_events(events_from(rows), test_days=1, max_len=3, min_item_support=1)
    assert res.item_ids.tolist() == [10, 20, 30, 70]
    assert res.train.items.tolist() == [1, 2, 3, 4, 1]
    assert res.test.items.tolist() == [1, 4]


def test_fraction_keeps_the_most_recent_train_sessions():
    # 8 train sessions (ids 1..8, session 8 latest) and one test session; 1/4 keeps sessions 7 and 8
    rows = [r for s in range(1, 9) for r in ((s, 100 + s, s * 60), (s, 200, s * 60 + 1))]
    rows += [(9, 107, 3 * DAY), (9, 101, 3 * DAY + 1), (9, 200, 3 * DAY + 2), (9, 108, 3 * DAY + 3)]
    res = preprocess_events(events_from(rows), test_days=1, fraction="1/4", min_item_support=1)
    assert res.item_ids.tolist() == [107, 108, 200]
    assert res.train.items.tolist() == [1, 3, 2, 3]
    assert res.test.items.tolist() == [1, 3, 2]  # 101 is not in the kept train sessions
    assert res.params["fraction"] == "1/4"
    # ties in session time are broken by raw session id: sessions 3 and 5 share a time, 1/4 of 8 keeps 5 then 9
    rows = [(s, 1, 0) for s in range(10)] + [(s, 2, 10 if s in (3, 5) else 1) for s in range(10)] + \
           [(20, 1, 3 * DAY), (20, 2, 3 * DAY + 1)]
    res = preprocess_events(events_from(rows), test_days=1, fraction=Fraction(1, 4), min_item_support=1)
    assert res.train.n_sessions == 2 and res.train.times.tolist() == [10, 10]


@pytest.mark.parametrize("value, expected", [("1/4", Fraction(1, 4)), (" 1/64 ", Fraction(1, 64)), (0.25, Fraction(1, 4)),
                                             (1 / 64, Fraction(1, 64)), (None, None)])
def test_parse_fraction_accepts_quarter_and_sixty_fourth(value, expected):
    assert parse_fraction(value) == expected


@pytest.mark.parametrize("value", ["1/8", 0.5, "quarter", 1, "1/0"])
def test_parse_fraction_rejects_anything_else(value):
    with pytest.raises(PreprocessError, match="use 1/4 or 1/64"):
        parse_fraction(value)


@pytest.mark.parametrize("kwargs, match", [({"test_days": 0}, "test_days must be a positive"),
                                           ({"test_days": 1, "max_len": 1}, "max_len must be an integer >= 2"),
                                           ({"test_days": 1, "min_item_support": 0}, "min_item_support")])
def test_bad_parameters(kwargs, match):
    with pytest.raises(PreprocessError, match=match):
        preprocess_events(events_from(HAND), **kwargs)


# --------------------------------------------------------------------------- reference implementation


def reference(rows, test_days, fraction, max_len, min_support):
    """Steps 1-8 written the obvious way, with dicts and loops."""
    sessions = defaultdict(list)
    for order, (s, i, t) in enumerate(rows):
        sessions[s].append((t, order, i))
    seqs = {s: [(t, i) for t, _, i in sorted(v)] for s, v in sessions.items()}
    seqs = {s: v for s, v in seqs.items() if len(v) >= 2}
    counts = Counter(i for v in seqs.values() for _, i in v)
    seqs = {s: [e for e in v if counts[e[1]] >= min_support] for s, v in seqs.items()}
    seqs = {s: v for s, v in seqs.items() if len(v) >= 2}
    stime = {s: v[-1][0] for s, v in seqs.items()}
    threshold = max(stime.values()) - test_days * DAY
    train = sorted((s for s in seqs if stime[s] < threshold), key=lambda s: (stime[s], s))
    if fraction:
        train = train[len(train) - int(len(train) * fraction):]
    vocab = sorted({i for s in train for _, i in seqs[s]})
    test = [s for s in seqs if stime[s] >= threshold]
    test = {s: [i for _, i in seqs[s] if i in set(vocab)] for s in test}
    test = sorted((s for s in test if len(test[s]) >= 2), key=lambda s: (stime[s], s))
    new = {raw: k + 1 for k, raw in enumerate(vocab)}
    out_train = [[new[i] for _, i in seqs[s]][-max_len:] for s in train]
    test_items = {s: [i for _, i in seqs[s] if i in new] for s in test}
    out_test = [[new[i] for i in test_items[s]][-max_len:] for s in test]
    return vocab, out_train, out_test, [stime[s] for s in train], [stime[s] for s in test]


def sessions_of(split):
    return [split.items[a:b].tolist() for a, b in zip(split.offsets[:-1], split.offsets[1:])]


@pytest.mark.parametrize("seed", range(6))
def test_matches_reference_on_random_events(seed):
    rng = np.random.default_rng(seed)
    n = 400
    rows = list(zip(rng.integers(0, 150, n).tolist(),  # sessions interleaved in the file
                    (rng.zipf(1.6, n) % 25 * 3 + 1000).tolist(),  # skewed item ids
                    (rng.integers(0, 40, n) * DAY / 4 + rng.integers(0, 3, n)).tolist()))  # 10 days, many ties
    fraction = [None, 0.25][seed % 2]
    max_len, min_support, test_days = 4, 3, 1.5
    vocab, train, test, train_t, test_t = reference(rows, test_days, fraction, max_len, min_support)
    res = preprocess_events(events_from(rows), test_days=test_days, fraction=fraction, max_len=max_len,
                            min_item_support=min_support)
    assert res.item_ids.tolist() == vocab
    assert sessions_of(res.train) == train and sessions_of(res.test) == test
    assert res.train.times.tolist() == train_t and res.test.times.tolist() == test_t


def test_string_item_ids_are_sorted_for_the_vocabulary():
    rows = [(1, "b", 0), (1, "a", 1), (2, "c", 2 * DAY), (2, "a", 2 * DAY + 1), (2, "b", 2 * DAY + 2)]
    res = preprocess_events(events_from(rows), test_days=1, min_item_support=1)
    assert res.item_ids.tolist() == ["a", "b"]
    assert res.train.items.tolist() == [2, 1] and res.test.items.tolist() == [1, 2]


# --------------------------------------------------------------------------- files on disk


def write_tsv(path, rows):
    path.write_text("SessionId\tItemId\tTime\n" + "".join(f"{s}\t{i}\t{t}\n" for s, i, t in rows))
    return path


def test_preprocess_file_writes_the_loadable_layout(tmp_path):
    src = write_tsv(tmp_path / "events.tsv", HAND)
    out = preprocess_file("tsv", src, tmp_path / "out", test_days=1, valid_days=0, max_len=3, min_item_support=2, quiet=True)
    data = ProcessedDataset.load(out)
    assert tuple(data.stats) == STATS_KEYS
    assert data.stats["n_train_samples"] == 6 and data.n_items == 3
    assert np.asarray(data.train.items).dtype == np.int32 and data.train.offsets.dtype == np.int64
    assert (out / "item_ids.txt").read_text().split() == ["10", "20", "30"]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["dataset"] == "tsv" and meta["source"]["size"] == src.stat().st_size
    assert len(meta["source"]["sha256"]) == 64
    assert meta["params"] == {"test_days": 1.0, "fraction": None, "max_len": 3, "min_item_support": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.tsv", "out"]  # no temporary left over


def test_rewrite_replaces_a_processed_dir_but_refuses_other_dirs(tmp_path):
    src = write_tsv(tmp_path / "events.tsv", HAND)
    out = tmp_path / "out"
    preprocess_file("tsv", src, out, test_days=1, valid_days=0, min_item_support=2, quiet=True)
    (out / "stale.txt").write_text("x")
    preprocess_file("tsv", src, out, test_days=1, valid_days=0, min_item_support=2, max_len=3, quiet=True)
    assert not (out / "stale.txt").exists() and ProcessedDataset.load(out).stats["n_train_samples"] == 6
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.md").write_text("mine")
    with pytest.raises(FileExistsError, match="not a processed dataset"):
        preprocess_file("tsv", src, other, test_days=1, valid_days=0, min_item_support=2, quiet=True)
    assert (other / "keep.md").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.tsv", "notes", "out"]


def test_failed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    res = preprocess_events(events_from(HAND), test_days=1, min_item_support=2)
    calls = []

    def failing_save(path, arr):
        calls.append(path)
        if len(calls) == 3:
            raise OSError("disk full")
        np.lib.format.write_array(open(path, "wb"), np.asanyarray(arr))

    monkeypatch.setattr("srs_core.data.preprocess.np.save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        write_processed(res, tmp_path / "out", {})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "rows, kwargs, match",
    [
        ([(1, 1, 0), (1, 2, 1), (2, 3, 2)], {"test_days": 1}, "step 3"),  # every item seen < 5 times
        ([(s, i, 3600 * s) for s in range(5) for i in (1, 2)], {"test_days": 1, "min_item_support": 1},
         "step 4"),  # everything within the last day: no train session
        ([(s, i, 60 * s) for s in range(5) for i in (1, 2)] + [(9, 3, 5 * DAY), (9, 4, 5 * DAY)],
         {"test_days": 1, "min_item_support": 1}, "step 6"),  # test items unknown to train
    ],
)
def test_a_dataset_that_filtering_empties_is_an_error_and_writes_nothing(tmp_path, rows, kwargs, match):
    src = write_tsv(tmp_path / "events.tsv", rows)
    with pytest.raises(PreprocessError, match=match) as err:
        preprocess_file("tsv", src, tmp_path / "out", quiet=True, **kwargs)
    assert str(src) in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.tsv"]


def test_preprocess_file_checks_arguments_before_reading(tmp_path):
    src = write_tsv(tmp_path / "events.tsv", HAND)
    with pytest.raises(DataFormatError, match="unknown dataset"):
        preprocess_file("movielens", src, tmp_path / "out")
    with pytest.raises(PreprocessError, match="--test-days is required"):
        preprocess_file("tsv", src, tmp_path / "out")
    with pytest.raises(PreprocessError, match="use 1/4 or 1/64"):
        preprocess_file("yoochoose", tmp_path / "absent.dat", tmp_path / "out", fraction="1/16")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.tsv"]


# --------------------------------------------------------------------------- the real sample


def test_diginetica_sample_is_consistent(diginetica_sample, tmp_path):
    out = preprocess_file("diginetica", diginetica_sample, tmp_path / "digi", test_days=7, valid_days=0, quiet=True)  # the reference below has no validation split
    data = ProcessedDataset.load(out)
    stats = data.stats
    assert tuple(stats) == STATS_KEYS
    for split, prefix in ((data.train, "n_train"), (data.test, "n_test")):
        lengths = np.diff(split.offsets)
        assert stats[f"{prefix}_sessions"] == len(lengths)
        assert stats[f"{prefix}_samples"] == int((lengths - 1).sum()) == split.n_samples
        assert lengths.min() >= 2 and lengths.max() <= 25
    assert stats["avg_train_session_length"] == pytest.approx(np.diff(data.train.offsets).mean(), abs=0)
    # every test item is in the train vocabulary (and, in this sample, in the stored train sessions)
    train_items = set(np.asarray(data.train.items).tolist())
    test_items = set(np.asarray(data.test.items).tolist())
    assert test_items <= set(range(1, data.n_items + 1)) and test_items <= train_items
    assert train_items == set(range(1, data.n_items + 1))
    # the split: test sessions at or after T, train sessions before it, T = latest - 7 days
    threshold = data.meta["split_threshold"]
    assert threshold == max(data.test.times) - 7 * DAY
    assert min(data.test.times) >= threshold > max(data.train.times)
    # ...and the same result as the plain-Python reference on the same events
    events = read_diginetica(diginetica_sample, quiet=True)
    rows = list(zip(events["session"].tolist(), events["item"].tolist(), events["time"].tolist()))
    vocab, train, test, _, _ = reference(rows, 7, None, 25, 5)
    item_ids = [int(x) for x in (out / "item_ids.txt").read_text().split()]
    assert item_ids == vocab and sessions_of(data.train) == train and sessions_of(data.test) == test
