"""A processed dataset checks itself when it loads: each kind of
damage gets one line naming the file, the fault and the command that
re-creates the dataset, and the book pipeline rebuilds a damaged dataset
instead of training on it."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from srs_core.cli import main as cli_main
from srs_core.data.dataset import ProcessedDataset
from srs_core.data.integrity import DatasetError
from srs_core.data.synthetic import synthesize


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    return synthesize("diginetica", 0.002, 0, tmp_path_factory.mktemp("ds") / "d", quiet=True)


@pytest.fixture
def data(clean, tmp_path):
    out = tmp_path / "d"
    shutil.copytree(clean, out)
    return out


def _resave(path, name, arr):
    np.save(path / name, arr)


def _offsets_past_end(d):
    off = np.load(d / "train_offsets.npy")
    off[-1] += 5
    _resave(d, "train_offsets.npy", off)


def _item_outside(d):
    items = np.load(d / "train_items.npy")
    items[3] = json.loads((d / "stats.json").read_text())["n_items"] + 1
    _resave(d, "train_items.npy", items)


def _truncate(d):
    raw = (d / "test_items.npy").read_bytes()
    (d / "test_items.npy").write_bytes(raw[:90])


def _wrong_dtype(d):
    _resave(d, "train_items.npy", np.load(d / "train_items.npy").astype(np.int64))


def _decreasing(d):
    off = np.load(d / "test_offsets.npy")
    off[2], off[3] = off[3], off[2]
    _resave(d, "test_offsets.npy", off)


def _times_short(d):
    _resave(d, "train_times.npy", np.load(d / "train_times.npy")[:-1])


def _stats_disagree(d):
    stats = json.loads((d / "stats.json").read_text())
    stats["n_test_samples"] += 1
    (d / "stats.json").write_text(json.dumps(stats))


def _bad_json(d):
    (d / "meta.json").write_text("{not json")


def _edited_times(d):  # a valid array whose bytes no longer match the hash
    t = np.load(d / "train_times.npy")
    t[0] -= 1.0
    _resave(d, "train_times.npy", t)


def _no_hash(d):
    meta = json.loads((d / "meta.json").read_text())
    del meta["content_sha256"]
    (d / "meta.json").write_text(json.dumps(meta))


def _missing(d):
    (d / "valid_offsets.npy").unlink()


DAMAGE = {
    "offsets past the end": (_offsets_past_end, "train_offsets.npy", "ends at"),
    "item outside the catalogue": (_item_outside, "train_items.npy", "outside the catalogue"),
    "truncated array": (_truncate, "test_items.npy", "truncated"),
    "wrong dtype": (_wrong_dtype, "train_items.npy", "int32"),
    "decreasing offsets": (_decreasing, "test_offsets.npy", "decreases"),
    "times of another length": (_times_short, "train_times.npy", "sessions"),
    "stats disagree": (_stats_disagree, "stats.json", "n_test_samples"),
    "unparsable meta": (_bad_json, "meta.json", "JSON"),
    "edited after preprocessing": (_edited_times, "meta.json", "content_sha256 does not match"),
    "no content hash": (_no_hash, "meta.json", "no content_sha256"),
    "missing array": (_missing, "valid_offsets.npy", "missing"),
}


def test_a_clean_dataset_loads_and_records_how_to_remake_it(clean):
    ds = ProcessedDataset.load(clean)
    assert len(ds.content_sha256) == 64
    assert ds.meta["command"].startswith("srs synth --preset diginetica --scale 0.002 --seed 0")


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_damage_gets_one_line_naming_file_fault_and_fix(data, case, tmp_path, capsys):
    damage, file, fault = DAMAGE[case]
    damage(data)
    with pytest.raises(DatasetError) as err:
        ProcessedDataset.load(data)
    msg = str(err.value)
    assert "\n" not in msg and str(data / file) in msg and fault in msg, msg
    if case != "unparsable meta":  # with meta.json unreadable, the hint is generic
        assert f"srs synth --preset diginetica --scale 0.002 --seed 0 --valid-days 7 --output {data}" in msg, msg
    rc = cli_main(["train", "--data", str(data), "--model", "stamp", "--epochs", "1", "--dim", "8",
                   "--output", str(tmp_path / "run"), "--quiet"])
    printed = capsys.readouterr().err
    assert rc == 2 and printed.startswith("srs train: error: ") and "Traceback" not in printed
    assert not (tmp_path / "run" / "result.json").exists()


def test_the_recorded_command_remakes_the_same_bytes(data, tmp_path):
    cmd = ProcessedDataset.load(data).meta["command"].split()
    assert cmd[:2] == ["srs", "synth"]
    assert cli_main(cmd[1:] + ["--output", str(tmp_path / "again"), "--quiet"]) == 0
    assert ProcessedDataset.load(tmp_path / "again").content_sha256 == ProcessedDataset.load(data).content_sha256


def test_the_pipeline_rebuilds_a_damaged_dataset(tmp_path, capsys):
    from srs_core.experiments import dataset_dir, prepare_dataset

    ds = prepare_dataset(tmp_path, "diginetica", scale=0.002)
    _edited_times(ds.path)
    again = prepare_dataset(tmp_path, "diginetica", scale=0.002)
    assert again.content_sha256 == ds.content_sha256
    assert "rebuilding" in capsys.readouterr().out
    assert dataset_dir(tmp_path, "diginetica") == again.path
