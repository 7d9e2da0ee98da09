"""NARM: neural attentive session-based recommendation (Li et al., 2017).

Dissertation Section 3.2, Eqs. 3.1-3.3. A GRU encodes the session; the
*global* encoder keeps its last state, the *local* encoder attends over every
state with the last one as context; the two are concatenated and the
bilinear map B carries the result into the item-embedding space.
"""
from __future__ import annotations


import torch
from torch import nn

from .base import SessionEncoder, causal_mask, gather_last, padding_mask


class NARM(SessionEncoder):
    """Session embedding ``B c_t`` with ``c_t = [c_g; c_l]`` (Eq. 3.3).

    The score of item i is ``emb_i^T B c_t``, i.e. this embedding dotted with
    the item's embedding. Defaults follow the NARM paper (hidden size 100,
    dropout 0.25 on the item embeddings and 0.5 on ``c_t``); the attention
    weights are not normalised, as in Eq. 3.2 and the authors' code.
    """

    name = "narm"
    label = "NARM"
    one_pass = True

    def __init__(
        self,
        n_items: int,
        dim: int = 100,
        sparse: bool = False,
        *,
        hidden_size: int = 100,
        emb_dropout: float = 0.25,
        ctx_dropout: float = 0.5,
    ) -> None:
        super().__init__(n_items, dim, sparse)
        self.hidden_size = hidden_size
        self.emb_dropout = nn.Dropout(emb_dropout)
        self.gru = nn.GRU(dim, hidden_size, num_layers=1, batch_first=True)
        self.a1 = nn.Linear(hidden_size, hidden_size, bias=False)  # applied to h_t
        self.a2 = nn.Linear(hidden_size, hidden_size, bias=False)  # applied to h_j
        self.v = nn.Linear(hidden_size, 1, bias=False)
        self.ctx_dropout = nn.Dropout(ctx_dropout)
        self.b = nn.Linear(2 * hidden_size, dim, bias=False)
        self.reset_parameters()

    def forward(
        self, items: torch.Tensor, lengths: torch.Tensor, return_attention: bool = False
    ):
        states, _ = self.gru(self.emb_dropout(self.item_embedding(items)))  # [B, L, H]
        c_global = gather_last(states, lengths)  # c_t^g = h_t
        # Eq. 3.2: alpha_tj = v^T sigmoid(A1 h_t + A2 h_j), zero at padding
        alpha = self.v(torch.sigmoid(self.a1(c_global).unsqueeze(1) + self.a2(states))).squeeze(-1)
        alpha = alpha.masked_fill(~padding_mask(items), 0.0)
        c_local = torch.einsum("bl,blh->bh", alpha, states)  # Eq. 3.1
        session = self.b(self.ctx_dropout(torch.cat([c_global, c_local], dim=-1)))  # Eq. 3.3
        return (session, alpha) if return_attention else session

    def forward_all(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Every prefix at once: its global state is the GRU state at ``t``,
        its local one attends over the states ``j <= t`` (a causal mask)."""
        states, _ = self.gru(self.emb_dropout(self.item_embedding(items)))  # [B, L, H]
        # alpha[b, t, j] = v^T sigmoid(A1 h_t + A2 h_j), zero where j > t or j is padding
        alpha = self.v(torch.sigmoid(self.a1(states).unsqueeze(2) + self.a2(states).unsqueeze(1))).squeeze(-1)
        alpha = alpha.masked_fill(~causal_mask(items), 0.0)
        c_local = torch.einsum("btj,bjh->bth", alpha, states)
        return self.b(self.ctx_dropout(torch.cat([states, c_local], dim=-1)))
