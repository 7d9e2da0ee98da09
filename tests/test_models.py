"""The four session encoders: interface, padding, gradients, learning, and
SR-GNN's vectorised graphs and forward pass against plain per-session code."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from srs_core.models import MODELS, SRGNN, STAMP, NARM, build_model
from srs_core.models.srgnn import build_session_graphs

N_ITEMS, DIM = 30, 12


def random_batch(batch=7, max_len=6, n_items=N_ITEMS, width=None, seed=0):
    """Right-padded items with repeats, lengths 1..max_len (both ends present)."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, max_len + 1, (batch,), generator=g)
    lengths[0], lengths[-1] = 1, max_len
    width = width or max_len
    items = torch.randint(1, n_items + 1, (batch, width), generator=g)
    items[torch.arange(width)[None, :] >= lengths[:, None]] = 0
    return items, lengths


def make(name, sparse=False, **hyper):
    torch.manual_seed(0)
    return build_model(name, N_ITEMS, dim=DIM, sparse=sparse, **hyper).eval()


@pytest.mark.parametrize("name", MODELS)
def test_shape_dtype_and_padding_row(name):
    items, lengths = random_batch()
    model = make(name)
    out = model(items, lengths)
    assert out.shape == (7, DIM) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert model.item_embedding.weight[0].abs().sum() == 0
    assert model.item_weight.shape == (N_ITEMS, DIM)


@pytest.mark.parametrize("name", MODELS)
def test_extra_padding_changes_nothing(name):
    items, lengths = random_batch()
    model = make(name)
    wide = torch.cat([items, torch.zeros(7, 9, dtype=torch.long)], dim=1)
    torch.testing.assert_close(model(wide, lengths), model(items, lengths), atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", MODELS)
def test_sessions_do_not_see_each_other(name):
    items, lengths = random_batch()
    model = make(name)
    together = model(items, lengths)
    for b in range(len(items)):
        alone = model(items[b : b + 1, : lengths[b]], lengths[b : b + 1])
        torch.testing.assert_close(alone[0], together[b], atol=1e-6, rtol=0)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("name", MODELS)
def test_gradient_reaches_exactly_the_session_items(name, sparse):
    items, lengths = random_batch(n_items=N_ITEMS)
    model = make(name, sparse=sparse)
    model(items, lengths).pow(2).sum().backward()
    grad = model.item_embedding.weight.grad
    present = set(items[items > 0].tolist())
    assert len(present) < N_ITEMS  # some rows must stay untouched
    if sparse:
        assert grad.is_sparse
        grad = grad.coalesce()
        assert set(grad.indices()[0].tolist()) == present
        grad = grad.to_dense()
    touched = set(torch.nonzero(grad.abs().sum(1)).squeeze(1).tolist())
    assert touched == present  # every session item gets a gradient, row 0 never


def tiny_dataset(n_samples=24, n_items=20, seed=1):
    """Distinct sessions with random targets: a lookup table a model can memorise."""
    rng = np.random.default_rng(seed)
    seen, rows = set(), []
    while len(rows) < n_samples:
        sess = tuple(rng.integers(1, n_items + 1, size=rng.integers(1, 6)).tolist())
        if sess not in seen:
            seen.add(sess)
            rows.append(sess)
    items = torch.zeros(n_samples, 5, dtype=torch.long)
    for b, sess in enumerate(rows):
        items[b, : len(sess)] = torch.tensor(sess)
    lengths = torch.tensor([len(s) for s in rows])
    targets = torch.from_numpy(rng.integers(1, n_items + 1, size=n_samples))
    return items, lengths, targets


@pytest.mark.parametrize("name", MODELS)
def test_overfits_a_tiny_dataset(name):
    items, lengths, targets = tiny_dataset()
    hyper = {"emb_dropout": 0.0, "ctx_dropout": 0.0} if name == "narm" else {}
    torch.manual_seed(0)
    model = build_model(name, 20, dim=16, **hyper)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    losses = []
    for _ in range(150):
        opt.zero_grad()
        loss = F.cross_entropy(model(items, lengths) @ model.item_weight.T, targets - 1)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] <= 0.1 * losses[0], (losses[0], losses[-1])


@pytest.mark.parametrize("cls", [NARM, STAMP, SRGNN])
def test_attention_ignores_padding(cls):
    items, lengths = random_batch(width=10)
    torch.manual_seed(0)
    model = cls(N_ITEMS, DIM).eval()
    _, alpha = model(items, lengths, return_attention=True)
    assert alpha.shape == items.shape
    assert (alpha[items == 0] == 0).all()
    for b in range(len(items)):
        _, alone = model(items[b : b + 1, : lengths[b]], lengths[b : b + 1], return_attention=True)
        torch.testing.assert_close(alpha[b, : lengths[b]], alone[0], atol=1e-6, rtol=0)


def official_graph(session: list[int]):
    """Per-session graph exactly as the official SR-GNN numpy code builds it."""
    node = np.unique(session)
    u_a = np.zeros((len(node), len(node)))
    for u, v in zip(session[:-1], session[1:]):
        u_a[np.where(node == u)[0][0], np.where(node == v)[0][0]] = 1
    sum_in = u_a.sum(0)
    sum_in[sum_in == 0] = 1
    sum_out = u_a.sum(1)
    sum_out[sum_out == 0] = 1
    a = np.concatenate([u_a / sum_in, u_a.T / sum_out]).T  # [n, 2n]
    alias = [int(np.where(node == i)[0][0]) for i in session]
    return node, alias, a[:, : len(node)], a[:, len(node) :]


@pytest.mark.parametrize("seed", range(4))
def test_vectorised_graphs_equal_the_official_construction(seed):
    # few distinct ids -> many repeats and self-loops; width 40 -> heavy padding
    items, lengths = random_batch(batch=50, max_len=25, n_items=5, width=40, seed=seed)
    g = build_session_graphs(items, lengths)
    for b in range(len(items)):
        session = items[b, : lengths[b]].tolist()
        node, alias, a_in, a_out = official_graph(session)
        k = len(node)
        assert g.node_items[b, :k].tolist() == node.tolist()
        assert (g.node_items[b, k:] == 0).all() and g.node_mask[b].sum() == k
        assert g.alias[b, : lengths[b]].tolist() == alias
        assert g.last_node[b] == alias[-1]
        for got, want in ((g.a_in[b], a_in), (g.a_out[b], a_out)):
            np.testing.assert_allclose(got[:k, :k].numpy(), want, atol=1e-7)
            assert got[k:].abs().sum() == 0 and got[:, k:].abs().sum() == 0


def srgnn_reference(model: SRGNN, session: list[int]) -> torch.Tensor:
    """Eqs. 3.8-3.15 for one session, written node by node from the equations."""
    node, alias, a_in, a_out = official_graph(session)
    d = model.dim
    h_in, h_out = model.edge.weight[:d], model.edge.weight[d:]
    w_z, w_r, w_o = model.w_gates.weight.split(d)
    b_z, b_r, b_o = model.w_gates.bias.split(d)
    u_z, u_r = model.u_gates.weight.split(d)
    v = model.item_embedding.weight[torch.from_numpy(node)]
    for _ in range(model.step):
        new = []
        for i in range(len(node)):
            agg_in = sum(a_in[i, j] * (h_in @ v[j]) for j in range(len(node)))
            agg_out = sum(a_out[i, j] * (h_out @ v[j]) for j in range(len(node)))
            a = torch.cat([agg_in, agg_out]) + model.edge_bias  # Eq. 3.8
            z = torch.sigmoid(w_z @ a + b_z + u_z @ v[i])
            r = torch.sigmoid(w_r @ a + b_r + u_r @ v[i])
            cand = torch.tanh(w_o @ a + b_o + model.u_o.weight @ (r * v[i]))
            new.append((1 - z) * v[i] + z * cand)
        v = torch.stack(new)
    seq = v[alias]
    v_n = seq[-1]
    alpha = [model.q(torch.sigmoid(model.w1(v_n) + model.w2(x))) for x in seq]
    s_g = sum(a * x for a, x in zip(alpha, seq))
    return model.w3(torch.cat([v_n, s_g]))


@pytest.mark.parametrize("step", [1, 2])
def test_srgnn_equals_a_per_session_reference(step):
    items, lengths = random_batch(batch=6, max_len=8, n_items=6, width=11, seed=3)
    torch.manual_seed(0)
    model = SRGNN(6, DIM, step=step).eval()
    out = model(items, lengths)
    with torch.no_grad():
        for b in range(len(items)):
            want = srgnn_reference(model, items[b, : lengths[b]].tolist())
            torch.testing.assert_close(out[b], want, atol=1e-5, rtol=1e-5)


def test_stamp_equals_the_equations():
    items, lengths = random_batch(seed=5)
    model = make("stamp")
    out = model(items, lengths)
    emb = model.item_embedding.weight
    w2, w3 = model.w23.weight[:, :DIM], model.w23.weight[:, DIM:]
    for b in range(len(items)):
        x = emb[items[b, : lengths[b]]]
        x_t, m_s = x[-1], x.mean(0)
        alpha = torch.sigmoid(x @ model.w1.weight.T + w2 @ x_t + w3 @ m_s + model.w23.bias) @ model.w0.weight[0]
        m_a = (alpha[:, None] * x).sum(0)  # Eqs. 3.4-3.5
        h_s, h_t = torch.tanh(model.mlp_a(m_a)), torch.tanh(model.mlp_b(x_t))
        torch.testing.assert_close(out[b], h_s * h_t, atol=1e-6, rtol=1e-5)
        # the trilinear product of Eq. 3.7 is the score against each item
        tri = (h_s[None] * h_t[None] * model.item_weight).sum(1)
        torch.testing.assert_close(out[b] @ model.item_weight.T, tri, atol=1e-6, rtol=1e-5)


def test_build_model_rejects_unknown_names_and_hyperparameters():
    with pytest.raises(ValueError, match=r"'sasrec'.*gru4rec, narm, srgnn, stamp"):
        build_model("sasrec", 10)
    with pytest.raises(ValueError, match=r"'stamp'.*step"):
        build_model("stamp", 10, step=2)
    assert build_model("srgnn", 10, step=3).step == 3
    assert build_model("narm", 10, dim=8, hidden_size=5).gru.hidden_size == 5
    with pytest.raises(ValueError, match="step"):
        SRGNN(10, step=0)
