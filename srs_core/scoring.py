"""Comparing sessions with items: the one place L2 normalisation is applied.

Dissertation Section 4.2: with L2 on, session embeddings are normalised, and
item embeddings are normalised whenever they are compared with sessions (in
every loss and in evaluation), but not inside the models' aggregation. Our
extension ``score_scale`` multiplies the normalised session vector, so it
scales every L2 score (as NISER's scale factor does for SR-GNN).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def prepare_session(session: torch.Tensor, l2: bool, score_scale: float = 1.0) -> torch.Tensor:
    """Session embeddings as compared with items: unit length when ``l2``,
    then multiplied by ``score_scale`` (an extension, not in the dissertation).

    With L2 every score ``s . y`` is a cosine in [-1, 1]; a scale ``S`` makes it
    ``S cos`` in [-S, S]. (The triplet loss, which compares distances, scales
    the distance between the unit vectors instead: see ``Triplet``.) The ranking of items is the same for every ``S > 0``; only the
    losses see the difference. ``S = 1`` is the dissertation's setting.
    """
    if score_scale != 1.0 and not l2:
        raise ValueError(f"score_scale={score_scale} only applies to L2-normalised scores; pass l2=True "
                         "(--l2) or leave the scale at 1")
    if not l2:
        return session
    s = F.normalize(session, dim=-1)
    return s * score_scale if score_scale != 1.0 else s


def item_vectors(embedding: nn.Embedding, ids: torch.Tensor, l2: bool) -> torch.Tensor:
    """Look up item ids through the module (so a sparse table gets a sparse
    gradient), normalised when ``l2``."""
    vec = embedding(ids)
    return F.normalize(vec, dim=-1) if l2 else vec


def row_scores(embedding: nn.Embedding, ids: torch.Tensor, session: torch.Tensor, l2: bool) -> torch.Tensor:
    """``[B, m]`` scores of each session ``[B, d]`` against its own rows
    ``ids [B, m]``: ``s . y`` or, with ``l2``, ``s . y / max(||y||, eps)``.

    Equal to ``bmm(item_vectors(embedding, ids, l2), s)`` but divides the
    ``[B, m]`` scores by the row norms instead of normalising the ``[B, m, d]``
    gathered rows, which is most of a sampled loss's step at small catalogues
    (same value up to float rounding; F.normalize's eps = 1e-12)."""
    vec = embedding(ids)
    raw = torch.bmm(vec, session.unsqueeze(-1)).squeeze(-1)
    return raw / vec.norm(dim=-1).clamp(min=1e-12) if l2 else raw


def all_items(embedding: nn.Embedding, l2: bool, lo: int = 1, hi: int | None = None) -> torch.Tensor:
    """Candidate item vectors ``lo..hi-1`` (default: every item 1..N)."""
    w = embedding.weight[lo:hi]
    return F.normalize(w, dim=-1) if l2 else w
