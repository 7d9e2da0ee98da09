"""SR-GNN: session-based recommendation with graph neural networks (Wu et al., 2019).

Dissertation Section 3.4, Eqs. 3.8-3.16. Each session becomes a directed
graph over its distinct items; a gated graph network (Eqs. 3.8-3.12)
propagates along the edges for ``step`` rounds; soft attention with the last
item as context (Eqs. 3.13-3.14) pools the session, and ``W3 [s_l; s_g]``
(Eq. 3.15) is the hybrid session embedding scored against the items (3.16).

The official code builds every batch's graphs in numpy, one session at a
time. :func:`build_session_graphs` builds the whole batch with a handful of
tensor operations on the model's device instead.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from .base import SessionEncoder, padding_mask


class SessionGraphs(NamedTuple):
    """A batch of session graphs; ``n`` (the node axis) equals the padded width L."""

    node_items: torch.Tensor  # [B, n] item id of each node, 0 for empty nodes
    node_mask: torch.Tensor  # [B, n] True for real nodes
    alias: torch.Tensor  # [B, L] node of each position (padding -> an empty node)
    a_in: torch.Tensor  # [B, n, n] a_in[i, j] = edge(j -> i) / in-degree(i)
    a_out: torch.Tensor  # [B, n, n] a_out[i, j] = edge(i -> j) / out-degree(i)
    last_node: torch.Tensor  # [B] node of each session's last item


@torch.no_grad()
def build_session_graphs(
    items: torch.Tensor, lengths: torch.Tensor, dtype: torch.dtype = torch.float32
) -> SessionGraphs:
    """The graphs of a right-padded batch, built without a per-session loop.

    Follows the official SR-GNN construction: the nodes of a session are its
    distinct items in increasing id order (``np.unique``); an edge u -> v
    exists when v directly follows u, and a transition seen several times
    still counts once (the official code sets ``A[u][v] = 1``); a repeated
    item (u -> u) gives a self-loop. Incoming edges are normalised by the
    receiving node's in-degree, outgoing ones by the sending node's out-degree
    (zero degrees left as 1). The official code also turns padding into a
    node of item 0 without edges; here padding positions point at an empty
    node (id 0, no edges, masked), which changes nothing for the real nodes.
    """
    batch, width = items.shape
    valid = torch.arange(width, device=items.device) < lengths.unsqueeze(1)
    # sort each row with padding last; a new node starts wherever the id changes
    key = items.masked_fill(~valid, torch.iinfo(items.dtype).max)
    sorted_key, perm = key.sort(dim=1)
    starts = torch.ones_like(valid)
    starts[:, 1:] = sorted_key[:, 1:] != sorted_key[:, :-1]
    node_of_sorted = starts.cumsum(1) - 1
    alias = torch.empty_like(node_of_sorted).scatter_(1, perm, node_of_sorted)
    sorted_valid = valid.gather(1, perm)
    node_items = torch.zeros_like(items).scatter_(
        1, node_of_sorted, torch.where(sorted_valid, sorted_key, 0)
    )
    # edges between consecutive real positions; the rest go to a spare cell
    cell = alias[:, :-1] * width + alias[:, 1:]
    cell = torch.where(valid[:, 1:], cell, width * width)
    adj = torch.zeros(batch, width * width + 1, dtype=dtype, device=items.device)
    adj.scatter_(1, cell, 1.0)
    adj = adj[:, :-1].view(batch, width, width)  # adj[u, v] = 1 for u -> v
    a_in = adj.transpose(1, 2) / adj.sum(1).clamp(min=1).unsqueeze(2)
    a_out = adj / adj.sum(2, keepdim=True).clamp(min=1)
    last_node = alias.gather(1, (lengths - 1).unsqueeze(1)).squeeze(1)
    return SessionGraphs(node_items, node_items != 0, alias, a_in, a_out, last_node)


class SRGNN(SessionEncoder):
    """Hybrid session embedding ``s_h`` (Eq. 3.15) after ``step`` GNN rounds.

    ``step`` defaults to 1 as in the SR-GNN paper. The attention pools the
    node states of the session's *positions* (a repeated item counts once per
    occurrence), as the paper and the official code do; its weights are not
    normalised (Eq. 3.14) and are zero at padding positions.
    """

    name = "srgnn"
    label = "SR-GNN"
    no_one_pass_reason = ("the session graph of a prefix holds only that prefix's edges, and gated graph steps "
                          "mix every node with its neighbours, so each prefix's node states differ and need a pass "
                          "of their own")

    def __init__(self, n_items: int, dim: int = 100, sparse: bool = False, *, step: int = 1) -> None:
        super().__init__(n_items, dim, sparse)
        if step < 1:
            raise ValueError(f"SR-GNN needs at least one propagation step, got step={step}")
        self.step = step
        # Eq. 3.8: H for incoming and outgoing edges in one layer, then b
        self.edge = nn.Linear(dim, 2 * dim, bias=False)
        self.edge_bias = nn.Parameter(torch.empty(2 * dim))
        # Eqs. 3.9-3.11: W_z, W_r, W_o as one layer on a (its bias is the gate
        # bias of the official code, absent from the equations); U_z, U_r; U_o
        self.w_gates = nn.Linear(2 * dim, 3 * dim)
        self.u_gates = nn.Linear(dim, 2 * dim, bias=False)
        self.u_o = nn.Linear(dim, dim, bias=False)
        # Eq. 3.14: W1 v_n, W2 v_i + c, q; Eq. 3.15: W3
        self.w1 = nn.Linear(dim, dim, bias=False)
        self.w2 = nn.Linear(dim, dim, bias=True)
        self.q = nn.Linear(dim, 1, bias=False)
        self.w3 = nn.Linear(2 * dim, dim)
        self.reset_parameters()

    def propagate(self, g: SessionGraphs, v: torch.Tensor) -> torch.Tensor:
        """One gated graph step over node states ``v`` [B, n, d] (Eqs. 3.8-3.12)."""
        e_in, e_out = self.edge(v).chunk(2, dim=-1)
        a = torch.cat([torch.bmm(g.a_in, e_in), torch.bmm(g.a_out, e_out)], -1) + self.edge_bias
        wz, wr, wo = self.w_gates(a).chunk(3, dim=-1)
        uz, ur = self.u_gates(v).chunk(2, dim=-1)
        z = torch.sigmoid(wz + uz)  # Eq. 3.9
        r = torch.sigmoid(wr + ur)  # Eq. 3.10
        candidate = torch.tanh(wo + self.u_o(r * v))  # Eq. 3.11
        return v + z * (candidate - v)  # Eq. 3.12: (1 - z) v + z candidate

    def forward(
        self, items: torch.Tensor, lengths: torch.Tensor, return_attention: bool = False
    ):
        g = build_session_graphs(items, lengths, self.item_embedding.weight.dtype)
        v = self.item_embedding(g.node_items)  # v^0: [B, n, d]
        for _ in range(self.step):
            v = self.propagate(g, v)
        d = v.size(-1)
        seq = v.gather(1, g.alias.unsqueeze(-1).expand(-1, -1, d))  # [B, L, d]
        v_last = v.gather(1, g.last_node.view(-1, 1, 1).expand(-1, 1, d)).squeeze(1)
        # Eq. 3.14: alpha_i = q^T sigmoid(W1 v_n + W2 v_i + c), zero at padding
        alpha = self.q(torch.sigmoid(self.w1(v_last).unsqueeze(1) + self.w2(seq))).squeeze(-1)
        alpha = alpha.masked_fill(~padding_mask(items), 0.0)
        s_global = torch.einsum("bl,bld->bd", alpha, seq)  # Eq. 3.13
        session = self.w3(torch.cat([v_last, s_global], dim=-1))  # Eq. 3.15, s_l = v_n
        return (session, alpha) if return_attention else session
