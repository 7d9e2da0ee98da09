"""The triplet loss against item embeddings (dissertation Eq. 4.2)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from srs_core.scoring import item_vectors, prepare_session

from .base import masked_mean
from .options import option
from .sampled import SampledLoss, SharingOptions
from .sampler import NegativeSampler


@dataclass(frozen=True)
class TripletOptions(SharingOptions):
    """The sampler's options and the margin."""

    margin: float = option(0.5, "triplet margin m", identity="always",
                           check=lambda v: None if math.isfinite(v) and v >= 0 else
                           f"margin must be a finite non-negative number, got {v}")


class Triplet(SampledLoss):
    """Eq. 4.2: triplet loss against item embeddings,
    ``max(0, m + ||s - y_p|| - ||s - y_n||)``.

    With k negatives per sample the loss of a sample is the mean over its k
    triplets (negatives equal to the target left out, module doc), then the
    mean over the batch. Distances are Euclidean (not squared), computed
    directly from the differences so the gradient stays finite at zero
    distance. The margin is not given in the dissertation; the default
    ``margin=0.5`` suits unit vectors under L2 (distances in [0, 2]). A
    ``score_scale`` S multiplies every distance by S, which is the same as
    dividing the margin by S.
    """

    name = "triplet"
    label = "triplet"
    colour = 2
    options = TripletOptions

    @classmethod
    def build(cls, settings, n_items, counts, device):
        return cls(cls.sampler(settings, n_items, counts, device), margin=settings.margin,
                   score_scale=settings.score_scale)

    def __init__(self, sampler: NegativeSampler, margin: float = 0.5, score_scale: float = 1.0) -> None:
        super().__init__(sampler, score_scale)
        if not math.isfinite(margin) or margin < 0:
            raise ValueError(f"margin must be a finite non-negative number, got {margin}")
        self.margin = float(margin)

    def compute(self, session, targets, embedding, negatives, l2):
        s = prepare_session(session, l2)  # unit vectors: the scale applies to the distances below
        if negatives.dim() == 1:
            d_pos = (s - item_vectors(embedding, targets, l2)).norm(dim=-1)
            y = item_vectors(embedding, negatives, l2)
            # ||s - y||^2 = |s|^2 + |y|^2 - 2 s.y as one [B, k] matmul, not a [B, k, d] difference
            sq = (s * s).sum(-1, keepdim=True) + (y * y).sum(-1).unsqueeze(0) - 2.0 * (s @ y.T)
            d_neg = sq.clamp(min=1e-12).sqrt()
            keep = negatives.unsqueeze(0) != targets.unsqueeze(1)
        else:
            ids = torch.cat([targets.unsqueeze(1), negatives], 1)
            dist = (s.unsqueeze(1) - item_vectors(embedding, ids, l2)).norm(dim=-1)  # [B, 1 + k]
            d_pos, d_neg = dist[:, 0], dist[:, 1:]
            keep = negatives != targets.unsqueeze(1)
        if self.score_scale != 1.0:  # S ||s - y||: the distance between the scaled vectors
            d_pos, d_neg = d_pos * self.score_scale, d_neg * self.score_scale
        hinge = F.relu(self.margin + d_pos.unsqueeze(1) - d_neg)
        return masked_mean(hinge, keep).mean()
