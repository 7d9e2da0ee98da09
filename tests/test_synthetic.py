"""The synthetic generator: Table 3 targets after preprocessing, determinism, raw formats."""
import filecmp

import numpy as np
import pytest

from srs_core.data import ProcessedDataset
from srs_core.data.preprocess import preprocess_events, preprocess_file
from srs_core.data.readers import EVENT_COLUMNS, READERS
from srs_core.data.synthetic import PRESETS, aim, generate_events, synthesize, write_raw

DAY = 86_400.0

TABLE3 = {  # dissertation Table 3: items, train sessions, augmented train samples, average length
    "yoochoose-1/64": (17_511, 117_178, 370_130, 5.07),
    "yoochoose-1/4": (33_280, 1_925_647, 5_922_115, 4.70),
    "diginetica": (104_419, 186_670, 819_081, 4.66),
    "meli2020": (1_279_791, 247_834, 4_675_443, 21.74),
}


def test_presets_carry_table3():
    assert set(PRESETS) == set(TABLE3)
    for name, (items, sessions, samples, length) in TABLE3.items():
        p = PRESETS[name]
        assert (p.n_items, p.n_train_sessions, p.n_train_samples, p.avg_length) == (items, sessions, samples, length)
        # the calibrated presets test on more days than Table 3's protocol (Diginetica-like 21, three times
        # the real split's 7; Yoochoose-like 3, not 1), for steadier comparisons, and validate on 7 and 1;
        # the train split keeps Table 3's size
        yoochoose = name.startswith("yoochoose")
        assert p.test_days == {"diginetica": 21}.get(name, 3 if yoochoose else 7)
        assert p.valid_days == (7 if name == "diginetica" else 1 if yoochoose else None)


def test_aim_splits_table3_inconsistency_evenly():
    a = aim("yoochoose-1/64")
    # 370,130 / 117,178 + 1 = 4.16 != 5.07: the three columns share one relative error, about 7.7%
    assert a["relative_error"] == pytest.approx(0.0765, abs=5e-4)
    assert a["n_train_sessions"] == pytest.approx(117_178 * (1 - a["relative_error"]))
    assert a["avg_train_session_length"] == pytest.approx(5.07 * (1 - a["relative_error"]))
    assert a["n_train_samples"] == pytest.approx(370_130 * (1 + a["relative_error"]))
    d = aim("diginetica")  # here Table 3's length is too short: sessions and length go up, samples down
    assert d["n_train_sessions"] > 186_670 and d["n_train_samples"] < 819_081
    assert d["n_train_samples"] == pytest.approx(d["n_train_sessions"] * (d["avg_train_session_length"] - 1))


@pytest.mark.parametrize("name, scale", [("yoochoose-1/64", 0.05), ("yoochoose-1/4", 0.02),
                                         ("diginetica", 0.05), ("meli2020", 0.02)])
def test_preset_meets_table3_within_10_percent_after_preprocessing(name, scale):
    p = PRESETS[name]
    stats = preprocess_events(generate_events(p, scale, seed=0), test_days=p.test_days).stats
    items, sessions, samples, length = TABLE3[name]
    assert stats["n_items"] == pytest.approx(items * scale, rel=0.10)
    assert stats["n_train_sessions"] == pytest.approx(sessions * scale, rel=0.10)
    assert stats["n_train_samples"] == pytest.approx(samples * scale, rel=0.10)
    assert stats["avg_train_session_length"] == pytest.approx(length, rel=0.10)
    assert stats["n_test_sessions"] > 0.02 * stats["n_train_sessions"]


def test_events_look_like_a_click_log():
    events = generate_events("diginetica", 0.01, seed=1)
    assert list(events.columns) == list(EVENT_COLUMNS)
    session, time = events["session"].to_numpy(), events["time"].to_numpy()
    assert (np.diff(session) >= 0).all()  # grouped by session, ids 1..S
    assert session[0] == 1 and len(np.unique(session)) == session[-1]
    same = np.diff(session) == 0
    assert (np.diff(time)[same] > 0).all()  # clicks of a session move forward in time
    starts = time[np.r_[True, ~same]]
    assert (np.diff(starts) >= 0).all()  # session ids follow start time
    assert (time.max() - time.min()) / DAY > 95  # the preset spans 104 days
    np.testing.assert_array_equal(np.round(time * 1000) / 1000, time)  # millisecond resolution
    # Zipf-like popularity: the top 1% of items get several times their uniform share of clicks
    counts = np.sort(np.bincount(events["item"].to_numpy() - 1))[::-1]
    assert counts[: len(counts) // 100].sum() / counts.sum() > 0.05



def _returns_to_an_earlier_click(events) -> float:
    """Share of clicks (third and later of a session) that repeat an earlier click other than the last."""
    session, item = events["session"].to_numpy(), events["item"].to_numpy()
    hits = total = 0
    for s in np.split(item, np.flatnonzero(np.diff(session)) + 1):
        for t in range(2, len(s)):
            total += 1
            hits += s[t] != s[t - 1] and s[t] in s[: t - 1]
    return hits / total


def test_revisits_return_to_earlier_clicks_of_the_session():
    import dataclasses

    p = PRESETS["diginetica"]
    assert p.p_revisit > 0
    with_revisits = _returns_to_an_earlier_click(generate_events(p, 0.005, seed=0))
    without = _returns_to_an_earlier_click(generate_events(dataclasses.replace(p, p_revisit=0.0), 0.005, seed=0))
    # a revisit draw takes an earlier click other than the last, so the share grows by about p_revisit
    assert with_revisits - without > 0.6 * p.p_revisit, (with_revisits, without)

def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    a = synthesize("diginetica", 0.01, 7, tmp_path / "a", quiet=True)
    b = synthesize("diginetica", 0.01, 7, tmp_path / "b", quiet=True)
    c = synthesize("diginetica", 0.01, 8, tmp_path / "c", quiet=True)
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    assert "train_items.npy" in names and "meta.json" in names
    match, mismatch, errors = filecmp.cmpfiles(a, b, names, shallow=False)
    assert mismatch == [] and errors == []
    assert (a / "train_items.npy").read_bytes() != (c / "train_items.npy").read_bytes()
    meta = ProcessedDataset.load(a).meta
    assert meta["source"]["preset"] == "diginetica" and meta["source"]["seed"] == 7
    assert meta["source"]["scale"] == 0.01


@pytest.mark.parametrize("fmt", ["tsv", "yoochoose", "diginetica"])
def test_write_raw_round_trips_through_the_reader(tmp_path, fmt):
    events = generate_events("yoochoose-1/64", 0.01, seed=2)
    path = write_raw(events, tmp_path / f"raw.{fmt}", fmt=fmt)
    back = READERS[fmt](path, quiet=True)
    for col in EVENT_COLUMNS:
        np.testing.assert_array_equal(back[col].to_numpy(), events[col].to_numpy(), err_msg=col)


def test_reader_path_and_direct_path_give_the_same_dataset(tmp_path):
    p = PRESETS["yoochoose-1/64"]
    events = generate_events(p, 0.01, seed=4)
    direct = synthesize(p, 0.01, 4, tmp_path / "direct", quiet=True)
    raw = write_raw(events, tmp_path / "clicks.dat", fmt="yoochoose")
    # the preset tests on 3 days and validates on 1 (the reader's defaults: 1 and 1)
    via_file = preprocess_file("yoochoose", raw, tmp_path / "file", test_days=p.test_days, valid_days=p.valid_days,
                               quiet=True)
    for name in ("train_items.npy", "train_offsets.npy", "test_items.npy", "train_times.npy", "stats.json"):
        assert (direct / name).read_bytes() == (via_file / name).read_bytes(), name


def test_bad_preset_and_scale():
    with pytest.raises(ValueError, match="unknown synthetic preset 'movielens'"):
        generate_events("movielens", 0.1, 0)
    with pytest.raises(ValueError, match="scale must be a positive number"):
        generate_events("diginetica", 0, 0)


@pytest.mark.parametrize("zipf", [0.7, 1.0, 1.2])
def test_popularity_is_a_distribution_at_any_exponent(zipf):
    """The bins' mass comes from the density's antiderivative, a power below and above
    exponent 1 and a logarithm at 1 (where the power form divides by zero)."""
    from dataclasses import replace
    from srs_core.data.synthetic import _Catalog

    cat = _Catalog(np.random.default_rng(0), 500, replace(PRESETS["diginetica"], zipf=zipf))
    assert np.isfinite(cat.weight).all() and (cat.weight > 0).all()
    assert cat.weight.sum() == pytest.approx(1.0)
    ranked = np.sort(cat.weight)[::-1]
    assert ranked[0] > 10 * ranked[-1]  # a head and a tail


@pytest.mark.parametrize("seed", [0, 1])
def test_the_diginetica_like_preset_orders_the_rules_as_the_real_split(tmp_path, seed):
    """On the real Diginetica split our baselines come in the order popularity <
    transition < SR < AR < V-SKNN on MRR@20 (0.002, 0.129, 0.141, 0.144, 0.183);
    the calibrated preset keeps that order on a small catalogue (about 1,000 items)."""
    from srs_core.baselines import evaluate_baseline

    data = synthesize(PRESETS["diginetica"], 0.01, seed, tmp_path / "d", quiet=True)
    mrr = [evaluate_baseline(b, ProcessedDataset.load(data))["mrr_at_20"]
           for b in ("popularity", "transition", "sr", "ar", "vsknn")]
    assert mrr == sorted(mrr) and len(set(mrr)) == 5, mrr
    assert mrr[0] < 0.5 * mrr[1] and mrr[3] < 0.9 * mrr[4], mrr  # popularity far behind; V-SKNN clearly first


@pytest.mark.parametrize("name", ["yoochoose-1/64", "yoochoose-1/4"])
def test_the_yoochoose_like_presets_order_the_baselines_as_the_real_sample(tmp_path, name):
    """On the yoochoose-100k sample popularity reaches 0.035 of V-SKNN's MRR@20, the rules
    (transition, SR, AR) 0.82-0.85 and SKNN 0.89: V-SKNN leads. The calibrated presets, at the
    default profile's scales (a few hundred items), keep popularity far behind, and V-SKNN first on
    the 1/64 preset; on the denser 1/4 preset (178 train clicks per item, the sample 13) the rules
    see every transition often and reach V-SKNN's level. With the plain first-order generator
    V-SKNN came last on both, below popularity."""
    from srs_core.baselines import evaluate_baseline
    from srs_core.publish.book import load_profile

    data = synthesize(PRESETS[name], load_profile("default")["scale"][name], 0, tmp_path / "d", quiet=True)
    mrr = {b: evaluate_baseline(b, ProcessedDataset.load(data))["mrr_at_20"]
           for b in ("popularity", "transition", "sr", "ar", "sknn", "vsknn")}
    rules = [mrr[b] for b in ("transition", "sr", "ar", "sknn")]
    assert mrr["popularity"] < 0.5 * min(rules), mrr
    assert max(rules) < (1.0 if name == "yoochoose-1/64" else 1.05) * mrr["vsknn"], mrr


def test_the_diginetica_like_preset_orders_the_networks_as_the_real_split(tmp_path):
    """On the real split (ratios to V-SKNN's MRR@20) the rules reach at most 0.76, STAMP with
    cross-entropy 0.84 and with the recommended loss 0.96, and SKNN 0.95, below V-SKNN. The preset
    at the default profile's scale (about 3,300 items), trained as that profile trains it, keeps
    the rules below STAMP, cross-entropy below the recommended loss and SKNN below V-SKNN, and
    comes within 0.1 of each ratio (there SKNN passes STAMP with the recommended loss, which the
    data chapter's table shows; SR-GNN, slower to train, is left to that table too)."""
    from srs_core.baselines import evaluate_baseline
    from srs_core.publish.book import load_profile
    from srs_core.training import TrainConfig
    from srs_core.training.loop import fit

    profile = load_profile("default")
    data = synthesize(PRESETS["diginetica"], profile["scale"]["diginetica"], 0, tmp_path / "d", quiet=True)
    mrr = {b: evaluate_baseline(b, ProcessedDataset.load(data))["mrr_at_20"] for b in ("popularity", "ar", "sknn", "vsknn")}
    losses = {"ce": dict(loss="ce", optimizer="dense", l2=False),
              "recommended": {**profile["recommended"]}}
    for model, loss in (("stamp", "ce"), ("stamp", "recommended")):
        cfg = TrainConfig(data=str(data), model=model, epochs=profile["epochs"], batch_size=profile["batch_size"],
                          dim=profile["dim"], lr=profile["synthetic_lr"], seed=0, **losses[loss])
        mrr[f"{model} {loss}"] = fit(cfg, tmp_path / f"{model}-{loss}", quiet=True)["best"]["mrr_at_20"]
    ratio = {k: round(v / mrr["vsknn"], 3) for k, v in mrr.items()}
    assert ratio["popularity"] < 0.5 * ratio["ar"], ratio
    assert ratio["ar"] < ratio["stamp ce"] < ratio["stamp recommended"], ratio
    assert ratio["sknn"] < 1, ratio  # the session's recent clicks count for more than its older ones
    real = {"ar": 0.76, "stamp ce": 0.84, "stamp recommended": 0.96, "sknn": 0.95}
    assert all(abs(ratio[k] - v) < 0.1 for k, v in real.items()), ratio
