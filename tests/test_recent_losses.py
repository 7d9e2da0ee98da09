"""The losses published since the dissertation: gBCE
(gSASRec, 2023), exact cross-entropy in item chunks (Cut Your Losses,
2025), scalable cross-entropy (SCE, 2024) and sampled softmax's per-source
logQ corrections (mixed negative sampling, 2020; corrected logQ, 2025),
each against a hand computation or full cross-entropy."""
from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import numpy as np

from srs_core.cli import main as cli_main
from srs_core.losses import LOSSES, build_loss
from srs_core.optim import check_combination
from srs_core.results import config_hash
from srs_core.training import TrainConfig, fit
from srs_core.training.distributed import Dist, shard_loss, shard_rows
from srs_core.training.graph import GraphedTrainStep, graph_support, use_graph
from srs_core.training.step import TrainStep

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


def test_gbce_offset_by_hand_and_a_flat_model_starts_at_its_optimum():
    # the example above with the offset c = log(beta / k) = log(5/12) on every logit
    emb = table([[0, 0], [0.5, 0], [0, 1], [-1, 0], [2, 2]])
    loss = build_loss("gbce", 4, negatives=2, gbce_t=0.5, gbce_offset=True)
    c = math.log(5 / 6 / 2)
    assert loss.offset == pytest.approx(c)
    s = torch.tensor([[1.0, 0.0]])
    got = loss.compute(s, torch.tensor([1]), emb, torch.tensor([[2, 3]]), False)
    want = (5 / 6 * softplus(-(0.5 + c)) + softplus(0.0 + c) + softplus(-1.0 + c)) / 3
    assert got.item() == pytest.approx(want, rel=1e-6)
    # a model that scores every item alike is best at raw score 0 with the offset: the gradient vanishes there
    flat = table([[0, 0]] * 5)
    z = torch.zeros(1, 2, requires_grad=True)
    big = build_loss("gbce", 1000, negatives=256, gbce_t=0.75, gbce_offset=True)
    flat_loss = big.compute(z, torch.tensor([1]), flat, torch.tensor([[2, 3] * 128]), False)
    x = torch.tensor(0.0, requires_grad=True)
    per = (big.beta * torch.nn.functional.softplus(-(x + big.offset)) + 256 * torch.nn.functional.softplus(x + big.offset)) / 257
    (g,) = torch.autograd.grad(per, x)
    assert abs(g.item()) < 1e-3 * big.beta and flat_loss.item() == pytest.approx(per.item(), rel=1e-6)
    with pytest.raises(ValueError, match="--gbce-offset"):
        TrainConfig(data="d", loss="ns", gbce_offset=True)


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


def twins(n: int, d: int, batch: int, device: str = "cpu"):
    """Two equal item tables and two equal leaf session batches, one for each
    of two losses whose values and gradients are compared."""
    a, b = nn.Embedding(n + 1, d).to(device), nn.Embedding(n + 1, d).to(device)
    b.load_state_dict(a.state_dict())
    s1 = torch.randn(batch, d, device=device, requires_grad=True)
    return a, b, s1, s1.detach().clone().requires_grad_()


@pytest.mark.parametrize("l2, scale, chunk", [(False, 1.0, 7), (True, 5.0, 64), (True, 1.0, 10_000)])
def test_cce_equals_ce_in_loss_and_every_gradient(l2, scale, chunk):
    torch.manual_seed(1)
    n, d = 301, 12
    a, b, s1, s2 = twins(n, d, 9)
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
    check_combination("gbce", "sparse_fast", dense_gradient=LOSSES["gbce"].dense_gradient)
    check_combination("cce", "dense", dense_gradient=LOSSES["cce"].dense_gradient)
    for opt in ("dense", "sparse", "sparse_fast"):
        check_combination("sce", opt, dense_gradient=LOSSES["sce"].dense_gradient)  # its gradient reaches the targets and the selected rows only
    with pytest.raises(ValueError, match="cce.*every item row"):
        check_combination("cce", "sparse_fast", dense_gradient=LOSSES["cce"].dense_gradient)
    assert {"gbce", "cce", "sce"} <= set(LOSSES)


def test_both_train_through_srs_train_and_old_run_keys_stay(toy, tmp_path):
    rec = fit(cfg(toy, epochs=1, loss="cce"), tmp_path / "cce", quiet=True)
    assert rec["status"] == "complete" and rec["environment"]["loss_kernel"] == "chunked-pytorch"
    ce = fit(cfg(toy, epochs=1, loss="ce"), tmp_path / "ce", quiet=True)
    assert rec["best"]["mrr_at_20"] == pytest.approx(ce["best"]["mrr_at_20"], abs=0.02)  # the same loss, rounded apart
    g = fit(cfg(toy, epochs=1, loss="gbce", optimizer="sparse_fast", l2=True, gbce_t=0.5), tmp_path / "g", quiet=True)
    assert g["status"] == "complete" and g["identity"]["gbce_t"] == 0.5
    assert "gbce_t" not in TrainConfig(data=str(toy), loss="ns").identity("x", "valid")  # old keys unchanged
    o = fit(cfg(toy, epochs=1, loss="gbce", optimizer="sparse_fast", gbce_offset=True), tmp_path / "o", quiet=True)
    assert o["status"] == "complete" and o["identity"]["gbce_offset"] is True
    assert "gbce_offset" not in g["identity"]  # records without the offset keep their keys


def test_cce_cut_kernel_is_refused_clearly_where_it_cannot_run_and_is_never_graphed(toy, tmp_path):
    if not torch.cuda.is_available():  # device auto resolves to the CPU: refused before anything is written
        with pytest.raises(ValueError, match="CUDA only"):
            fit(cfg(toy, epochs=1, loss="cce", cce_kernel="cut", device="auto"), tmp_path / "cut", quiet=True)
        assert not (tmp_path / "cut").exists()
    with pytest.raises(ValueError, match="--cce-kernel cut chooses how cce runs"):
        TrainConfig(data="d", loss="ns", cce_kernel="cut")
    with pytest.raises(ValueError, match="CUDA only.*--cce-kernel chunked"):
        TrainConfig(data="d", loss="cce", cce_kernel="cut", device="cpu")
    with pytest.raises(ValueError, match="CUDA only"):
        build_loss("cce", cce_kernel="cut", device="cpu")
    with pytest.raises(ValueError, match="--cce-kernel"):
        build_loss("ns", 10, cce_kernel="cut")
    with pytest.raises(ValueError, match="unknown cce kernel"):
        build_loss("cce", cce_kernel="triton")
    with pytest.raises(ValueError, match="nonzero"):  # --graph on is refused before any GPU is touched
        TrainConfig(data="d", loss="cce", cce_kernel="cut", device="cuda", graph="on")
    assert graph_support(TrainConfig(data="d", loss="cce")) is None
    assert graph_support(TrainConfig(data="d", loss="cce", cce_kernel="cut")) is not None
    assert not use_graph(TrainConfig(data="d", model="stamp", loss="cce", cce_kernel="cut"), torch.device("cuda"))
    assert use_graph(TrainConfig(data="d", model="stamp", loss="cce"), torch.device("cuda"))
    assert "cce_kernel" not in TrainConfig(data="d", loss="cce").identity("abcd")  # old cce keys stay
    cut = TrainConfig(data="d", loss="cce", cce_kernel="cut").identity("abcd")
    assert cut["cce_kernel"] == "cut"  # bf16 arithmetic: another result, another key
    from srs_core.bench import cost_key
    from srs_core.diagnosis import variant

    assert variant({"loss": "cce", "l2": False, "cce_kernel": "cut"}) == "cce, no L2, cut kernel"
    assert cost_key("cce", "dense", {"cce_kernel": "cut"}) != cost_key("cce", "dense", {})


class _StandInCut:
    """A stand-in for the pinned ``cut-cross-entropy`` wheel (25.1.1 on PyPI,
    which differs from the git tag of that number): the signature of its
    ``linear_cross_entropy``, the implementations it knows, the dtype checks
    of its backward (session vectors bf16 or fp16; the item table may also
    be float32, cast block by block inside the kernel), and the mean
    cross-entropy of ``e @ c.T`` it documents. It keeps the arguments it
    got, so the wiring is checked without a GPU."""

    __version__ = "0.0-test"

    def __init__(self):
        self.calls = []

    def linear_cross_entropy(self, e, c, targets, ignore_index=-100, softcap=None, reduction="mean",
                             shift=False, filter_eps="high", impl="cce"):
        if impl not in ("cce", "torch_compile"):
            raise NotImplementedError(f"{impl} is not implemented.")
        assert e.dtype in (torch.float16, torch.bfloat16), "Backwards requires embeddings to be bf16 or fp16"
        assert c.dtype in (torch.float16, torch.bfloat16, torch.float32), \
            "Backwards requires classifier to be bf16 or fp16 or fp32"
        assert e.size(-1) == c.size(1) and e.size()[:-1] == targets.size()
        self.calls.append(dict(e=e, c=c, targets=targets, reduction=reduction, filter_eps=filter_eps, impl=impl,
                               ignore_index=ignore_index, shift=shift))
        return F.cross_entropy(e.float() @ c.to(e.dtype).float().T, targets, reduction=reduction)


@pytest.mark.parametrize("l2", [False, True])
def test_cce_cut_kernel_gets_the_item_rows_without_padding_in_bf16_and_unfiltered(l2, monkeypatch):
    import sys

    fake = _StandInCut()
    monkeypatch.setitem(sys.modules, "cut_cross_entropy", fake)
    torch.manual_seed(3)
    n, d = 40, 6
    a, b, s1, s2 = twins(n, d, 5)
    targets = torch.tensor([1, 7, 40, 3, 7])
    cut = build_loss("cce", cce_kernel="cut", device="cuda")  # the device check passes; the stand-in runs on CPU
    assert cut.kernel == "cut-cross-entropy 0.0-test (bf16 sessions)" and cut.kernel_choice == "cut"
    l_cut, l_ce = cut.compute(s2, targets, b, None, l2), build_loss("ce").compute(s1, targets, a, None, l2)
    (call,) = fake.calls
    assert call["e"].dtype == torch.bfloat16 and call["filter_eps"] is None and call["impl"] == "cce"
    assert not call["shift"] and call["ignore_index"] == -100  # no target is -100: every row counts
    assert call["c"].shape == (n, d) and torch.equal(call["targets"], targets - 1)
    l_cut.backward()
    l_ce.backward()
    assert float(l_cut) == pytest.approx(float(l_ce), rel=2e-2)  # bf16 session vectors
    assert torch.allclose(s2.grad, s1.grad, atol=2e-2) and torch.allclose(b.weight.grad, a.weight.grad, atol=2e-2)
    assert not b.weight.grad[0].any()  # the padding row is no candidate
    monkeypatch.setitem(sys.modules, "cut_cross_entropy", None)  # not installed: import fails
    with pytest.raises(ValueError, match="pip install cut-cross-entropy"):
        build_loss("cce", cce_kernel="cut", device="cuda")


def _has_cut_kernel() -> bool:
    import importlib.util

    return torch.cuda.is_available() and importlib.util.find_spec("cut_cross_entropy") is not None


@pytest.mark.skipif(not _has_cut_kernel(), reason="needs CUDA and the cut-cross-entropy package")
@pytest.mark.parametrize("l2", [False, True])
def test_cce_cut_kernel_on_cuda_is_cross_entropy_in_bf16(l2):
    torch.manual_seed(4)
    n, d = 5000, 64
    a, b, s1, s2 = twins(n, d, 128, "cuda")
    targets = torch.randint(1, n + 1, (128,), device="cuda")
    l_ce = build_loss("ce").compute(s1, targets, a, None, l2)
    l_cut = build_loss("cce", cce_kernel="cut", device="cuda").compute(s2, targets, b, None, l2)
    l_ce.backward()
    l_cut.backward()
    assert float(l_cut) == pytest.approx(float(l_ce), rel=1e-2)
    assert torch.allclose(s2.grad, s1.grad, atol=1e-3, rtol=5e-2)
    assert torch.allclose(b.weight.grad, a.weight.grad, atol=1e-4, rtol=5e-2)


# -- SCE: scalable cross-entropy (Mezentsev et al., RecSys 2024) ---------------

def lse(*xs: float) -> float:
    return math.log(sum(math.exp(x) for x in xs))


# 6 items in d = 3 (row 0 is padding), 3 sessions, 2 buckets along the first two axes
SCE_ITEMS = [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [-1, 0, 0], [0, -1, 0], [0.5, 0.5, 0]]
SCE_SESSIONS = [[2.0, 0.0, 1.0], [0.0, 2.0, 0.5], [1.0, 1.0, 0.0]]
SCE_TARGETS = [6, 3, 1]
SCE_BUCKETS = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]


def test_sce_by_hand():
    emb = table(SCE_ITEMS)
    s, t, w = torch.tensor(SCE_SESSIONS), torch.tensor(SCE_TARGETS), torch.tensor(SCE_BUCKETS)
    # bucket 1 (w = e1): items 1 (1.0) and 6 (0.5); sessions 1 (2.0) and 3 (1.0)
    # bucket 2 (w = e2): items 2 (1.0) and 6 (0.5); sessions 2 (2.0) and 3 (1.0)
    # session 1, target 6 (score 1): in bucket 1, item 6 is its own target (masked), item 1 scores 2
    ce1 = lse(1.0, 2.0) - 1.0
    # session 2, target 3 (score 0.5): in bucket 2, item 2 scores 2, item 6 scores 1
    ce2 = lse(0.5, 2.0, 1.0) - 0.5
    # session 3, target 1 (score 1): bucket 1 masks item 1 and has item 6 (1): log 2; bucket 2 has
    # items 2 (1) and 6 (1): log 3. It keeps the larger.
    ce3 = max(lse(1.0, 1.0) - 1.0, lse(1.0, 1.0, 1.0) - 1.0)
    loss = build_loss("sce", sce_buckets=2, sce_bucket_size=2)
    assert float(loss.compute(s, t, emb, w, False)) == pytest.approx((ce1 + ce2 + ce3) / 3, rel=1e-6)
    # buckets of one session: 1 and 2 only; session 3 is in no bucket and leaves the mean
    one = build_loss("sce", sce_buckets=2, sce_bucket_size=1)
    # bucket 1: item 1 only, session 1 -> log(e^1 + e^2) - 1; bucket 2: item 2 only, session 2
    want = ((lse(1.0, 2.0) - 1.0) + (lse(0.5, 2.0) - 0.5)) / 2
    assert float(one.compute(s, t, emb, w, False)) == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("l2, scale", [(False, 1.0), (True, 1.0), (True, 4.0)])
def test_sce_with_one_bucket_holding_everything_is_full_cross_entropy(l2, scale):
    torch.manual_seed(2)
    n, d, b = 37, 6, 11
    a, c = nn.Embedding(n + 1, d, padding_idx=0), nn.Embedding(n + 1, d, padding_idx=0)
    c.load_state_dict(a.state_dict())
    s1 = torch.randn(b, d, requires_grad=True)
    s2 = s1.detach().clone().requires_grad_()
    targets = torch.randint(1, n + 1, (b,))
    sce = build_loss("sce", sce_buckets=1, sce_bucket_size=max(b, n) + 5, score_scale=scale)
    got = sce.compute(s1, targets, a, torch.randn(1, d), l2)
    want = build_loss("ce", score_scale=scale).compute(s2, targets, c, None, l2)
    assert float(got) == pytest.approx(float(want), abs=1e-5)
    got.backward()
    want.backward()
    assert torch.allclose(s1.grad, s2.grad, atol=1e-5)
    assert torch.allclose(a.weight.grad, c.weight.grad, atol=1e-5)


@pytest.mark.parametrize("sparse", [False, True])
def test_sce_gradient_reaches_only_the_targets_and_the_selected_items(sparse):
    emb = table(SCE_ITEMS)
    if sparse:
        emb.sparse = True
    s = torch.tensor(SCE_SESSIONS, requires_grad=True)
    loss = build_loss("sce", sce_buckets=2, sce_bucket_size=2)
    loss.compute(s, torch.tensor(SCE_TARGETS), emb, torch.tensor(SCE_BUCKETS), False).backward()
    touched = {1, 2, 6} | set(SCE_TARGETS)  # selected items and targets
    g = emb.weight.grad
    if sparse:
        assert g.is_sparse
        g = g.to_dense()
    for row in range(len(SCE_ITEMS)):
        assert bool(g[row].abs().sum() > 0) == (row in touched), row  # rows 0, 4 and 5: exactly zero
    assert torch.isfinite(s.grad).all()


def test_sce_draws_its_buckets_from_the_generator():
    torch.manual_seed(0)
    emb, s, t = nn.Embedding(31, 4, padding_idx=0), torch.randn(9, 4), torch.randint(1, 31, (9,))
    loss = build_loss("sce", sce_buckets=3, sce_bucket_size=4)
    first = loss(s, t, emb, True, generator=torch.Generator().manual_seed(7))
    again = loss(s, t, emb, True, generator=torch.Generator().manual_seed(7))
    assert torch.equal(first, again)
    buckets = loss.draw(9, 4, torch.Generator().manual_seed(7))
    assert buckets.shape == (3, 4) and buckets.dtype == torch.float32
    assert torch.equal(loss.compute(s, t, emb, buckets, True), first)
    with pytest.raises(ValueError, match="bucket vectors"):
        loss.compute(s, t, emb, None, True)
    with pytest.raises(ValueError, match="--sce-buckets"):
        build_loss("sce", sce_buckets=0)
    with pytest.raises(ValueError, match="--sce-bucket-size"):
        build_loss("sce", sce_bucket_size=0)
    with pytest.raises(ValueError, match="shared_negatives"):
        build_loss("sce", shared_negatives=True)


def test_sce_is_refused_where_it_cannot_run():
    assert graph_support(TrainConfig(data="d", loss="sce")) is not None
    assert graph_support(TrainConfig(data="d", loss="sce", optimizer="sparse_fast")) is not None
    from srs_core.models import build_model

    model = build_model("stamp", 30, dim=8)
    with pytest.raises(ValueError, match="cannot be graphed.*sce"):
        GraphedTrainStep(model, build_loss("sce"), batch_size=8, max_len=5, l2=True, optimizer="dense",
                         use_graph=False)
    from srs_core.optim import build_optimizer

    with pytest.raises(ValueError, match="sce.*data-parallel"):
        TrainStep(model, build_loss("sce"), build_optimizer(model, "dense"), l2=True, dist=Dist(0, 2, 0, "gloo"))
    with pytest.raises(ValueError, match="--graph on"):
        TrainConfig(data="x", loss="sce", graph="on")
    with pytest.raises(ValueError, match="--sce-buckets"):
        TrainConfig(data="x", loss="ns", sce_buckets=4)


# -- sampled softmax: per-source logQ ------------------------------------------

# 5 items in d = 2: training counts 4, 2, 1, 1, 2 (popularity 0.4, 0.2, 0.1, 0.1, 0.2); uniform sampler q = 1/5
LOGQ_COUNTS = np.array([0, 4, 2, 1, 1, 2])
LOGQ_ITEMS = [[0, 0], [1, 0], [0, 1], [1, 1], [0.5, -1], [-1, 0.5]]


def logq_inputs():
    # rows: sessions e1 and e2 with targets 1 and 2; shared negatives 3 and 1 (1 is row 0's target: a hit)
    return torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([1, 2]), table(LOGQ_ITEMS), torch.tensor([3, 1])


@pytest.mark.parametrize("distribution", ["uniform", "popularity"])
def test_logq_single_is_the_old_sampled_softmax_exactly(distribution):
    torch.manual_seed(3)
    n, d, b = 40, 5, 9
    counts = np.random.default_rng(0).integers(0, 9, n + 1)
    emb, s, t = nn.Embedding(n + 1, d, padding_idx=0), torch.randn(b, d), torch.randint(1, n + 1, (b,))
    t[4] = t[1]
    for l2 in (False, True):
        default = build_loss("sampled_softmax", n, negatives=6, sampling=distribution, counts=counts)
        single = build_loss("sampled_softmax", n, negatives=6, sampling=distribution, counts=counts, logq="single")
        neg = default.sampler.sample(b, torch.Generator().manual_seed(1))
        # the formula before --logq existed, verbatim
        s_ = F.normalize(s, dim=-1) if l2 else s
        cand = torch.cat([t, neg])
        y = F.normalize(emb(cand), dim=-1) if l2 else emb(cand)
        logits = s_ @ y.T - default.sampler.log_q_correction(cand).to(s_.dtype)
        hit = cand.unsqueeze(0) == t.unsqueeze(1)
        hit.diagonal().fill_(False)
        old = F.cross_entropy(logits.masked_fill(hit, -math.inf), torch.arange(b))
        assert torch.equal(default.compute(s, t, emb, neg, l2), old)
        assert torch.equal(single.compute(s, t, emb, neg, l2), old)


def test_logq_mixed_by_hand():
    s, t, emb, neg = logq_inputs()
    loss = build_loss("sampled_softmax", 5, negatives=2, counts=LOGQ_COUNTS, logq="mixed")
    p, q = [0, 0.4, 0.2, 0.1, 0.1, 0.2], 0.2
    # candidates [1, 2 | 3, 1]: in-batch by popularity p, sampled by q
    # row 0 (e1): scores 1, 0 | 1, 1; the second 1 is an accidental hit
    row0 = lse(1 - math.log(p[1]), 0 - math.log(p[2]), 1 - math.log(q)) - (1 - math.log(p[1]))
    # row 1 (e2): scores 0, 1 | 1, 0; label column 1
    row1 = lse(0 - math.log(p[1]), 1 - math.log(p[2]), 1 - math.log(q), 0 - math.log(q)) - (1 - math.log(p[2]))
    assert float(loss.compute(s, t, emb, neg, False)) == pytest.approx((row0 + row1) / 2, rel=1e-6)
    single = float(build_loss("sampled_softmax", 5, negatives=2, counts=LOGQ_COUNTS).compute(s, t, emb, neg, False))
    assert abs(single - (row0 + row1) / 2) > 1e-3  # the sources matter here


def test_logq_corrected_by_hand():
    s, t, emb, neg = logq_inputs()
    loss = build_loss("sampled_softmax", 5, negatives=2, counts=LOGQ_COUNTS, logq="corrected")
    p, q = [0, 0.4, 0.2, 0.1, 0.1, 0.2], 0.2

    def row(pos: float, negs: list[float]) -> float:
        """negs: corrected negative logits z; L = lse(z) - pos, weighted by sg(1 - P)."""
        value = lse(*negs) - pos
        prob = math.exp(pos) / (math.exp(pos) + sum(math.exp(z) for z in negs) / len(negs))
        return (1 - prob) * value

    # row 0 (target 1, score 1): negatives item 2 in-batch (score 0) and item 3 sampled (score 1);
    # each source's proposal conditioned on not drawing item 1: p(j) / (1 - p(1)), q / (1 - q)
    row0 = row(1.0, [0 - math.log(p[2] / (1 - p[1])), 1 - math.log(q / (1 - q))])
    # row 1 (target 2, score 1): item 1 in-batch (0), items 3 (1) and 1 (0) sampled
    row1 = row(1.0, [0 - math.log(p[1] / (1 - p[2])), 1 - math.log(q / (1 - q)), 0 - math.log(q / (1 - q))])
    assert float(loss.compute(s, t, emb, neg, False)) == pytest.approx((row0 + row1) / 2, rel=1e-6)


def test_logq_corrected_weight_takes_no_gradient_and_rows_without_negatives_add_nothing():
    s, t, emb, neg = logq_inputs()
    s.requires_grad_()
    loss = build_loss("sampled_softmax", 5, negatives=2, counts=LOGQ_COUNTS, logq="corrected")
    loss.compute(s, t, emb, neg, False).backward()
    # d/ds of w L with w constant: w (softmax_z . y_neg - y_pos) per row, over the batch mean
    p, q = [0, 0.4, 0.2, 0.1, 0.1, 0.2], 0.2
    y = torch.tensor(LOGQ_ITEMS)
    z0 = torch.tensor([0 - math.log(p[2] / 0.6), 1 - math.log(q / 0.8)])
    w0 = 1 - math.exp(1) / (math.exp(1) + z0.exp().mean().item())
    g0 = w0 * (torch.softmax(z0, 0) @ y[[2, 3]] - y[1]) / 2
    assert torch.allclose(s.grad[0], g0, atol=1e-6)
    # every candidate is the row's own target: no negative, no loss, no gradient
    only = build_loss("sampled_softmax", 5, negatives=1, counts=LOGQ_COUNTS, logq="corrected")
    s2 = torch.tensor([[1.0, 0.0]], requires_grad=True)
    value = only.compute(s2, torch.tensor([1]), emb, torch.tensor([1]), False)
    value.backward()
    assert float(value) == 0.0 and torch.equal(s2.grad, torch.zeros_like(s2))


def test_logq_mixed_equals_single_when_the_sampler_is_the_popularity():
    torch.manual_seed(4)
    n, b = 25, 7
    counts = np.random.default_rng(1).integers(1, 20, n + 1)
    emb, s, t = nn.Embedding(n + 1, 4, padding_idx=0), torch.randn(b, 4), torch.randint(1, n + 1, (b,))
    kw = dict(negatives=5, sampling="popularity", alpha=1.0, counts=counts)
    single, mixed = build_loss("sampled_softmax", n, **kw), build_loss("sampled_softmax", n, logq="mixed", **kw)
    neg = single.sampler.sample(b)
    assert float(mixed.compute(s, t, emb, neg, True)) == pytest.approx(float(single.compute(s, t, emb, neg, True)),
                                                                       rel=1e-5)


@pytest.mark.parametrize("logq", ["mixed", "corrected"])
@pytest.mark.parametrize("world", [2, 3])
def test_logq_shard_losses_sum_to_the_global_batch_loss(logq, world):
    """Under torchrun the other ranks' targets arrive among the negatives and
    stay in-batch candidates (corrected by popularity, not by q)."""
    torch.manual_seed(0)
    n, b = 30, 10
    counts = np.random.default_rng(2).integers(0, 10, n + 1)
    fn = build_loss("sampled_softmax", n, negatives=4, counts=counts, logq=logq)
    emb, session, targets = nn.Embedding(n + 1, 6, padding_idx=0), torch.randn(b, 6), torch.randint(1, n + 1, (b,))
    targets[3] = targets[7]
    negatives = fn.sampler.sample(b)
    full = fn.compute(session, targets, emb, negatives, True)
    parts = [shard_loss(fn, session[lo:hi], targets, emb, negatives, True, (lo, hi))
             for lo, hi in (shard_rows(b, Dist(r, world, r, "gloo")) for r in range(world))]
    torch.testing.assert_close(torch.stack(parts).sum(), full, atol=1e-6, rtol=1e-6)


def test_logq_bad_parameters_are_named():
    with pytest.raises(ValueError, match="needs counts"):
        build_loss("sampled_softmax", 5, negatives=2, logq="mixed")
    with pytest.raises(ValueError, match="needs counts"):
        build_loss("sampled_softmax", 5, negatives=2, logq="corrected")
    with pytest.raises(ValueError, match="unknown logQ correction 'both'"):
        build_loss("sampled_softmax", 5, negatives=2, counts=LOGQ_COUNTS, logq="both")
    with pytest.raises(ValueError, match="logq='mixed'.*'ns'"):
        build_loss("ns", 5, negatives=2, counts=LOGQ_COUNTS, logq="mixed")
    with pytest.raises(ValueError, match="--logq mixed.*'ns'"):
        TrainConfig(data="x", loss="ns", logq="mixed")


# -- wiring: flags, srs train, run keys -----------------------------------------

def test_new_flags_parse():
    from srs_core.cli import build_parser

    args = build_parser().parse_args(["train", "--data", "d", "--model", "stamp", "--loss", "sce", "--sce-buckets", "4",
                                      "--sce-bucket-size", "32", "--output", "o"])
    c = TrainConfig.from_args(args)
    assert (c.loss, c.sce_buckets, c.sce_bucket_size, c.logq) == ("sce", 4, 32, "single")
    args = build_parser().parse_args(["train", "--data", "d", "--model", "stamp", "--loss", "sampled_softmax",
                                      "--logq", "corrected", "--output", "o"])
    assert TrainConfig.from_args(args).logq == "corrected"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--data", "d", "--model", "stamp", "--logq", "both", "--output", "o"])


def test_sce_and_logq_mixed_train_through_srs_train(toy, tmp_path):
    common = ["--data", str(toy), "--model", "stamp", "--epochs", "1", "--batch-size", "64", "--dim", "8",
              "--negatives", "5", "--device", "cpu", "--l2", "--quiet"]
    assert cli_main(["train", *common, "--loss", "sce", "--optimizer", "sparse_fast", "--sce-buckets", "3",
                     "--sce-bucket-size", "16", "--output", str(tmp_path / "sce")]) == 0
    rec = json.loads((tmp_path / "sce" / "result.json").read_text())
    assert rec["status"] == "complete" and math.isfinite(rec["epochs"][0]["loss"])
    assert rec["identity"]["sce_buckets"] == 3 and rec["identity"]["sce_bucket_size"] == 16
    assert rec["environment"]["train_step"] == "eager"
    assert cli_main(["train", *common, "--loss", "sampled_softmax", "--optimizer", "sparse", "--logq", "mixed",
                     "--output", str(tmp_path / "mixed")]) == 0
    rec = json.loads((tmp_path / "mixed" / "result.json").read_text())
    assert rec["status"] == "complete" and rec["identity"]["logq"] == "mixed"
    corrected = fit(cfg(toy, epochs=1, loss="sampled_softmax", logq="corrected", l2=True), tmp_path / "c", quiet=True)
    assert corrected["status"] == "complete" and math.isfinite(corrected["epochs"][0]["loss"])
    # on a GPU, --graph auto would graph a verified encoder's step; sce's stays eager
    cuda = torch.device("cuda")
    assert use_graph(cfg(toy, loss="ns", optimizer="sparse_fast"), cuda)
    assert not use_graph(cfg(toy, loss="sce", optimizer="sparse_fast"), cuda)
    assert not use_graph(cfg(toy, loss="sce"), cuda)


# identities' hashes of the code before sce and --logq existed (HEAD b67ee7a), dataset fingerprint "abcd"
OLD_KEYS = [
    (dict(loss="ce"), "test", "580b03cb4172324b"),
    (dict(loss="ce"), "valid", "821a14fdc1483a54"),
    (dict(loss="ns", optimizer="sparse_fast", l2=True), "valid", "ee2132aede9b4cd0"),
    (dict(loss="sampled_softmax", sampling="popularity"), "test", "61d3439932b0b2db"),
    (dict(loss="sampled_softmax", sampling="popularity"), "valid", "b581b543fcf74e0c"),
    (dict(loss="gbce", gbce_t=0.5), "valid", "b6c4b0b30e64fd71"),
    (dict(loss="cce"), "test", "5bd3f1db8b4d6b07"),
    (dict(loss="triplet", shared_negatives=True, sampling="mixed", mix=0.3), "valid", "c57997a3a8c27b9e"),
]


@pytest.mark.parametrize("kw, selects_on, key", OLD_KEYS)
def test_old_run_keys_are_unchanged(kw, selects_on, key):
    identity = TrainConfig(data="d", model="stamp", **kw).identity("abcd", selects_on)
    assert not {"sce_buckets", "sce_bucket_size", "logq", "gbce_offset", "cce_kernel"} & set(identity)
    assert config_hash(identity) == key


def test_new_fields_enter_only_the_runs_that_use_them():
    sce = TrainConfig(data="d", model="stamp", loss="sce").identity("abcd")
    assert (sce["sce_buckets"], sce["sce_bucket_size"]) == (8, 256) and "logq" not in sce
    wider = TrainConfig(data="d", model="stamp", loss="sce", sce_bucket_size=512).identity("abcd")
    assert config_hash(wider) != config_hash(sce)
    mixed = TrainConfig(data="d", model="stamp", loss="sampled_softmax", logq="mixed").identity("abcd")
    assert mixed["logq"] == "mixed" and "sce_buckets" not in mixed
