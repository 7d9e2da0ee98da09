"""GRU4Rec, in the simplified form the dissertation trains (Section 4.4).

The original model (Hidasi et al., 2016; dissertation Section 3.1) stacks GRU
and feed-forward layers and trains with *session-parallel* mini-batches,
carrying each session's hidden state from one event to the next. Here, as in
the dissertation's experiments, it keeps a single GRU layer, and batches are
right-padded prefixes of sessions (one augmented sample per row, like the
other models), not session-parallel streams.
"""
from __future__ import annotations


import torch
from torch import nn

from .base import SessionEncoder, gather_last


class GRU4Rec(SessionEncoder):
    """Embedding -> one GRU layer -> last valid hidden state -> linear map to d.

    The GRU reads the padded batch left to right, so the state at position
    ``lengths[b] - 1`` depends only on the real items before it: padding after
    a session can never change its embedding, and no packing is needed.
    """

    name = "gru4rec"
    label = "GRU4Rec"
    one_pass = True

    def __init__(
        self,
        n_items: int,
        dim: int = 100,
        sparse: bool = False,
        *,
        hidden_size: int = 100,
    ) -> None:
        super().__init__(n_items, dim, sparse)
        self.hidden_size = hidden_size
        self.gru = nn.GRU(dim, hidden_size, num_layers=1, batch_first=True)
        # projects the final state into the item-embedding space, so that
        # scores are dot products with the item embeddings
        self.project = nn.Linear(hidden_size, dim)
        self.reset_parameters()

    def forward(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        states, _ = self.gru(self.item_embedding(items))  # [B, L, H]
        return self.project(gather_last(states, lengths))

    def forward_all(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The GRU's state after each item is the state of that prefix."""
        states, _ = self.gru(self.item_embedding(items))
        return self.project(states)
