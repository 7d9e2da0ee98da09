"""The losses published since the dissertation (issue 18, first part): gBCE
(gSASRec, 2023) and exact cross-entropy in item chunks (Cut Your Losses,
2025), each against a hand computation or full cross-entropy."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from srs_core.losses import LOSSES, build_loss
from srs_core.optim import check_combination
from srs_core.training import TrainConfig, fit

from test_train import cfg, toy  # noqa: F401  (fixture)


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def table(rows) -> nn.Embedding:
    emb = nn.Embedding(len(rows), len(rows[0]))
    emb.weight.data = torch.tensor(rows, dtype=torch.float32)
    return emb


def test_gbce_by_hand():
    # 4 items, k = 2 negatives: alpha = 2 / 3; t = 0.5 gives beta = 1 - 0.5 (1 - 2/3) = 5/6
    emb = table([[0, 0], [0.5, 0], [0, 1], [-1, 0], [2, 2]])
    loss = build_loss("gbce", 4, negatives=2, gbce_t=0.5)
    assert loss.beta == pytest.approx(5 / 6)
    s = torch.tensor([[1.0, 0.0]])
    got = loss.compute(s, torch.tensor([1]), emb, torch.tensor([[2, 3]]), False)
    # scores: positive 0.5, negatives 0 and -1
    want = (5 / 6 * softplus(-0.5) + softplus(0.0) + softplus(-1.0)) / 3
    assert got.item() == pytest.approx(want, rel=1e-6)
    # an accidental hit (a negative equal to the target) leaves the sum and the count
    hit = loss.compute(s, torch.tensor([1]), emb, torch.tensor([[2, 1]]), False)
    assert hit.item() == pytest.approx((5 / 6 * softplus(-0.5) + softplus(0.0)) / 2, rel=1e-6)


def test_gbce_at_t_0_is_plain_bce_and_at_t_1_weights_the_positive_by_alpha():
    torch.manual_seed(0)
    emb = nn.Embedding(51, 8)
    s, targets, neg = torch.randn(6, 8), torch.randint(1, 51, (6,)), torch.randint(1, 51, (6, 5))
    neg = torch.where(neg == targets.unsqueeze(1), targets.unsqueeze(1) % 50 + 1, neg)  # no accidental hits
    bce = build_loss("gbce", 50, negatives=5, gbce_t=0.0)
    assert bce.beta == 1.0
    pos = (s * emb.weight[targets]).sum(-1)
    negs = torch.einsum("bd,bkd->bk", s, emb.weight[neg])
    logits = torch.cat([pos.unsqueeze(1), negs], 1)
    labels = torch.zeros_like(logits)
    labels[:, 0] = 1
    plain = F.binary_cross_entropy_with_logits(logits, labels)  # the mean over all 1 + k logits
    assert float(bce.compute(s, targets, emb, neg, False)) == pytest.approx(float(plain), rel=1e-5)
    assert build_loss("gbce", 50, negatives=5, gbce_t=1.0).beta == pytest.approx(5 / 49)
    with pytest.raises(ValueError, match="--gbce-t"):
        build_loss("gbce", 50, negatives=5, gbce_t=1.5)


@pytest.mark.parametrize("l2, scale, chunk", [(False, 1.0, 7), (True, 5.0, 64), (True, 1.0, 10_000)])
def test_cce_equals_ce_in_loss_and_every_gradient(l2, scale, chunk):
    torch.manual_seed(1)
    n, d = 301, 12
    a, b = nn.Embedding(n + 1, d), nn.Embedding(n + 1, d)
    b.load_state_dict(a.state_dict())
    s1 = torch.randn(9, d, requires_grad=True)
    s2 = s1.detach().clone().requires_grad_()
    targets = torch.randint(1, n + 1, (9,))
    ce, cce = build_loss("ce", score_scale=scale), build_loss("cce", score_scale=scale)
    cce.chunk = chunk  # chunks that do not divide the catalogue, and one wider than it
    l_ce, l_cce = ce.compute(s1, targets, a, None, l2), cce.compute(s2, targets, b, None, l2)
    l_ce.backward()
    l_cce.backward()
    assert float(l_cce) == pytest.approx(float(l_ce), abs=1e-5)
    assert torch.allclose(s2.grad, s1.grad, atol=1e-5)
    assert torch.allclose(b.weight.grad, a.weight.grad, atol=1e-5)


def test_which_optimizers_each_new_loss_takes():
    check_combination("gbce", "sparse_fast")
    check_combination("cce", "dense")
    with pytest.raises(ValueError, match="cce.*every item row"):
        check_combination("cce", "sparse_fast")
    assert {"gbce", "cce"} <= set(LOSSES)


def test_both_train_through_srs_train_and_old_run_keys_stay(toy, tmp_path):
    rec = fit(cfg(toy, epochs=1, loss="cce"), tmp_path / "cce", quiet=True)
    assert rec["status"] == "complete" and rec["environment"]["loss_kernel"] == "chunked-pytorch"
    ce = fit(cfg(toy, epochs=1, loss="ce"), tmp_path / "ce", quiet=True)
    assert rec["best"]["mrr_at_20"] == pytest.approx(ce["best"]["mrr_at_20"], abs=0.02)  # the same loss, rounded apart
    g = fit(cfg(toy, epochs=1, loss="gbce", optimizer="sparse_fast", l2=True, gbce_t=0.5), tmp_path / "g", quiet=True)
    assert g["status"] == "complete" and g["identity"]["gbce_t"] == 0.5
    assert "gbce_t" not in TrainConfig(data=str(toy), loss="ns").identity("x", "valid")  # old keys unchanged
