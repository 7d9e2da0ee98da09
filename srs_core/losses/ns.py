"""Negative sampling with a mean noise term (dissertation Eq. 4.1)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from srs_core.scoring import item_vectors, row_scores

from .base import masked_mean
from .sampled import SampledLoss, SharingOptions


class NegativeSampling(SampledLoss):
    """Eq. 4.1: negative sampling with a mean noise term,
    ``-(log sig(s.y_p) + 1/k sum_i log sig(-s.y_ni))``, averaged over the batch.

    ``negatives`` is ``[B, k]`` (per sample) or ``[k]`` (shared by the batch).
    Negatives equal to the row's target are left out of the mean (module doc).
    """

    name = "ns"
    label = "negative sampling"
    colour = 0
    options = SharingOptions

    def scores(self, session, targets, embedding, negatives, l2):
        """``(positive [B], negatives [B, k], keep [B, k])`` scores of the
        session vectors; ``keep`` is False at accidental hits."""
        s = self.session(session, l2)
        if negatives.dim() == 1:
            pos = (s * item_vectors(embedding, targets, l2)).sum(-1)
            neg = s @ item_vectors(embedding, negatives, l2).T
            keep = negatives.unsqueeze(0) != targets.unsqueeze(1)
        else:
            ids = torch.cat([targets.unsqueeze(1), negatives], 1)  # one lookup [B, 1 + k, d]
            scores = row_scores(embedding, ids, s, l2)
            pos, neg = scores[:, 0], scores[:, 1:]
            keep = negatives != targets.unsqueeze(1)
        return pos, neg, keep

    def compute(self, session, targets, embedding, negatives, l2):
        pos, neg, keep = self.scores(session, targets, embedding, negatives, l2)
        noise = masked_mean(F.logsigmoid(-neg), keep)
        return -(F.logsigmoid(pos) + noise).mean()
