"""Sampled softmax with a logQ correction, single or per source (not in the dissertation)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from srs_core.scoring import item_vectors

from .logq import SourcePopularity
from .options import one_of, option
from .sampled import SampledLoss
from .sampler import NegativeSampler, SamplerOptions

#: ``sampled_softmax``'s logQ corrections (``--logq``): see :class:`SampledSoftmax`.
LOGQ_MODES = ("single", "mixed", "corrected")


@dataclass(frozen=True)
class SampledSoftmaxOptions(SamplerOptions):
    """The sampler's options (the batch always shares its negatives) and the logQ correction."""

    logq: str = option("single", "sampled_softmax's logQ correction: single, the sampler's q for every candidate "
                       "(default); mixed, in-batch targets by their training popularity and sampled negatives by q "
                       "(mixed negative sampling); corrected, as mixed with the positive uncorrected and out of the "
                       "denominator, weighted by 1 - its estimated probability (Khrylchenko et al. 2025)",
                       check=one_of("logQ correction", "--logq", LOGQ_MODES), extension=lambda v: v != "single",
                       choices=list(LOGQ_MODES),
                       misuse="--logq {value} (logq={value!r}) corrects sampled_softmax's logits, not {loss!r}'s: use "
                       "--loss sampled_softmax or leave --logq single")


class SampledSoftmax(SampledLoss):
    """Sampled softmax with logQ correction (not in the dissertation: Bengio &
    Senecal 2008; Yi et al. 2019; the official GRU4Rec).

    Candidates for every row: the batch's B targets followed by k negatives
    shared by the batch. A candidate equal to the row's target, other than
    the row's own positive column, is an accidental hit and is masked to
    ``-inf``. How the logits are corrected is ``logq`` (``--logq``):

    ``"single"`` (the default, the behaviour before the option existed):
    ``logit(b, c) = s_b . y_c - log q(c)`` for every candidate, the positive
    included, where ``q`` is the sampler's distribution (uniform or
    popularity^alpha) for both the sampled negatives and the in-batch targets
    (in-batch targets arrive roughly by popularity; using the same q keeps one
    well-defined correction). The loss is the cross-entropy with the row's
    own column (``b``) as the label.

    ``"mixed"`` (Yang et al., WWW 2020) and ``"corrected"`` (Khrylchenko et
    al., RecSys 2025) correct each candidate by the distribution of its own
    source: :class:`srs_core.losses.logq.SourcePopularity` gives their
    formulas.

    ``mixed`` and ``corrected`` need ``counts`` (the training frequency of
    every id 0..N); an in-batch target with a zero count is corrected as the
    least frequent counted item. The last ``k`` entries of ``negatives`` are
    the sampled ones; entries before them are further in-batch targets (the
    other ranks' rows under torchrun, :meth:`shard_negatives`).
    """

    name = "sampled_softmax"
    label = "sampled softmax (logQ)"
    colour = 1
    options = SampledSoftmaxOptions
    shared_negatives = True

    @classmethod
    def build(cls, settings, n_items, counts, device):
        return cls(cls.sampler(settings, n_items, counts, device), score_scale=settings.score_scale,
                   logq=settings.logq, counts=counts)

    @classmethod
    def cost_key(cls, settings):
        """The sampler's part, and whether logQ is corrected per source."""
        return super().cost_key(settings) + (settings.logq != "single",)

    @classmethod
    def describe(cls, settings):
        parts = super().describe(settings)
        return parts + ([f"logQ {settings.logq}"] if settings.logq != "single" else [])

    @classmethod
    def is_recent(cls, settings):
        """A per-source logQ is published since the dissertation."""
        return settings.logq != "single"

    def __init__(self, sampler: NegativeSampler, score_scale: float = 1.0, logq: str = "single",
                 counts: np.ndarray | torch.Tensor | None = None) -> None:
        super().__init__(sampler, score_scale)
        if logq not in LOGQ_MODES:
            raise ValueError(f"unknown logQ correction {logq!r} (--logq); choose one of {', '.join(LOGQ_MODES)}")
        self.logq = logq
        self._sources = None if logq == "single" else SourcePopularity(logq, sampler, counts)

    def shard_negatives(self, targets, negatives, lo, hi):
        """One process scores every row against all B targets + k negatives;
        the other rows' targets join the shared candidates (same set, the same
        accidental-hit mask, the row's own target stays its label)."""
        return torch.cat([targets[:lo], targets[hi:], super().shard_negatives(targets, negatives, lo, hi)])

    def compute(self, session, targets, embedding, negatives, l2):
        if negatives.dim() != 1:
            raise ValueError(
                f"sampled_softmax uses negatives shared by the batch, shape [k]; got {tuple(negatives.shape)}"
            )
        if self._sources is not None:
            return self._sources.loss(self.session(session, l2), targets, embedding, negatives, l2,
                                      related=self.same_session(targets.shape[0], targets.shape[0] + negatives.numel()))
        batch = targets.shape[0]
        s = self.session(session, l2)
        cand = torch.cat([targets, negatives])  # [B + k]
        logits = s @ item_vectors(embedding, cand, l2).T - self.sampler.log_q_correction(cand).to(s.dtype)
        own = torch.arange(batch, device=targets.device)
        hit = cand.unsqueeze(0) == targets.unsqueeze(1)
        # (b, b) is the row's own positive: keep it. A plain fill, no indexed
        # write (which would copy a host value and break CUDA-graph capture).
        hit.diagonal().fill_(False)
        related = self.same_session(batch, cand.numel())  # a batch of whole sessions: its own other clicks
        logits = logits.masked_fill(hit if related is None else hit | related, -math.inf)
        return F.cross_entropy(logits, own)
