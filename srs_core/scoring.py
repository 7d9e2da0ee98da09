"""Comparing sessions with items: the one place L2 normalisation is applied.

Dissertation Section 4.2: with L2 on, session embeddings are normalised, and
item embeddings are normalised whenever they are compared with sessions (in
every loss and in evaluation), but not inside the models' aggregation.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def prepare_session(session: torch.Tensor, l2: bool) -> torch.Tensor:
    """Session embeddings as compared with items (unit length when ``l2``)."""
    return F.normalize(session, dim=-1) if l2 else session


def item_vectors(embedding: nn.Embedding, ids: torch.Tensor, l2: bool) -> torch.Tensor:
    """Look up item ids through the module (so a sparse table gets a sparse
    gradient), normalised when ``l2``."""
    vec = embedding(ids)
    return F.normalize(vec, dim=-1) if l2 else vec


def all_items(embedding: nn.Embedding, l2: bool, lo: int = 1, hi: int | None = None) -> torch.Tensor:
    """Candidate item vectors ``lo..hi-1`` (default: every item 1..N)."""
    w = embedding.weight[lo:hi]
    return F.normalize(w, dim=-1) if l2 else w
