"""STAMP: short-term attention/memory priority model (Liu et al., 2018).

Dissertation Section 3.3, Eqs. 3.4-3.7. Attention over the session's item
embeddings, with the last item and the session mean as context, gives the
general interest ``m_a``; the last item ``x_t`` is the current interest. Two
feed-forward layers map them to ``h_s`` and ``h_t``.

Where the sigmoid of Eq. 3.6 goes: the dissertation scores item i as
``sigmoid(<h_s, h_t, x_i>)``. Here the model returns ``h_s * h_t`` and the
score is the raw trilinear product ``<h_s, h_t, x_i> = (h_s * h_t) . x_i``
(Eq. 3.7); whatever squashing a loss wants (softmax for cross-entropy, the
sigmoid of negative sampling) is applied by the loss, outside the model.
"""
from __future__ import annotations


import torch
from torch import nn

from .base import SessionEncoder, causal_mask, gather_last, padding_mask


class STAMP(SessionEncoder):
    """Session embedding ``h_s * h_t`` (the trilinear product of Eq. 3.7)."""

    name = "stamp"
    label = "STAMP"
    one_pass = True

    def __init__(self, n_items: int, dim: int = 100, sparse: bool = False) -> None:
        super().__init__(n_items, dim, sparse)
        self.w0 = nn.Linear(dim, 1, bias=False)
        self.w1 = nn.Linear(dim, dim, bias=False)  # applied to every x_i
        # W2 x_t + W3 m_s + b_a as one layer over the concatenation [x_t; m_s]
        self.w23 = nn.Linear(2 * dim, dim, bias=True)
        self.mlp_a = nn.Linear(dim, dim)  # general interest -> h_s
        self.mlp_b = nn.Linear(dim, dim)  # current interest -> h_t
        self.reset_parameters()

    def forward(
        self, items: torch.Tensor, lengths: torch.Tensor, return_attention: bool = False
    ):
        mask = padding_mask(items)
        x = self.item_embedding(items)  # [B, L, d]; padding rows are 0
        x_t = gather_last(x, lengths)  # the last item's embedding
        m_s = x.sum(1) / lengths.unsqueeze(1).to(x.dtype)  # mean over real items
        context = self.w23(torch.cat([x_t, m_s], dim=-1)).unsqueeze(1)
        # Eq. 3.4: alpha_i = W0 sigmoid(W1 x_i + W2 x_t + W3 m_s + b_a)
        alpha = self.w0(torch.sigmoid(self.w1(x) + context)).squeeze(-1)
        alpha = alpha.masked_fill(~mask, 0.0)
        m_a = torch.einsum("bl,bld->bd", alpha, x)  # Eq. 3.5
        h_s = torch.tanh(self.mlp_a(m_a))
        h_t = torch.tanh(self.mlp_b(x_t))
        session = h_s * h_t  # Eqs. 3.6-3.7 without the sigmoid (see module doc)
        return (session, alpha) if return_attention else session

    def forward_all(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Every prefix at once: its last item is ``x_t``, its mean a running
        mean, and its attention runs over the items ``i <= t`` (a causal mask)."""
        x = self.item_embedding(items)  # [B, L, d]
        count = torch.arange(1, items.shape[1] + 1, device=x.device, dtype=x.dtype).view(1, -1, 1)
        m_s = x.cumsum(1) / count  # the mean of each prefix
        context = self.w23(torch.cat([x, m_s], dim=-1))  # [B, L, d]: W2 x_t + W3 m_s + b_a per prefix t
        alpha = self.w0(torch.sigmoid(self.w1(x).unsqueeze(1) + context.unsqueeze(2))).squeeze(-1)  # [B, t, i]
        alpha = alpha.masked_fill(~causal_mask(items), 0.0)
        m_a = torch.einsum("bti,bid->btd", alpha, x)
        return torch.tanh(self.mlp_a(m_a)) * torch.tanh(self.mlp_b(x))
