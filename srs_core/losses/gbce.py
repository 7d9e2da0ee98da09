"""gBCE: generalised binary cross-entropy over sampled negatives (gSASRec, RecSys 2023)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch.nn.functional as F

from .ns import NegativeSampling
from .options import option
from .sampler import NegativeSampler, SamplerOptions


@dataclass(frozen=True)
class GBCEOptions(SamplerOptions):
    """The sampler's options, gBCE's calibration t and our constant logit offset."""

    gbce_t: float = option(0.75, "gbce: the calibration t in [0, 1] (0: plain BCE; default 0.75, the authors' "
                           "recommendation)", metavar="T")
    gbce_offset: bool = option(False, "gbce: add log(beta / k), the best constant score, to every logit, so that the k "
                               "negatives do not pull all scores down together (ours; the ranking is unchanged)",
                               action="store_true",
                               misuse="--gbce-offset shifts gbce's logits, not {loss!r}'s: use --loss gbce or drop it")


class GeneralisedBCE(NegativeSampling):
    """gBCE (not in the dissertation: Petrov & Macdonald, gSASRec, RecSys 2023):
    binary cross-entropy over the positive and k sampled negatives, with the
    positive's probability raised to the power ``beta``:

    ``loss = (beta softplus(-s.y_p) + sum_i softplus(s.y_ni)) / (1 + k)``, i.e.
    ``-log sig(s.y_p)^beta - sum_i log(1 - sig(s.y_ni))`` averaged over the
    1 + k terms, as the reference code averages over its logits.

    ``beta = alpha (t (1 - 1/alpha) + 1/alpha) = 1 - t (1 - alpha)`` with the
    sampling rate ``alpha = k / (N - 1)`` and the calibration ``t`` in [0, 1]:
    ``t = 0`` is plain BCE, ``t = 1`` gives ``beta = alpha``. The authors
    recommend ``k = 256, t = 0.75``. Accidental hits are left out of the sum
    and of the count, as in ``ns``.

    ``offset=True`` (ours, not the authors'; ``--gbce-offset``) adds the
    constant ``c = log(beta / k)`` to every logit, positive and negatives. A
    model whose scores are all equal minimises the loss at the score ``c``
    (``sig(c) ~ beta / (beta + k)``), so with the offset an untrained model
    starts there and the k negatives' terms no longer pull every score down
    together. Our encoders have no output bias: without the offset they can
    follow that pull only by turning every item vector away from every
    session, which is how gBCE collapses on them (notebook 07-beyond). The
    offset is the same for every item, so the ranking is unchanged and the
    evaluation, which scores without it, is too: it is a prior, like the bias
    initialisation of Lin et al. (focal loss, ICCV 2017).
    """

    name = "gbce"
    label = "gBCE"
    colour = 4
    options = GBCEOptions
    recent = True
    #: The authors' recommended setting (Petrov & Macdonald 2023).
    authors_setting: ClassVar[dict] = {"negatives": 256, "gbce_t": 0.75}

    @classmethod
    def build(cls, settings, n_items, counts, device):
        return cls(cls.sampler(settings, n_items, counts, device), t=settings.gbce_t,
                   score_scale=settings.score_scale, offset=settings.gbce_offset)

    @classmethod
    def describe(cls, settings):
        """gBCE always names its k; then t where it is not the authors' 0.75, and the offset."""
        parts = super().describe(settings, always_k=True)
        if float(settings.gbce_t) != 0.75:
            parts.append(f"t={float(settings.gbce_t):g}")
        if settings.gbce_offset:
            parts.append("offset")
        return parts

    def __init__(self, sampler: NegativeSampler, t: float = 0.75, score_scale: float = 1.0,
                 offset: bool = False) -> None:
        super().__init__(sampler, score_scale)
        if not (math.isfinite(t) and 0.0 <= t <= 1.0):
            raise ValueError(f"the gBCE calibration t (--gbce-t) must lie in [0, 1], got {t}")
        if sampler.n_items < 2:
            raise ValueError("gBCE needs at least 2 items")
        self.t = float(t)
        alpha = sampler.k / (sampler.n_items - 1)
        self.beta = 1.0 - self.t * (1.0 - alpha)  # = alpha (t (1 - 1/alpha) + 1/alpha), without its rounding
        self.offset = math.log(self.beta / sampler.k) if offset else 0.0

    def compute(self, session, targets, embedding, negatives, l2):
        pos, neg, keep = self.scores(session, targets, embedding, negatives, l2)
        if self.offset:
            pos, neg = pos + self.offset, neg + self.offset
        keep = keep.to(neg.dtype)
        total = self.beta * F.softplus(-pos) + (F.softplus(neg) * keep).sum(-1)
        return (total / (1.0 + keep.sum(-1))).mean()
