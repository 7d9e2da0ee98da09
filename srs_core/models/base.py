"""The session-encoder interface every model implements.

A model owns the item embedding table and maps a right-padded batch of
sessions to one vector per session in the item-embedding space. Scores are
always ``session @ items.T`` over items 1..N (row 0 is padding and is never a
candidate). Losses, negative sampling, L2 normalisation and evaluation live
outside the models (see :mod:`srs_core.scoring`, :mod:`srs_core.losses`).
"""
from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import nn


class SessionEncoder(nn.Module):
    """Base class: ``forward(items [B, L], lengths [B]) -> [B, dim]``.

    ``items`` holds ids 1..N left-aligned, 0 is padding after position
    ``lengths[b] - 1``; every length is at least 1.
    """

    name: ClassVar[str] = "base"
    #: How tables and figures name the model.
    label: ClassVar[str] = "base"
    #: Whether :meth:`forward_all` gives every prefix's vector in one pass
    #: (the ``sessions`` batching); why not, where it cannot.
    one_pass: ClassVar[bool] = False
    no_one_pass_reason: ClassVar[str] = ""

    def __init__(self, n_items: int, dim: int = 100, sparse: bool = False) -> None:
        super().__init__()
        if n_items < 1:
            raise ValueError(f"n_items must be positive, got {n_items}")
        self.n_items = n_items
        self.dim = dim
        self.sparse = sparse
        self.item_embedding = nn.Embedding(n_items + 1, dim, padding_idx=0, sparse=sparse)

    def reset_parameters(self) -> None:
        """Uniform(-1/sqrt(d), 1/sqrt(d)) for every weight, as the official
        SR-GNN code does; the padding row is zero. Subclasses call this at the
        end of their constructor."""
        stdv = 1.0 / math.sqrt(self.dim)
        for p in self.parameters():
            nn.init.uniform_(p, -stdv, stdv)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()

    @property
    def item_weight(self) -> torch.Tensor:
        """Embeddings of the candidate items 1..N (a view, row i-1 is item i)."""
        return self.item_embedding.weight[1:]

    def forward(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def forward_all(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``[B, L, dim]``: at position ``t`` the vector that :meth:`forward`
        gives the prefix ``items[b, :t + 1]`` (padding positions are
        undefined). One pass over each session instead of one per prefix."""
        raise NotImplementedError(f"{self.label} has no one-pass form: {self.no_one_pass_reason}")


def padding_mask(items: torch.Tensor) -> torch.Tensor:
    """True where ``items`` holds a real item."""
    return items != 0


def last_item(items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The id of each session's last item, ``[B]``."""
    return items.gather(1, (lengths - 1).unsqueeze(1)).squeeze(1)


def gather_last(states: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``states[b, lengths[b] - 1]`` for a ``[B, L, d]`` tensor."""
    idx = (lengths - 1).view(-1, 1, 1).expand(-1, 1, states.size(-1))
    return states.gather(1, idx).squeeze(1)


def causal_mask(items: torch.Tensor) -> torch.Tensor:
    """``[B, L, L]``: True at ``(t, j)`` where ``j <= t`` and ``items[b, j]`` is
    real, the positions prefix ``t`` attends over."""
    length = items.shape[1]
    lower = torch.ones(length, length, dtype=torch.bool, device=items.device).tril()
    return lower.unsqueeze(0) & padding_mask(items).unsqueeze(1)
