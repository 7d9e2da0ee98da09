"""The tie rule and the metrics, on hand-built score matrices."""
import pytest
import torch

from srs_core.metrics import RankAccumulator, count_at_least, metrics_from_ranks, ranks_from_scores


def test_ranks_count_ties_against_the_model():
    scores = torch.tensor([[0.9, 0.5, 0.5, 0.1],
                           [0.2, 0.2, 0.2, 0.2]])
    targets = torch.tensor([1, 3])  # column indices
    # row 0: items scoring >= 0.5 are columns 0, 1, 2 -> rank 3
    # row 1: all four tie -> rank 4 (last), not 1
    assert ranks_from_scores(scores, targets).tolist() == [3, 4]


def test_constant_scorer_gets_zero_and_perfect_scorer_gets_one():
    n, b = 50, 7
    targets = torch.arange(b)
    constant = torch.zeros(b, n)
    assert metrics_from_ranks(ranks_from_scores(constant, targets)) == {"p_at_20": 0.0, "mrr_at_20": 0.0}
    perfect = torch.zeros(b, n)
    perfect[torch.arange(b), targets] = 1.0
    assert metrics_from_ranks(ranks_from_scores(perfect, targets)) == {"p_at_20": 1.0, "mrr_at_20": 1.0}


def test_mrr_and_p_at_20_by_hand():
    ranks = torch.tensor([1, 2, 4, 20, 21, 100])
    m = metrics_from_ranks(ranks, k=20)
    assert m["p_at_20"] == pytest.approx(4 / 6)
    assert m["mrr_at_20"] == pytest.approx((1 + 1 / 2 + 1 / 4 + 1 / 20) / 6)


def test_chunked_counting_matches_the_full_matrix():
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 5, (16, 37), generator=g).float()  # many ties
    targets = torch.randint(0, 37, (16,), generator=g)
    full = ranks_from_scores(scores, targets)
    t = scores.gather(1, targets.view(-1, 1)).squeeze(1)
    above = torch.zeros(16, dtype=torch.long)
    for lo in range(0, 37, 10):
        hi = min(lo + 10, 37)
        inside = (targets >= lo) & (targets < hi)
        cols = torch.where(inside, targets - lo, torch.full_like(targets, -1))
        above += count_at_least(scores[:, lo:hi], t, cols)
    assert torch.equal(above + 1, full)


def test_the_target_column_is_excluded_whatever_its_chunk_score():
    # the target's score comes from another kernel and may differ from its own
    # column in the chunk by rounding: that column must never count either way
    chunk = torch.tensor([[1.0, 3.0, 0.5], [1.0, 3.0, 0.5], [2.0, 2.0, 2.0]])
    target_scores = torch.tensor([1.0 + 1e-6, 1.0 - 1e-6, 2.0])  # just above / just below column 0
    cols = torch.tensor([0, 0, -1])  # the third row's target lies in another chunk
    assert count_at_least(chunk, target_scores, cols).tolist() == [1, 1, 3]


def test_empty_evaluation_is_an_error():
    with pytest.raises(ValueError, match="empty"):
        RankAccumulator().result()
