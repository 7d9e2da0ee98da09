"""The optimizers of Section 4.3: dense Adam, SparseAdam, and the fast row-wise path."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from srs_core.losses import LOSSES, build_loss
from srs_core.models.base import SessionEncoder
from srs_core.optim import (
    FastSparseAdam,
    OPTIMIZERS,
    RowGradSink,
    build_optimizer,
    check_combination,
    embedding_is_sparse,
    route_lookups,
    unroute_lookups,
)

N_ITEMS, DIM = 40, 6


class Toy(SessionEncoder):
    """Mean of the item embeddings, then a linear layer."""

    def __init__(self, n_items, dim=DIM, sparse=False):
        super().__init__(n_items, dim, sparse)
        self.lin = nn.Linear(dim, dim)

    def forward(self, items, lengths):
        x = self.item_embedding(items)
        return self.lin(x.sum(1) / lengths.unsqueeze(1).to(x.dtype))


def make_model(kind, seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    return Toy(N_ITEMS, sparse=embedding_is_sparse(kind)).to(dtype)


def make_batches(n_steps, seed=0, batch=8, width=5, k=4):
    """Batches whose items repeat within a batch and come from a shifting
    window of the catalogue, so rows are absent from some steps."""
    rng = np.random.default_rng(seed)
    out = []
    for step in range(n_steps):
        lo = 1 + (step * 7) % (N_ITEMS - 12)
        pool = np.arange(lo, lo + 12)  # 12 ids of 40: most rows absent each step
        lengths = rng.integers(1, width + 1, size=batch)
        items = rng.choice(pool, size=(batch, width))
        items[np.arange(width)[None, :] >= lengths[:, None]] = 0
        items[1, 0] = items[0, 0]  # a duplicate id, for sure
        targets = rng.choice(pool, size=batch)
        negatives = rng.choice(pool, size=(batch, k))
        out.append(tuple(torch.as_tensor(a) for a in (items, lengths, targets, negatives)))
    return out


def train(model, opt, batches, l2=True):
    loss_fn = build_loss("ns", N_ITEMS, negatives=4)
    for items, lengths, targets, negatives in batches:
        loss = loss_fn.compute(model(items, lengths), targets, model.item_embedding, negatives, l2)
        opt.zero_grad()
        loss.backward()
        opt.step()


def emb_state(opt):
    part = opt.optimizers["embedding"]
    if isinstance(part, FastSparseAdam):
        return part.exp_avg, part.exp_avg_sq
    st = part.state[part.param_groups[0]["params"][0]]
    return st["exp_avg"], st["exp_avg_sq"]


@pytest.mark.parametrize(
    "variant",
    [
        dict(static_shapes=False),  # eager: dedupe + fused update
        dict(static_shapes=True),  # CUDA-graph path, run on CPU
        dict(route=False),  # eager, reading the COO gradient of sparse=True
    ],
    ids=["eager", "static", "coo"],
)
def test_sparse_fast_equals_sparse_adam_over_50_steps(variant):
    batches = make_batches(50)
    ref = make_model("sparse")
    ref_opt = build_optimizer(ref, "sparse", lr=1e-2)
    fast = make_model("sparse_fast")
    fast_opt = build_optimizer(fast, "sparse_fast", lr=1e-2, **variant)
    assert torch.equal(ref.item_embedding.weight, fast.item_embedding.weight)
    for i in range(len(batches)):
        train(ref, ref_opt, batches[i : i + 1])
        train(fast, fast_opt, batches[i : i + 1])
        diff = (ref.item_embedding.weight - fast.item_embedding.weight).abs().max().item()
        assert diff < 1e-6, f"step {i + 1}: embeddings differ by {diff}"
    for a, b in zip(emb_state(ref_opt), emb_state(fast_opt)):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    for p, q in zip(ref.lin.parameters(), fast.lin.parameters()):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-5)
    # the weights really moved, and the padding row did not
    assert (ref.item_embedding.weight - make_model("sparse").item_embedding.weight).abs().max() > 1e-2
    assert torch.equal(fast.item_embedding.weight[0], torch.zeros(DIM))
    assert fast_opt.optimizers["embedding"].step_count == 50


@pytest.mark.parametrize("kind", ["sparse", "sparse_fast"])
def test_sparse_kinds_leave_absent_rows_bitwise_unchanged(kind):
    model = make_model(kind)
    opt = build_optimizer(model, kind, lr=1e-2)
    batches = make_batches(3)
    train(model, opt, batches[:2])  # rows get history (non-zero moments)
    before = model.item_embedding.weight.detach().clone()
    m_before = [t.clone() for t in emb_state(opt)]
    items, lengths, targets, negatives = batches[2]
    train(model, opt, batches[2:])
    touched = torch.zeros(N_ITEMS + 1, dtype=torch.bool)
    touched[torch.cat([items.flatten(), targets, negatives.flatten()])] = True
    touched[0] = False
    after = model.item_embedding.weight.detach()
    assert torch.equal(after[~touched], before[~touched])
    for a, b in zip(m_before, emb_state(opt)):
        assert torch.equal(a[~touched], b[~touched])
    assert (after[touched] != before[touched]).any(dim=1).all()  # every touched row moved


def test_dense_adam_moves_a_row_after_its_gradient_stops():
    """Section 4.3: with Adam a row whose gradient is now zero still moves,
    driven by its first moment; SparseAdam leaves it alone."""
    moved = {}
    for kind in ("dense", "sparse"):
        model = make_model(kind)
        opt = build_optimizer(model, kind, lr=1e-2)
        row = 3
        items1 = torch.tensor([[row, 5], [row, 0]])
        items2 = torch.tensor([[7, 8], [9, 0]])  # row 3 absent
        lengths = torch.tensor([2, 1])
        for items in (items1, items2):
            opt.zero_grad()
            model(items, lengths).pow(2).sum().backward()
            if items is items2:
                before = model.item_embedding.weight[row].detach().clone()
                g = model.item_embedding.weight.grad
                g = g.to_dense() if g.is_sparse else g
                assert torch.equal(g[row], torch.zeros(DIM))  # zero gradient at step 2
            opt.step()
        moved[kind] = (model.item_embedding.weight[row] - before).abs().max().item()
    assert moved["dense"] > 1e-3
    assert moved["sparse"] == 0.0


@pytest.mark.parametrize(
    "kind,variant",
    [("dense", {}), ("sparse", {}), ("sparse_fast", {}), ("sparse_fast", {"static_shapes": True})],
    ids=["dense", "sparse", "sparse_fast", "sparse_fast-static"],
)
def test_state_dict_round_trip_continues_identically(kind, variant):
    batches = make_batches(10, seed=3)
    model = make_model(kind)
    opt = build_optimizer(model, kind, lr=1e-2, **variant)
    train(model, opt, batches[:5])
    saved_model = copy.deepcopy(model.state_dict())
    saved_opt = copy.deepcopy(opt.state_dict())
    train(model, opt, batches[5:])

    resumed = make_model(kind, seed=123)  # different init: everything must come from the state
    resumed_opt = build_optimizer(resumed, kind, lr=1e-2, **variant)
    resumed.load_state_dict(saved_model)
    resumed_opt.load_state_dict(saved_opt)
    train(resumed, resumed_opt, batches[5:])
    for (name, a), b in zip(model.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_state_dict_of_another_kind_is_refused():
    model = make_model("sparse")
    sd = build_optimizer(model, "sparse").state_dict()
    other = build_optimizer(make_model("sparse_fast"), "sparse_fast")
    with pytest.raises(ValueError, match="same --optimizer"):
        other.load_state_dict(sd)


def test_full_cross_entropy_with_sparse_optimizers_is_rejected():
    for kind in ("sparse", "sparse_fast"):
        with pytest.raises(ValueError, match="every item row.*--optimizer dense"):
            check_combination("ce", kind, dense_gradient=LOSSES["ce"].dense_gradient)
    check_combination("ce", "dense", dense_gradient=LOSSES["ce"].dense_gradient)
    for loss in ("ns", "triplet", "sampled_softmax"):
        for kind in OPTIMIZERS:
            check_combination(loss, kind, dense_gradient=LOSSES[loss].dense_gradient)
    with pytest.raises(ValueError, match="unknown optimizer 'adagrad'"):
        check_combination("ns", "adagrad", dense_gradient=LOSSES["ns"].dense_gradient)


def test_embedding_flag_must_match_the_optimizer():
    assert embedding_is_sparse("sparse") and embedding_is_sparse("sparse_fast")
    assert not embedding_is_sparse("dense")
    with pytest.raises(ValueError, match="dense item embedding"):
        build_optimizer(Toy(N_ITEMS, sparse=True), "dense")
    with pytest.raises(ValueError, match="sparse=True|sparse=embedding_is_sparse"):
        build_optimizer(Toy(N_ITEMS, sparse=False), "sparse")


def test_sparse_fast_refuses_a_dense_gradient():
    model = make_model("sparse_fast")
    opt = build_optimizer(model, "sparse_fast")
    loss = build_loss("ce")(model(torch.tensor([[1, 2]]), torch.tensor([2])), torch.tensor([3]),
                            model.item_embedding, True)
    loss.backward()
    with pytest.raises(RuntimeError, match="dense gradient.*dense optimizer"):
        opt.step()


def test_routed_lookup_gives_the_embedding_gradient_rows():
    """The custom autograd lookup (used by sparse_fast and the CUDA graph)
    accumulates exactly autograd's dense embedding gradient, padding excluded."""
    torch.manual_seed(0)
    ref = nn.Embedding(N_ITEMS + 1, DIM, padding_idx=0)
    ids = torch.tensor([[1, 3, 3, 0], [3, 7, 0, 0]])
    weight_out = torch.randn(2, 4, DIM)
    (ref(ids) * weight_out).sum().backward()

    emb = copy.deepcopy(ref)
    emb.weight.grad = None
    sink = RowGradSink(emb.weight, emb.padding_idx, static_shapes=True)
    route_lookups(emb, sink)
    assert isinstance(emb, nn.Embedding) and set(emb.state_dict()) == {"weight"}
    out = emb(ids)
    torch.testing.assert_close(out, ref(ids))
    (out * weight_out).sum().backward()
    assert emb.weight.grad is None  # the gradient went to the sink, not to .grad
    # every row but padding's (which the optimizer zeroes before using the buffer)
    torch.testing.assert_close(sink.buffer[1:], ref.weight.grad[1:])
    sink.clear()
    assert torch.equal(sink.buffer, torch.zeros_like(sink.buffer))
    unroute_lookups(emb)
    assert type(emb) is nn.Embedding and not hasattr(emb, "row_grad_sink")


def test_linear_time_dedupe_matches_unique():
    model = make_model("sparse_fast")
    opt = build_optimizer(model, "sparse_fast").optimizers["embedding"]
    ids = torch.tensor([5, 3, 5, 9, 3, 3, 0, 40, 9])
    unique, inverse = opt._dedupe(ids)
    assert torch.equal(unique[inverse], ids)
    assert sorted(unique.tolist()) == [0, 3, 5, 9, 40]


# -- the graphed training step (CUDA graph on a GPU, the same static step eagerly on CPU)

from srs_core.training.graph import GraphedTrainStep  # noqa: E402


def _graphed_vs_sparse_adam(device, n_steps=20):
    batches = make_batches(n_steps, seed=7)
    ref = make_model("sparse").to(device)
    ref_opt = build_optimizer(ref, "sparse", lr=1e-2)
    model = make_model("sparse_fast").to(device)
    loss_fn = build_loss("ns", N_ITEMS, negatives=4, device=device)
    step = GraphedTrainStep(model, loss_fn, batch_size=8, max_len=6, l2=True, lr=1e-2, warmup=2,
                            sample_in_graph=False)
    for items, lengths, targets, negatives in batches:
        items, lengths, targets, negatives = (t.to(device) for t in (items, lengths, targets, negatives))
        train(ref, ref_opt, [(items, lengths, targets, negatives)])
        loss = step(items, lengths, targets, negatives)  # width 5 is padded to max_len 6
        assert torch.isfinite(loss)
    torch.testing.assert_close(model.item_embedding.weight, ref.item_embedding.weight, atol=1e-6, rtol=1e-5)
    for p, q in zip(model.lin.parameters(), ref.lin.parameters()):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-5)
    return step


def test_graphed_step_runs_the_static_step_on_cpu_and_equals_sparse_adam():
    step = _graphed_vs_sparse_adam("cpu")
    assert step.graph is None and step.calls == 20


def test_graphed_step_draws_fresh_negatives_and_checks_the_batch_shape():
    model = make_model("sparse_fast")
    loss_fn = build_loss("sampled_softmax", N_ITEMS, negatives=16)
    step = GraphedTrainStep(model, loss_fn, batch_size=8, max_len=5, l2=True)
    items, lengths, targets, _ = make_batches(1)[0]
    step(items, lengths, targets)
    first = step.negatives.clone()
    step(items, lengths, targets)
    assert first.shape == (16,) and not torch.equal(first, step.negatives)
    assert ((first >= 1) & (first <= N_ITEMS)).all()
    calls = step.calls
    assert torch.isfinite(step(items[:5], lengths[:5], targets[:5]))  # a partial batch runs the same step unshaped
    assert step.calls == calls  # and is not counted as a replay
    with pytest.raises(ValueError, match="sample_in_graph=False"):
        step(items, lengths, targets, torch.ones(16, dtype=torch.long))
    with pytest.raises(ValueError, match="sampled loss"):
        GraphedTrainStep(make_model("sparse_fast"), build_loss("ce"), batch_size=8, max_len=5, l2=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_graph_step_equals_sparse_adam():
    step = _graphed_vs_sparse_adam("cuda")
    assert step.graph is not None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("loss_name", ["ns", "triplet", "sampled_softmax"])
@pytest.mark.parametrize("model_name", ["stamp", "srgnn"])
def test_cuda_graph_captures_every_sampled_loss_with_in_graph_sampling(loss_name, model_name):
    from srs_core.models import build_model

    torch.manual_seed(0)
    model = build_model(model_name, N_ITEMS, dim=16, sparse=True).cuda()
    loss_fn = build_loss(loss_name, N_ITEMS, negatives=16, device="cuda")
    step = GraphedTrainStep(model, loss_fn, batch_size=8, max_len=6, l2=True, lr=1e-2, warmup=2)
    before = model.item_embedding.weight.detach().clone()
    drawn = []
    for items, lengths, targets, _ in make_batches(6, seed=3):
        loss = step(items.cuda(), lengths.cuda(), targets.cuda())
        drawn.append(step.negatives.clone())
        assert torch.isfinite(loss).item()
    assert step.graph is not None
    assert not torch.equal(drawn[-1], drawn[-2])  # replays draw fresh negatives
    assert not torch.equal(model.item_embedding.weight, before)  # and train


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_graph_refuses_a_cpu_generator_and_no_warmup():
    model = make_model("sparse_fast").cuda()
    loss_fn = build_loss("ns", N_ITEMS, negatives=4, device="cuda")
    with pytest.raises(ValueError, match="generator is on cpu"):
        GraphedTrainStep(model, loss_fn, batch_size=8, max_len=6, l2=True, generator=torch.Generator())
    with pytest.raises(ValueError, match="warmup >= 1"):
        GraphedTrainStep(make_model("sparse_fast").cuda(), loss_fn, batch_size=8, max_len=6, l2=True, warmup=0)


def test_huge_page_advice_is_best_effort_and_keeps_values():
    from srs_core.optim import advise_huge_pages

    assert advise_huge_pages(torch.zeros(10, 10), collapse=True) is False  # too small: untouched
    big = torch.randn(3_000_000)  # 12 MB
    before = big.clone()
    assert advise_huge_pages(big, collapse=True) in (True, False)
    assert torch.equal(big, before)
