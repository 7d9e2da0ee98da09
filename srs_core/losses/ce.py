"""Full softmax cross-entropy over every item: the traditional method (Eqs. 2.15-2.16)."""
from __future__ import annotations

import torch.nn.functional as F

from srs_core.scoring import all_items

from .base import Loss


class CrossEntropy(Loss):
    """Eqs. 2.15-2.16: softmax cross-entropy over all N items (the traditional method).

    ``scores = prepare_session(s) @ all_items(E, l2).T``; with L2 on these are
    cosines in [-1, 1]. The dissertation's experiment III applied CE with L2
    as is (``score_scale=1``); a larger ``score_scale`` (an extension) is the
    inverse of a softmax temperature.
    Its gradient reaches every item row: use it with the dense optimizer.
    """

    name = "ce"
    label = "cross-entropy"
    colour = 3
    dense_gradient = True
    dissertation_l2 = False

    def compute(self, session, targets, embedding, negatives, l2):
        if negatives is not None:
            raise ValueError("full cross-entropy uses every item; it takes no negatives")
        scores = self.session(session, l2) @ all_items(embedding, l2).T
        return F.cross_entropy(scores, targets - 1)
