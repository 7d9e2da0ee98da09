"""`srs import-split`: a published train/test split kept exactly, read without running pickled code."""
import json
import pickle
import subprocess
import sys

import numpy as np
import pytest

from conftest import SHARED_DATA
from srs_core.cli import main
from srs_core.data import ProcessedDataset
from srs_core.data.dataset import iter_batches
from srs_core.data.published import SplitImportError, import_split, sessions_from_pairs

DIGINETICA_SPLIT = SHARED_DATA / "diginetica-srgnn"


def write_split(folder, train, test, *, train_name="all_train_seq.txt", protocol=3):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / train_name).write_bytes(pickle.dumps(train, protocol=protocol))
    (folder / "test.txt").write_bytes(pickle.dumps(test, protocol=protocol))
    return folder


def rows_of(*sessions):
    """The published rows of whole sessions: seq[:-1] -> seq[-1], seq[:-2] -> seq[-2], ..."""
    prefixes, labels = [], []
    for seq in sessions:
        for i in range(1, len(seq)):
            prefixes.append(list(seq[:-i]))
            labels.append(seq[-i])
    return prefixes, labels


TRAIN = [[1, 2], [3, 4, 5], [2, 3], [5, 1, 2, 9], [4, 4]]  # item 6..8 unused: a gap in the catalogue


def samples(split):
    """Every sample of a split as (prefix, target), in sample order."""
    out = []
    for b in iter_batches(split, 1000):
        for items, n, t in zip(b.items.tolist(), b.lengths.tolist(), b.targets.tolist()):
            out.append((tuple(items[:n]), t))
    return out


def test_whole_sessions_and_a_lone_row_keep_the_published_rows_exactly(tmp_path):
    prefixes, labels = rows_of([1, 2, 3, 5], [4, 5])
    prefixes.append([2, 9, 4])  # a row that continues no session: one sample, not three
    labels.append(1)
    p2, l2 = rows_of([5, 2, 1])
    src = write_split(tmp_path / "src", TRAIN, (prefixes + p2, labels + l2))
    ds = ProcessedDataset.load(import_split(src, tmp_path / "out", valid_fraction=0))
    assert ds.n_items == 9 and ds.stats["n_train_samples"] == sum(len(s) - 1 for s in TRAIN)
    assert ds.stats["n_test_samples"] == len(labels) + len(l2) == ds.test.n_samples
    assert ds.test.n_sessions == 4 and ds.test.first.tolist() == [1, 1, 3, 1]
    want = [(tuple(p), t) for p, t in zip(prefixes + p2, labels + l2)]
    assert sorted(samples(ds.test)) == sorted(want)
    assert sorted(samples(ds.train)) == sorted((tuple(s[:p]), s[p]) for s in TRAIN for p in range(1, len(s)))
    assert (tmp_path / "out" / "item_ids.txt").read_text().split() == [str(i) for i in range(1, 10)]
    assert not (tmp_path / "out" / "train_first.npy").exists()  # every training prefix is a sample


def test_train_txt_pairs_rebuild_the_same_dataset_as_the_sessions(tmp_path):
    test = rows_of([1, 2, 3], [3, 4])
    a = ProcessedDataset.load(import_split(write_split(tmp_path / "a", TRAIN, test), tmp_path / "da", valid_fraction=0))
    b_src = write_split(tmp_path / "b", rows_of(*TRAIN), test, train_name="train.txt")
    b = ProcessedDataset.load(import_split(b_src, tmp_path / "db", valid_fraction=0))
    assert a.content_sha256 == b.content_sha256


def test_valid_fraction_cuts_the_last_sessions_and_drops_items_unseen_before(tmp_path):
    train = [[1, 2], [2, 3], [3, 1], [1, 3], [2, 1], [1, 2, 3], [4, 1], [7, 8], [2, 3, 5, 1]]
    src = write_split(tmp_path / "src", train, rows_of([1, 2]))
    ds = ProcessedDataset.load(import_split(src, tmp_path / "out", valid_fraction=0.34))  # int(9 * 0.34) = 3
    assert ds.train.n_sessions == 6
    # [4, 1] keeps only 1 -> dropped; [7, 8] has no item seen before -> dropped; [2, 3, 5, 1] loses 5
    assert ds.valid.items.tolist() == [2, 3, 1] and ds.valid.offsets.tolist() == [0, 3]
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["params"] == {"valid_fraction": 0.34} and meta["trace"]["valid_events_removed"] == 4
    assert set(meta["source"]) == {"all_train_seq.txt", "test.txt"} and "--valid-fraction 0.34" in meta["command"]


class Boom:
    """Unpickling this writes a file: what a malicious pickle would do."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_pickle_that_would_run_code_is_refused_without_running_it(tmp_path, capsys):
    marker = tmp_path / "pwned"
    src = write_split(tmp_path / "src", [[1, 2], Boom(marker)], rows_of([1, 2]))
    assert main(["import-split", "--input", str(src), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "all_train_seq.txt: refused" in err and "io.open" in err
    assert not marker.exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("case, train, test, expected", [
    ("a dict", {"a": [1, 2]}, rows_of([1, 2]), "holds a dict where a list of training session"),
    ("strings", [["1", "2"]], rows_of([1, 2]), "training session 0 is not a list of integer item ids"),
    ("id zero", [[0, 2]], rows_of([1, 2]), "holds the item id 0"),
    ("short session", [[1]], rows_of([1, 2]), "has 1 items, fewer than 2"),
    ("lengths differ", [[1, 2]], ([[1], [2]], [2]), "2 prefixes but 1 labels"),
    ("not a pair", [[1, 2]], [[1], [2], [3]], "where a pair (prefixes, labels) belongs"),
    ("float labels", [[1, 2]], ([[1]], [2.0]), "labels are not a list of integer item ids"),
])
def test_malformed_files_get_one_line_naming_the_file(tmp_path, capsys, case, train, test, expected):
    src = write_split(tmp_path / "src", train, test)
    assert main(["import-split", "--input", str(src), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err and str(src) in err, (case, err)
    assert not (tmp_path / "out").exists()


def test_truncated_and_missing_files(tmp_path, capsys):
    src = write_split(tmp_path / "src", TRAIN, rows_of([1, 2, 3]))
    data = (src / "test.txt").read_bytes()
    (src / "test.txt").write_bytes(data[: len(data) // 2])
    assert main(["import-split", "--input", str(src), "--output", str(tmp_path / "out")]) == 2
    assert "test.txt: not a readable pickle, truncated or damaged" in capsys.readouterr().err
    (src / "test.txt").unlink()
    assert main(["import-split", "--input", str(src), "--output", str(tmp_path / "out")]) == 2
    assert "test.txt: missing" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    with pytest.raises(SplitImportError, match="--valid-fraction must be in"):
        import_split(src, tmp_path / "out", valid_fraction=1.5)


def test_rows_are_merged_only_when_they_continue_one_session():
    prefixes = [np.array(p) for p in ([1, 2, 3], [1, 2], [1], [1, 2], [5])]
    sessions, first = sessions_from_pairs(prefixes, np.array([4, 3, 2, 9, 7]))
    assert [s.tolist() for s in sessions] == [[1, 2, 3, 4], [1, 2, 9], [5, 7]]
    assert first.tolist() == [1, 2, 1]


def test_damaged_first_array_is_refused(tmp_path):
    prefixes, labels = rows_of([1, 2, 3])
    src = write_split(tmp_path / "src", TRAIN, (prefixes + [[2, 9, 4]], labels + [1]))
    out = import_split(src, tmp_path / "out", valid_fraction=0)
    np.save(out / "test_first.npy", np.array([1, 9], dtype=np.int32))
    with pytest.raises(ValueError, match="test_first.npy"):
        ProcessedDataset.load(out)


@pytest.mark.skipif(not DIGINETICA_SPLIT.is_dir(), reason=f"{DIGINETICA_SPLIT} is absent")
def test_the_standard_diginetica_split_keeps_its_published_counts(tmp_path):
    out = tmp_path / "digi"
    run = subprocess.run([sys.executable, "-m", "srs_core.cli", "import-split", "--input", str(DIGINETICA_SPLIT),
                          "--output", str(out), "--valid-fraction", "0", "--quiet"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    ds = ProcessedDataset.load(out)
    assert (ds.n_items, ds.stats["n_train_sessions"], ds.stats["n_train_samples"]) == (43_097, 186_670, 719_470)
    assert (ds.stats["n_test_sessions"], ds.stats["n_test_samples"]) == (15_963, 60_858)
    assert ds.test.first is None  # every published test row continues its session
    meta = json.loads((out / "meta.json").read_text())
    assert meta["source"]["test.txt"]["sha256"] == "b2b81f9cb22feb2174feeb3e678b9de5e41ff1653bf23cdaf9046e5404f002ff"
    assert meta["source"]["all_train_seq.txt"]["sha256"] == \
        "55694865221c682aaa9df6cd5a4ddccff5de902334df5605c5767ee464e11365"
    valid = ProcessedDataset.load(import_split(DIGINETICA_SPLIT, tmp_path / "v", valid_fraction=0.1))
    assert valid.train.n_sessions == 186_670 - 18_667 and valid.stats["n_test_samples"] == 60_858
    assert valid.train.n_samples + valid.valid.n_samples <= 719_470
