"""Session baselines (sknn, vsknn, sr, ar): hand-computed scores, a loop-based session-rec
reference, exact sparse ranks, no peeking at the test split, determinism, real data."""
from collections import Counter, defaultdict
from math import log, sqrt
from pathlib import Path

import numpy as np
import pytest

from srs_core.baselines import (
    BASELINES,
    VSKNN,
    AssociationRules,
    SequentialRules,
    SessionKNN,
    SparseScores,
    baseline_ranks,
    evaluate_baseline,
    make_baseline,
    prefixes_of,
    sparse_ranks,
)
from srs_core.data.dataset import ProcessedDataset, Split

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "yoochoose-100k-dev" / "yoochoose-clicks.dat"


def split_of(sessions, times=None):
    items = np.concatenate([np.asarray(s, dtype=np.int32) for s in sessions])
    offsets = np.r_[0, np.cumsum([len(s) for s in sessions])].astype(np.int64)
    times = np.arange(len(sessions), dtype=np.float64) if times is None else np.asarray(times, np.float64)
    return Split(items=items, offsets=offsets, times=times)


# five train sessions, oldest first; item popularity 1:2, 2:3, 3:3, 4:3, 5:2
TOY = [[1, 2, 3], [2, 3, 4], [1, 3], [4, 5, 4], [2, 5]]


def toy_scores(model, prefixes_list, n_items=5):
    model.fit(split_of(TOY), n_items)
    test = split_of([p + [1] for p in prefixes_list])  # a dummy target after each prefix
    sess = np.arange(len(prefixes_list))
    prefixes, _ = prefixes_of(test, sess, np.array([len(p) for p in prefixes_list]))
    return model.score(prefixes).dense(len(prefixes_list), n_items)[:, 1:]


def test_sknn_hand_computed():
    c = 1 / sqrt(6)  # cosine of {1,2} with a 3-item session sharing one item
    # candidates of [1, 2]: s0 (2 shared), s1, s2, s4; cosines 2c, c, 1/2, 1/2
    assert toy_scores(SessionKNN(), [[1, 2]])[0] == pytest.approx([2 * c + .5, 3 * c + .5, 3 * c + .5, c, .5])
    # k = 2: s0, then s2 and s4 tie at 1/2 and the more recent s4 wins
    assert toy_scores(SessionKNN(k=2), [[1, 2]])[0] == pytest.approx([2 * c, 2 * c + .5, 2 * c, 0, .5])
    # sample_size = 2: only the two most recent candidates, s4 and s2
    assert toy_scores(SessionKNN(sample_size=2), [[1, 2]])[0] == pytest.approx([.5, .5, .5, 0, .5])


def test_vsknn_hand_computed():
    # prefix [1, 2]: weights 1/2 and 1; similarity = shared weight / 2 distinct items:
    # s0 .75, s1 .5, s2 .25 (its latest shared item is one step back: x 1/2), s4 .5
    assert toy_scores(VSKNN(idf_weighting=0), [[1, 2]])[0] == pytest.approx([.875, 1.75, 1.375, .5, .5])
    idf = [log(5 / 2), log(5 / 3), log(5 / 3), log(5 / 3), log(5 / 2)]
    got = toy_scores(VSKNN(idf_weighting=2), [[1, 2]])[0]
    assert got == pytest.approx([s * (1 + 2 * w) for s, w in zip([.875, 1.75, 1.375, .5, .5], idf)])
    # a repeated item keeps the weight of its last occurrence: [2, 1, 2] weighs 1 -> 2/3, 2 -> 1
    # s0: (2/3 + 1) / 2, s1: 1/2, s2: (2/3) / 2 at step 2, s4: 1/2
    s0, s1, s2, s4 = 5 / 6, 1 / 2, 1 / 6, 1 / 2
    expect = [s0 + s2, s0 + s1 + s4, s0 + s1 + s2, s1, s4]
    assert toy_scores(VSKNN(idf_weighting=0), [[2, 1, 2]])[0] == pytest.approx(expect)


def test_sequential_rules_hand_computed():
    # after 2: 2->3 (gap 1) twice, 2->4 (gap 2, weight 1/2), 2->5 once; after 4: 4->5, 4->4 at gap 2
    assert toy_scores(SequentialRules(), [[1, 2], [4]]).tolist() == [[0, 0, 2, .5, 1], [0, 0, 0, .5, 1]]
    assert toy_scores(SequentialRules(steps=1), [[2]])[0].tolist() == [0, 0, 2, 0, 1]
    assert toy_scores(SequentialRules(weighting="linear"), [[2]])[0] == pytest.approx([0, 0, 1.8, .8, .9])
    assert toy_scores(SequentialRules(pruning=2), [[2]])[0].tolist() == [0, 0, 2, 0, 1]


def test_association_rules_hand_computed():
    # row 2: 1 (s0), 3 (s0, s1), 4 (s1), 5 (s4); row 4: 2, 3 (s1), 5 twice and 4 with itself (s3)
    assert toy_scores(AssociationRules(), [[2], [4]]).tolist() == [[1, 0, 2, 1, 1], [0, 1, 1, 2, 2]]
    # pruning 3 keeps 5, 4 and, of the tied 2 and 3, the rule seen first (4 -> 2, before 4 -> 3 in s1)
    assert toy_scores(AssociationRules(pruning=3), [[4]])[0].tolist() == [0, 1, 0, 2, 2]


def test_ranks_with_and_without_popularity_ties():
    train = split_of(TOY)
    test = split_of([[2, 4], [2, 1], [2, 2]])
    data = ProcessedDataset(Path("."), 5, train, test, {}, {})
    # SR after 2 scores 3: 2, 5: 1, 4: .5; unscored 1 (pop 2) and 2 (pop 3) come after, by popularity
    sr = SequentialRules().fit(train, 5)
    assert baseline_ranks(sr, test, 5).tolist() == [3, 5, 4]
    sr_tied = SequentialRules(popularity_ties=False).fit(train, 5)
    assert baseline_ranks(sr_tied, test, 5).tolist() == [3, 5, 5]
    assert evaluate_baseline("sr", data, k=4) == pytest.approx({"p_at_4": 2 / 3, "mrr_at_4": (1 / 3 + 1 / 4) / 3})


# -- a loop-based reference that follows session-rec's code ------------------
class Reference:
    def __init__(self, train: Split):
        self.sessions = [list(map(int, train.items[a:b])) for a, b in zip(train.offsets[:-1], train.offsets[1:])]
        self.sets = [set(s) for s in self.sessions]
        self.time = {s: (float(train.times[s]), s) for s in range(len(self.sessions))}
        self.by_item = defaultdict(set)
        for s, items in enumerate(self.sets):
            for i in items:
                self.by_item[i].add(s)
        counts = Counter(i for s in self.sessions for i in s)
        self.idf = {i: log(len(self.sessions) / c) for i, c in counts.items()}

    def candidates(self, cur, sample_size):
        rel = set().union(*(self.by_item.get(i, set()) for i in cur))
        if sample_size and len(rel) > sample_size:
            rel = sorted(rel, key=self.time.get, reverse=True)[:sample_size]
        return rel

    def top(self, sims, k):
        return sorted(((s, v) for s, v in sims if v > 0), key=lambda x: (x[1], self.time[x[0]]), reverse=True)[:k]

    def sknn(self, cur, k, sample_size):
        cs = set(cur)
        sims = [(s, len(cs & self.sets[s]) / sqrt(len(cs) * len(self.sets[s]))) for s in self.candidates(cur, sample_size)]
        scores = defaultdict(float)
        for s, v in self.top(sims, k):
            for i in self.sets[s]:
                scores[i] += v
        return scores

    def vsknn(self, cur, k, sample_size, idf_weighting):
        pos = {i: n / len(cur) for n, i in enumerate(cur, 1)}  # "div"
        # summed in item order, as the vectorised code sums: a set's own order can change the last bit of
        # two equal similarities and so which of them the top k keeps (sessions with revisits tie often)
        sims = [(s, sum(pos[i] for i in sorted(set(cur) & self.sets[s])) / len(pos))
                for s in self.candidates(cur, sample_size)]
        scores = defaultdict(float)
        for s, v in self.top(sims, k):
            step = next(n for n, i in enumerate(reversed(cur), 1) if i in self.sets[s])
            for i in self.sets[s]:
                scores[i] += v * (1 + idf_weighting * self.idf[i] if idf_weighting else 1) / step
        return scores

    def rules(self, steps, pruning, both_ways):
        rules = defaultdict(dict)
        for sess in self.sessions:
            for j, item in enumerate(sess):
                gaps = range(1, j + 1) if both_ways else range(1, min(steps, j) + 1)
                for g in gaps if not both_ways else reversed(gaps):  # AR walks last_items from the oldest
                    prev = sess[j - g]
                    w = 1.0 if both_ways else 1.0 / g
                    rules[prev][item] = rules[prev].get(item, 0) + w
                    if both_ways:
                        rules[item][prev] = rules[item].get(prev, 0) + w
        for a in rules:
            rules[a] = dict(Counter(rules[a]).most_common(pruning))
        return rules


@pytest.mark.parametrize("name, params", [
    ("sknn", {}), ("sknn", {"k": 7, "sample_size": 25}),
    ("vsknn", {}), ("vsknn", {"k": 5, "sample_size": 30, "idf_weighting": 0}),
    ("sr", {}), ("sr", {"steps": 2, "pruning": 3}),
    ("ar", {}), ("ar", {"pruning": 2}),
])
def test_vectorised_scores_equal_the_loop_reference(tiny_dataset, name, params):
    data = ProcessedDataset.load(tiny_dataset)
    ref = Reference(data.train)
    model = make_baseline(name, **params).fit(data.train, data.n_items)
    sess, pos = data.test.sample_index()
    pick = np.random.default_rng(0).choice(len(sess), 150, replace=False)
    prefixes, _ = prefixes_of(data.test, sess[pick], pos[pick])
    got = model.score(prefixes).dense(len(pick), data.n_items)
    if name in ("sr", "ar"):
        table = ref.rules(params.get("steps", 10), params.get("pruning", 20), both_ways=name == "ar")
    for row, (s, p) in enumerate(zip(sess[pick], pos[pick])):
        cur = list(map(int, data.test.items[data.test.offsets[s]:data.test.offsets[s] + p]))
        if name == "sknn":
            want = ref.sknn(cur, params.get("k", 100), params.get("sample_size", 500))
        elif name == "vsknn":
            want = ref.vsknn(cur, params.get("k", 100), params.get("sample_size", 1000), params.get("idf_weighting", 5))
        else:
            want = table.get(cur[-1], {})
        dense = np.zeros(data.n_items + 1)
        dense[list(want)] = list(want.values())
        np.testing.assert_allclose(got[row, 1:], dense[1:], rtol=1e-12, atol=1e-12)
    assert (got[:, 1:] > 0).sum(1).mean() > 1.5  # the rows really hold scores


def test_sparse_ranks_equal_dense_ranks_with_the_tie_rule():
    rng = np.random.default_rng(1)
    n_rows, n_items = 40, 30
    dense = rng.integers(0, 3, size=(n_rows, n_items + 1)).astype(float) * rng.integers(0, 2, size=(n_rows, n_items + 1))
    dense[:, 0] = 0
    pop = np.r_[0, rng.integers(0, 4, n_items)]
    rows, items = np.nonzero(dense[:, 1:])
    scores = SparseScores(rows, items + 1, dense[rows, items + 1])
    targets = rng.integers(1, n_items + 1, n_rows)
    s_t = dense[np.arange(n_rows), targets][:, None]
    body = dense[:, 1:]
    tied = (body >= s_t).sum(1)
    lexi = ((body > s_t) | ((body == s_t) & (pop[1:] >= pop[targets][:, None]))).sum(1)
    np.testing.assert_array_equal(sparse_ranks(scores, targets, n_items), tied)
    np.testing.assert_array_equal(sparse_ranks(scores, targets, n_items, pop), lexi)
    # a constant scorer (no entries, no popularity order) ranks every target last
    empty = SparseScores(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    assert (sparse_ranks(empty, targets, n_items) == n_items).all()


def test_a_constant_scorer_gets_zero():
    # every item occurs exactly twice in train: popularity scores all items alike
    train = split_of([[i, i % 40 + 1] for i in range(1, 41)])
    test = split_of([[1, 2, 3], [5, 6]])
    data = ProcessedDataset(Path("."), 40, train, test, {}, {})
    assert evaluate_baseline("popularity", data) == {"p_at_20": 0.0, "mrr_at_20": 0.0}
    # knn and rules that know nothing about the test items, without the popularity order
    cold = ProcessedDataset(Path("."), 50, split_of([[41, 42], [43, 44]]), test, {}, {})
    for name in ("sknn", "vsknn", "sr", "ar"):
        assert evaluate_baseline(name, cold, params={"popularity_ties": False}) == {"p_at_20": 0.0, "mrr_at_20": 0.0}


def test_no_baseline_reads_the_test_split_while_fitting(tiny_dataset):
    data = ProcessedDataset.load(tiny_dataset)
    test = data.test
    # poison: many test sessions where item `a` is always followed by item `b`, a pair never seen in train
    pop = np.bincount(np.asarray(data.train.items), minlength=data.n_items + 1)
    a, b = int(np.argmax(pop)), int(np.flatnonzero(pop[1:] == pop[1:].min())[0] + 1)
    poison = np.r_[np.tile([a, b], 10), a]  # 20 samples: targets b, a, b, ...
    n_poison = 300
    items = np.concatenate([np.asarray(test.items), np.tile(poison, n_poison)]).astype(np.int32)
    offsets = np.r_[test.offsets, test.offsets[-1] + len(poison) * np.arange(1, n_poison + 1)]
    poisoned = Split(items, offsets, np.r_[test.times, np.full(n_poison, test.times[-1])])
    n_clean = test.n_samples
    for name in BASELINES:
        clean = make_baseline(name).fit(data.train, data.n_items)
        ranks = baseline_ranks(clean, test, data.n_items)
        dirty = make_baseline(name).fit(data.train, data.n_items)
        ranks_p = baseline_ranks(dirty, poisoned, data.n_items)
        np.testing.assert_array_equal(ranks_p[:n_clean], ranks, err_msg=name)
        # the poisoned pairs would rank first had they been learnt; they are not
        after_a = ranks_p[n_clean:][0::2]  # samples whose target is b, right after a
        assert np.median(after_a) > 20, name


def test_deterministic_and_independent_of_the_chunk_size(tiny_dataset):
    data = ProcessedDataset.load(tiny_dataset)
    for name in ("sknn", "vsknn", "sr", "ar"):
        first = baseline_ranks(make_baseline(name).fit(data.train, data.n_items), data.test, data.n_items)
        again = baseline_ranks(make_baseline(name).fit(data.train, data.n_items), data.test, data.n_items, batch_size=97)
        np.testing.assert_array_equal(first, again, err_msg=name)


def test_session_baselines_beat_transition_on_synthetic_data(tiny_dataset):
    trans = evaluate_baseline("transition", tiny_dataset)
    for name in ("sknn", "vsknn"):
        assert evaluate_baseline(name, tiny_dataset)["p_at_20"] > trans["p_at_20"], name


def test_bad_parameters_are_named():
    with pytest.raises(ValueError, match="has no parameter neighbours"):
        make_baseline("sknn", neighbours=5)
    data = ProcessedDataset(Path("."), 5, split_of(TOY), split_of([[1, 2]]), {}, {})
    with pytest.raises(ValueError, match="unknown SR weighting 'cubic'"):
        evaluate_baseline("sr", data, params={"weighting": "cubic"})
    with pytest.raises(ValueError, match="unknown V-SKNN weighting 'linear'"):
        evaluate_baseline("vsknn", data, params={"weighting": "linear"})


@pytest.mark.skipif(not SHARED.is_file(), reason=f"{SHARED} is absent")
def test_yoochoose_100k_dev_sample(tmp_path):
    """Regression values on the real dev sample (deterministic), beside session-rec's published
    yoochoose-100k lists (V-SKNN .610/.334, AR .592/.316, SR .561/.328; a different split)."""
    from srs_core.data.preprocess import preprocess_file

    out = preprocess_file("yoochoose", SHARED, tmp_path / "yc", test_days=1, valid_days=0, quiet=True)  # the dissertation split: 6 days train
    got = {name: evaluate_baseline(name, out) for name in BASELINES}
    pinned = {"popularity": (0.0913, 0.0164), "transition": (0.5328, 0.3171), "sr": (0.5739, 0.3224),
              "ar": (0.5866, 0.3086), "sknn": (0.6297, 0.3232), "vsknn": (0.6539, 0.3636)}
    for name, (p, mrr) in pinned.items():
        assert got[name]["p_at_20"] == pytest.approx(p, abs=6e-5), name
        assert got[name]["mrr_at_20"] == pytest.approx(mrr, abs=6e-5), name


def test_cli_baseline_with_parameters(tiny_dataset, capsys):
    import json

    from srs_core.cli import main

    assert main(["baseline", "--data", str(tiny_dataset), "--name", "vsknn", "--param", "k=5",
                 "--param", "idf_weighting=0", "--param", "popularity_ties=false", "--quiet"]) == 0
    got = json.loads(capsys.readouterr().out)
    want = evaluate_baseline("vsknn", tiny_dataset, params={"k": 5, "idf_weighting": 0.0, "popularity_ties": False})
    assert got == pytest.approx(want)
    assert got != pytest.approx(evaluate_baseline("vsknn", tiny_dataset))
    assert main(["baseline", "--data", str(tiny_dataset), "--name", "sr", "--param", "k=5"]) == 2
    assert "expected NAME=VALUE with NAME one of steps, weighting, pruning" in capsys.readouterr().err


def test_tuning_chooses_on_validation_and_ranks_the_test_split_once(tiny_dataset):
    from srs_core.baselines import VALID_GRIDS, grid_points, tune_baseline

    data = ProcessedDataset.load(tiny_dataset)
    assert data.valid is not None
    tuned = tune_baseline("sr", data)
    assert tuned["selected_on"] == "valid" and len(tuned["grid"]) == len(VALID_GRIDS["sr"]["steps"])
    best = max(tuned["grid"], key=lambda g: g["valid_mrr_at_20"])
    assert tuned["params"]["steps"] == best["params"]["steps"]
    assert tuned["valid"]["mrr_at_20"] == best["valid_mrr_at_20"]
    assert tuned["test"] == pytest.approx(evaluate_baseline("sr", data, params={"steps": best["params"]["steps"]}))
    assert tuned["valid"] == pytest.approx(evaluate_baseline("sr", data, params={"steps": best["params"]["steps"]},
                                                             split="valid"))
    assert len(tuned["ranks"]) == data.test.n_samples
    assert len(grid_points("vsknn")) == 12 and grid_points("popularity") == [{}]
    with pytest.raises(ValueError, match="no parameter"):
        grid_points("sr", {"k": [1]})
