"""Every stored run keeps its key: configuration hashes, recomputed, equal the ones written before.

Two fixtures in ``tests/data`` were written by an earlier version of the code:

* ``run_keys.json``: the configuration, identity and hash of stored
  ``result.json`` files (the neural runs of the ``ci`` and ``default`` books);
* ``profile_keys.json``: the hash of every configuration the profiles' grids
  make (built here as the notebooks build them), for a fixed dataset
  fingerprint, with the epoch chosen on validation and on test.

A change that moves where a field's default or its identity rule lives must
leave every hash byte for byte as it was. ``SRS_WRITE_KEYS=1`` rewrites
``profile_keys.json`` (only for a deliberate change of the identity).
"""
import dataclasses
import json
import os
from pathlib import Path

import pytest

from srs_core.diagnosis import DISSERTATION, diagnosis_grid, dissertation_setting, extension_setting
from srs_core.publish.book import PROFILES, load_profile
from srs_core.results import config_hash
from srs_core.training import TrainConfig

DATA = Path(__file__).resolve().parent / "data"
FINGERPRINT = "0123456789abcdef"


def _base(p: dict, models: list, seeds: list, **fields) -> list[TrainConfig]:
    common = dict(batch_size=p.get("batch_size", 128), dim=p.get("dim", 100), lr=p.get("lr", 0.001))
    return [TrainConfig(data="d", model=m, seed=s, **{**common, **fields}) for m in models for s in seeds]


def profile_configs(name: str) -> list[TrainConfig]:
    """The configurations the notebooks build from profile ``name`` (synthetic and real epochs)."""
    p = load_profile(name)
    seeds, out = p.get("seeds", [0]), []
    synthetic = {"lr": p.get("synthetic_lr", p.get("lr", 0.001))}
    for epochs in {p.get("epochs", 2): synthetic, p.get("real_epochs", 1): {"patience": p.get("patience", 0)}}.items():
        ep, extra = epochs
        base = _base(p, p["models"], seeds, **{"epochs": ep, **extra})
        out += [dataclasses.replace(c, loss="ce", optimizer="dense", l2=l2) for c in base for l2 in (False, True)]
        exp2 = [c for c in base if c.model in ("stamp", "srgnn")]
        optimizer = p.get("optimizer", "sparse")
        out += dissertation_setting(exp2, ["ns", "triplet", "sampled_softmax"], optimizer)
        out += extension_setting(exp2, p.get("extensions", []), optimizer)
        diag = [c for c in base if c.model in p.get("diag_models", [])]
        out += diagnosis_grid(diag, ["ns", "triplet", "sampled_softmax"], optimizer=optimizer, k_large=p["k_large"],
                              extensions=p.get("extensions"), one_factor=p.get("one_factor"),
                              one_factor_models=p.get("one_factor_models"))
        beyond = [c for c in base if c.model in p.get("beyond_models", [])]
        out += extension_setting(beyond, p.get("recent", []), optimizer)
        out += extension_setting([c for c in beyond if c.model in p.get("recent_grid_models", [])],
                                 p.get("recent_grid", []), optimizer)
    if "table1_models" in p:  # the standard Diginetica split (models-table1, 08-real-diginetica)
        split = dict(batching=p["batching"], patience=p["split_patience"])
        out += _base(p, p["table1_models"], p["table1_seeds"], epochs=p["split_epochs"], **split, **p["recommended"])
        ce = _base(p, p["ce_models"], p["ce_seeds"], epochs=p["ce_epochs"], **split, loss="ce", optimizer="dense")
        out += ce + [dataclasses.replace(c, l2=True) for c in ce if c.model in p["exp_models"]]
        for loss in p["exp2_losses"]:
            out += _base(p, p["exp_models"], p["table1_seeds"], epochs=p["split_epochs"], **split, loss=loss,
                         optimizer=p.get("optimizer", "sparse"), **DISSERTATION)
    return list(dict.fromkeys(out))


def _keys(configs: list[TrainConfig]) -> dict[str, str]:
    keys = {}
    for c in configs:
        fields = {k: v for k, v in dataclasses.asdict(c).items() if k not in TrainConfig.RUNTIME_FIELDS}
        for on in ("valid", "test"):
            keys[config_hash({"fields": fields, "selected_on": on})] = config_hash(c.identity(FINGERPRINT, on))
    return keys


def test_stored_runs_keep_their_keys():
    records = json.loads((DATA / "run_keys.json").read_text())
    assert len(records) >= 70
    for r in records:
        cfg = TrainConfig(data="d", **r["config"])
        identity = cfg.identity(r["identity"]["dataset"], r["selected_on"])
        assert identity == r["identity"] and config_hash(identity) == r["config_hash"], r["config_hash"]


def test_every_profile_configuration_keeps_its_key():
    keys = {}
    for name in PROFILES:
        keys.update(_keys(profile_configs(name)))
    path = DATA / "profile_keys.json"
    if os.environ.get("SRS_WRITE_KEYS") == "1":
        path.write_text(json.dumps(keys, indent=0, sort_keys=True) + "\n")
    stored = json.loads(path.read_text())
    assert len(keys) >= 300
    missing = sorted(set(stored) - set(keys))
    assert not missing, f"{len(missing)} configurations the profiles made are no longer made (or their fields moved)"
    changed = [k for k in keys if k in stored and keys[k] != stored[k]]
    assert not changed, f"{len(changed)} configurations changed key, e.g. {changed[:2]}"


@pytest.mark.parametrize("name", PROFILES)
def test_each_profile_makes_configurations(name):
    assert len(profile_configs(name)) > 10
