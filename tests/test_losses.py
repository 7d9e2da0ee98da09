"""Every loss against a hand computation in numpy (Eqs. 2.15-2.16, 4.1, 4.2, sampled softmax)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from srs_core.losses import LOSSES, NegativeSampler, build_loss

N, D = 9, 4


@pytest.fixture
def setup():
    rng = np.random.default_rng(0)
    session = rng.normal(size=(3, D))
    table = rng.normal(size=(N + 1, D))
    table[0] = 0.0
    targets = np.array([2, 5, 2])  # a duplicated target: in-batch accidental hits
    return session, table, targets


def torch_inputs(session, table, targets, sparse=False):
    emb = nn.Embedding(N + 1, D, padding_idx=0, sparse=sparse).double()
    with torch.no_grad():
        emb.weight.copy_(torch.from_numpy(table))
    return torch.from_numpy(session).requires_grad_(), torch.from_numpy(targets), emb


def unit(x):
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)  # as F.normalize


def log_sigmoid(x):
    return -np.log1p(np.exp(-x))


def prep(session, table, l2):
    return (unit(session), unit(table)) if l2 else (session, table)


@pytest.mark.parametrize("l2", [False, True])
def test_cross_entropy_by_hand(setup, l2):
    session, table, targets = setup
    s, e = prep(session, table, l2)
    scores = s @ e[1:].T  # items 1..N
    expected = np.mean([np.log(np.exp(row).sum()) - row[t - 1] for row, t in zip(scores, targets)])
    loss = build_loss("ce")(*torch_inputs(session, table, targets), l2)
    assert loss.item() == pytest.approx(expected, rel=1e-10)
    if l2:  # the score scale (an extension) multiplies the cosines, like an inverse temperature
        hot = build_loss("ce", score_scale=10.0)(*torch_inputs(session, table, targets), l2)
        expected_hot = np.mean([np.log(np.exp(r * 10).sum()) - r[t - 1] * 10 for r, t in zip(scores, targets)])
        assert hot.item() == pytest.approx(expected_hot, rel=1e-10)
    else:
        with pytest.raises(ValueError, match="only applies to L2"):
            build_loss("ce", score_scale=10.0)(*torch_inputs(session, table, targets), l2)


NEG = np.array([[1, 2, 7], [3, 5, 5], [8, 9, 4]])  # row 0 and row 1 hold accidental hits


@pytest.mark.parametrize("l2", [False, True])
def test_negative_sampling_by_hand(setup, l2):
    session, table, targets = setup
    s, e = prep(session, table, l2)
    per_row = []
    for b in range(3):
        pos = log_sigmoid(s[b] @ e[targets[b]])
        kept = [n for n in NEG[b] if n != targets[b]]  # a negative equal to the target is not one
        noise = np.mean([log_sigmoid(-(s[b] @ e[n])) for n in kept])
        per_row.append(-(pos + noise))
    loss = build_loss("ns", N, negatives=3).compute(*torch_inputs(session, table, targets), torch.from_numpy(NEG), l2)
    assert loss.item() == pytest.approx(np.mean(per_row), rel=1e-10)


@pytest.mark.parametrize("l2", [False, True])
def test_negative_sampling_shared_negatives_by_hand(setup, l2):
    session, table, targets = setup
    s, e = prep(session, table, l2)
    neg = np.array([4, 5, 6])
    per_row = [-(log_sigmoid(s[b] @ e[targets[b]])
                 + np.mean([log_sigmoid(-(s[b] @ e[n])) for n in neg if n != targets[b]])) for b in range(3)]
    loss = build_loss("ns", N, negatives=3).compute(*torch_inputs(session, table, targets), torch.from_numpy(neg), l2)
    assert loss.item() == pytest.approx(np.mean(per_row), rel=1e-10)


@pytest.mark.parametrize("l2", [False, True])
@pytest.mark.parametrize("margin", [0.5, 3.0])
def test_triplet_by_hand(setup, l2, margin):
    session, table, targets = setup
    s, e = prep(session, table, l2)
    per_row = []
    for b in range(3):
        d_pos = np.linalg.norm(s[b] - e[targets[b]])
        hinge = [max(0.0, margin + d_pos - np.linalg.norm(s[b] - e[n])) for n in NEG[b] if n != targets[b]]
        per_row.append(np.mean(hinge))
    loss = build_loss("triplet", N, negatives=3, margin=margin).compute(
        *torch_inputs(session, table, targets), torch.from_numpy(NEG), l2
    )
    assert loss.item() == pytest.approx(np.mean(per_row), rel=1e-10)
    if l2 and margin == 0.5:
        assert 0 < loss.item()  # the hinge is active somewhere: the test exercises it


@pytest.mark.parametrize("l2", [False, True])
@pytest.mark.parametrize("distribution", ["uniform", "popularity"])
def test_sampled_softmax_by_hand(setup, l2, distribution):
    session, table, targets = setup
    counts = np.array([0, 5, 1, 3, 0, 2, 8, 1, 1, 4])
    alpha = 0.75
    if distribution == "uniform":
        q = np.full(N + 1, 1.0 / N)
    else:
        w = counts.astype(float) ** alpha
        w[0] = 0
        q = w / w.sum()
    neg = np.array([5, 6, 1, 2])  # 5 and 2 are targets of some rows: accidental hits
    s, e = prep(session, table, l2)
    cand = np.concatenate([targets, neg])
    per_row = []
    for b in range(3):
        logits = np.array([s[b] @ e[c] - np.log(q[c]) for c in cand])
        for j, c in enumerate(cand):
            if c == targets[b] and j != b:
                logits[j] = -np.inf
        per_row.append(np.log(np.exp(logits).sum()) - logits[b])
    loss_fn = build_loss("sampled_softmax", N, negatives=4, sampling=distribution, alpha=alpha, counts=counts)
    loss = loss_fn.compute(*torch_inputs(session, table, targets), torch.from_numpy(neg), l2)
    assert loss.item() == pytest.approx(np.mean(per_row), rel=1e-7)  # log q is stored in float32
    # the masking matters here: without it the value would differ
    unmasked = [np.log(np.exp([s[b] @ e[c] - np.log(q[c]) for c in cand]).sum()) - (s[b] @ e[targets[b]] - np.log(q[targets[b]]))
                for b in range(3)]
    assert abs(np.mean(unmasked) - loss.item()) > 1e-3


def test_sampled_softmax_zero_count_target_stays_finite(setup):
    session, table, _ = setup
    counts = np.array([0, 5, 1, 3, 0, 2, 8, 1, 1, 4])
    targets = np.array([4, 1, 2])  # item 4 has count 0: never drawn, but a target
    loss_fn = build_loss("sampled_softmax", N, negatives=3, sampling="popularity", counts=counts)
    loss = loss_fn.compute(*torch_inputs(session, table, targets), torch.tensor([1, 6, 9]), True)
    assert math.isfinite(loss.item())


@pytest.mark.parametrize("name", ["ns", "triplet", "sampled_softmax"])
def test_sampled_losses_give_a_sparse_gradient_on_the_looked_up_rows(setup, name):
    session, table, targets = setup
    s, t, emb = torch_inputs(session, table, targets, sparse=True)
    gen = torch.Generator().manual_seed(1)
    loss_fn = build_loss(name, N, negatives=3)
    loss = loss_fn(s, t, emb, True, generator=gen)
    loss.backward()
    g = emb.weight.grad
    assert g.is_sparse
    gen = torch.Generator().manual_seed(1)
    looked_up = set(targets.tolist()) | set(loss_fn.sampler.sample(3, gen).flatten().tolist())
    assert set(g.coalesce().indices()[0].tolist()) == looked_up
    assert s.grad is not None and torch.isfinite(s.grad).all()


def test_losses_are_registered_and_bad_parameters_are_named():
    assert set(LOSSES) == {"ce", "cce", "ns", "gbce", "triplet", "sampled_softmax", "sce"}
    with pytest.raises(ValueError, match="unknown loss 'bpr'"):
        build_loss("bpr", N)
    with pytest.raises(ValueError, match="margin"):
        build_loss("triplet", N, margin=-1)
    with pytest.raises(ValueError, match="k must be at least 1"):
        build_loss("ns", N, negatives=0)
    with pytest.raises(ValueError, match="unknown negative distribution 'zipf'"):
        build_loss("ns", N, sampling="zipf")
    with pytest.raises(ValueError, match="needs counts"):
        build_loss("ns", N, sampling="popularity")
    with pytest.raises(ValueError, match="n_items \\+ 1"):
        build_loss("ns", N, sampling="popularity", counts=np.ones(N))
    with pytest.raises(ValueError, match="score_scale must be a positive"):
        build_loss("ns", N, score_scale=0.0)
    with pytest.raises(ValueError, match="shared_negatives applies to the ns and triplet"):
        build_loss("ce", shared_negatives=True)
    with pytest.raises(ValueError, match="mix must be in"):
        build_loss("ns", N, sampling="mixed", counts=np.ones(N + 1), mix=1.5)
    with pytest.raises(ValueError, match="needs n_items"):
        build_loss("ns")
    # n_items may come from counts, as the trainer passes them
    assert build_loss("ns", counts=np.ones(N + 1)).sampler.n_items == N


# -- the negative sampler ------------------------------------------------------


def test_popularity_sampler_follows_counts_to_the_alpha():
    counts = np.array([0, 1, 4, 9, 0, 16])  # item 4 never drawn, padding never drawn
    sampler = NegativeSampler(5, k=1000, distribution="popularity", alpha=0.5, counts=counts)
    ids = sampler.sample(200, torch.Generator().manual_seed(0))
    assert ids.shape == (200, 1000)
    freq = np.bincount(ids.flatten().numpy(), minlength=6) / ids.numel()
    expected = np.array([0, 1, 2, 3, 0, 4]) / 10  # sqrt(counts) / sum
    np.testing.assert_allclose(freq, expected, atol=0.005)
    assert freq[0] == 0 and freq[4] == 0
    np.testing.assert_allclose(sampler.log_q(torch.tensor([1, 2, 3, 5])).numpy(), np.log([0.1, 0.2, 0.3, 0.4]),
                               rtol=1e-6)
    assert sampler.log_q(torch.tensor([0, 4])).isinf().all()


def test_uniform_sampler_covers_1_to_n_and_never_0():
    sampler = NegativeSampler(7, k=50, shared=True)
    a = sampler.sample(128, torch.Generator().manual_seed(0))
    assert a.shape == (50,)
    many = torch.cat([sampler.sample(1) for _ in range(400)])
    freq = np.bincount(many.numpy(), minlength=8) / many.numel()
    assert freq[0] == 0
    np.testing.assert_allclose(freq[1:], 1 / 7, atol=0.02)
    assert sampler.log_q(torch.tensor([3])).item() == pytest.approx(-math.log(7))


def test_sampler_is_seeded_and_fresh_every_batch():
    sampler = NegativeSampler(10_000, k=20, distribution="popularity", counts=np.arange(10_001))
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    first = sampler.sample(4, g1)
    assert torch.equal(first, sampler.sample(4, g2))
    assert not torch.equal(first, sampler.sample(4, g1))  # a new batch, new negatives
    assert ((first >= 1) & (first <= 10_000)).all()
