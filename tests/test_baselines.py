"""Popularity and transition baselines: hand-computed ranks, the dense tie rule, learnability."""
from pathlib import Path

import numpy as np
import pytest
import torch

from srs_core.baselines import (
    BASELINES,
    TransitionCounts,
    evaluate_baseline,
    popularity_ranks,
    popularity_scores,
    sample_pairs,
    transition_ranks,
    transition_scores,
)
from srs_core.data.dataset import ProcessedDataset, Split
from srs_core.metrics import ranks_from_scores


def split_of(sessions):
    items = np.concatenate([np.asarray(s, dtype=np.int32) for s in sessions])
    offsets = np.r_[0, np.cumsum([len(s) for s in sessions])].astype(np.int64)
    return Split(items=items, offsets=offsets, times=np.zeros(len(sessions)))


def hand_dataset():
    # N = 5. Train popularity: 1:4, 2:3, 3:2, 4:2, 5:0.
    # Transitions: 1->2 x2, 1->3, 2->3, 2->4, 4->1.
    train = split_of([[1, 2, 3], [1, 2], [1, 3], [2, 4], [4, 1]])
    # test samples (last -> target): 1->3, 3->5, 5->4 and 2->3
    test = split_of([[1, 3, 5, 4], [2, 3]])
    return ProcessedDataset(Path("."), 5, train, test, {}, {})


def test_hand_computed_ranks():
    data = hand_dataset()
    model = TransitionCounts.from_split(data.train, data.n_items)
    assert model.popularity.tolist() == [0, 4, 3, 2, 2, 0]
    assert model.count(np.array([1, 1, 4, 3]), np.array([2, 3, 1, 1])).tolist() == [2, 1, 1, 0]
    last, targets = sample_pairs(data.test)
    assert last.tolist() == [1, 3, 5, 2] and targets.tolist() == [3, 5, 4, 3]
    # popularity: 3 and 4 tie at 2 with each other (ties count against the target), 5 is last
    assert popularity_ranks(model.popularity, targets).tolist() == [4, 5, 4, 4]
    # transition: 1->3 is behind 1->2; 3 and 5 have no row (popularity decides);
    # after 2, items 3 and 4 tie on count and on popularity -> rank 2
    assert transition_ranks(model, last, targets).tolist() == [2, 5, 4, 2]


def test_hand_computed_metrics():
    data = hand_dataset()
    pop = evaluate_baseline("popularity", data, k=20)
    assert pop == pytest.approx({"p_at_20": 1.0, "mrr_at_20": (1 / 4 + 1 / 5 + 1 / 4 + 1 / 4) / 4})
    trans = evaluate_baseline("transition", data, k=3, batch_size=3)
    assert trans == pytest.approx({"p_at_3": 0.5, "mrr_at_3": (1 / 2 + 1 / 2) / 4})


def test_popularity_scores_pad_with_minus_infinity():
    scores = popularity_scores(hand_dataset())
    assert scores.tolist() == [-np.inf, 4, 3, 2, 2, 0]


def test_sparse_ranks_equal_the_metrics_tie_rule_on_dense_scores(tiny_dataset):
    data = ProcessedDataset.load(tiny_dataset)
    model = TransitionCounts.from_split(data.train, data.n_items)
    last, targets = sample_pairs(data.test)
    last, targets = last[:1500], targets[:1500]
    dense = ranks_from_scores(transition_scores(model, last), torch.from_numpy(targets))
    assert (dense > 0).all()
    np.testing.assert_array_equal(transition_ranks(model, last, targets), dense.numpy())
    # tiny expansion chunks give the same ranks
    np.testing.assert_array_equal(transition_ranks(model, last, targets, max_entries=7), dense.numpy())
    pop = torch.from_numpy(popularity_scores(data)).expand(len(targets), -1)
    np.testing.assert_array_equal(popularity_ranks(model.popularity, targets),
                                  ranks_from_scores(pop, torch.from_numpy(targets)).numpy())
    # the synthetic data has many tied scores, so the tie rule is really exercised
    assert len(np.unique(model.popularity)) < data.n_items / 5


def test_transition_beats_popularity_twice_on_synthetic_data(tiny_dataset):
    pop = evaluate_baseline("popularity", tiny_dataset)
    trans = evaluate_baseline("transition", tiny_dataset)
    assert trans["p_at_20"] >= 2 * pop["p_at_20"]
    assert trans["mrr_at_20"] >= 2 * pop["mrr_at_20"]


def test_unknown_baseline():
    assert BASELINES == ("popularity", "transition", "sr", "ar", "sknn", "vsknn")
    with pytest.raises(ValueError, match="unknown baseline 'knn'"):
        evaluate_baseline("knn", hand_dataset())
