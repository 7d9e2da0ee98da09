"""The per-source logQ corrections of sampled softmax (``--logq mixed`` and ``corrected``).

``"mixed"`` (mixed negative sampling, Yang et al., WWW 2020 Companion):
each candidate is corrected by the distribution of its own source. The
in-batch targets (the row's own positive included) arrive by the
training popularity ``p(i) = counts(i) / sum(counts)`` and get
``s_b . y_c - log p(c)``; the k sampled negatives get ``s_b . y_c -
log q(c)``. Each corrected term ``exp(s . y) / q_source`` estimates the
same sum over the catalogue, so no factor for the sources' sizes enters.
The loss is the same cross-entropy.

``"corrected"`` (Khrylchenko et al., "Correcting the LogQ Correction",
RecSys 2025, arXiv 2507.09331, as in the authors' code,
github.com/NonameUntitled/logq, ``train_mns_log_new.py``): the positive
is always in the softmax, never Monte-Carlo sampled, so it leaves the
sampled estimate of the denominator. With ``p_b`` the row's target and
``q_src`` the source of candidate ``j`` (``p`` for in-batch targets, the
sampler's ``q`` for the sampled ones), a negative (every candidate other
than ``p_b``) is drawn from ``q_src(j) / (1 - q_src(p_b))`` (the accidental
hits masked out), and

``z_bj = s_b . y_j - log(q_src(j) / (1 - q_src(p_b)))``,
``L_b = logsumexp_j z_bj - s_b . y_p`` (the positive uncorrected and out
of the denominator),
``w_b = sg(1 - P_b)`` with ``P_b = exp(s_b . y_p) / (exp(s_b . y_p) +
mean_j exp(z_bj))``, the model's estimated probability of the positive
(``sg``: no gradient), and the loss is ``mean_b w_b L_b``. Its gradient
is the full softmax's, ``(1 - P_b) (grad log Z_neg - grad s_b . y_p)``,
with ``Z_neg`` estimated by importance sampling. A row whose candidates
are all its own target has no negative and adds 0 (as in ``single``,
where its cross-entropy over the positive alone is 0). The authors' code
corrects every negative by the popularity; here each source keeps its
own distribution, as in ``mixed``.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from srs_core.scoring import item_vectors

from .sampler import NegativeSampler, counts_tensor


class SourcePopularity:
    """The training popularity ``p`` of the in-batch targets beside the
    sampler's ``q``, and the loss of ``logq`` (``"mixed"`` or
    ``"corrected"``) that corrects each candidate by its own source (module text).

    ``counts`` is the training frequency of every id 0..N; an in-batch target
    with a zero count is corrected as the least frequent counted item. The
    last ``k`` entries of ``negatives`` are the sampled ones; entries before
    them are further in-batch targets (the other ranks' rows under torchrun)."""

    def __init__(self, logq: str, sampler: NegativeSampler, counts: np.ndarray | torch.Tensor | None) -> None:
        if counts is None:
            raise ValueError(
                f"sampled_softmax with logq={logq!r} corrects the in-batch targets by their training popularity: "
                "it needs counts, the training frequency of every id 0..N (e.g. ProcessedDataset.item_counts()); "
                "or use logq='single' (--logq single)"
            )
        c = counts_tensor(counts, sampler.n_items)
        total = float(c[1:].sum())
        if total <= 0:
            raise ValueError(f"counts has no positive entry among items 1..N: logq={logq!r} has no popularity to use")
        pop = c / total
        pop[0] = 0.0
        log_pop = torch.log(pop)
        floor = float(log_pop[1:][pop[1:] > 0].min())
        self.logq, self.sampler = logq, sampler
        self.pop = pop.float().to(sampler.device)  # p(i) of ids 0..N (0 for padding)
        self.log_pop = log_pop.clamp(min=floor).float().to(sampler.device)  # zero counts at the least counted item's

    def loss(self, s: torch.Tensor, targets: torch.Tensor, embedding, negatives: torch.Tensor, l2: bool,
             related: torch.Tensor | None = None) -> torch.Tensor:
        """The loss of session vectors ``s`` (already as scored) against the batch's targets and ``negatives``;
        ``related`` candidates (another row of the row's session) are left out like accidental hits."""
        batch, k = targets.shape[0], self.sampler.k
        if negatives.numel() < k:
            raise ValueError(
                f"sampled_softmax with logq={self.logq!r} reads the last k = {k} negatives as the sampled ones; "
                f"got {negatives.numel()}"
            )
        cand = torch.cat([targets, negatives])  # [B' + k]: in-batch targets (this batch's first), then sampled
        n_batch = cand.numel() - k
        scores = s @ item_vectors(embedding, cand, l2).T
        log_q = torch.cat([self.log_pop[cand[:n_batch]], self.sampler.log_q_correction(cand[n_batch:])]).to(s.dtype)
        own = torch.arange(batch, device=targets.device)
        same = cand.unsqueeze(0) == targets.unsqueeze(1)  # [B, B' + k]: the row's own target, wherever it stands
        if related is not None:
            same = same | related
        if self.logq == "mixed":
            hit = same.clone()
            hit.diagonal().fill_(False)  # the row's own positive column stays
            return F.cross_entropy((scores - log_q).masked_fill(hit, -math.inf), own)
        # corrected: negatives drawn from q_src(j) / (1 - q_src(p_b)); the positive uncorrected, out of the denominator
        pos = scores.diagonal()
        q_pos = torch.stack([self.pop[targets], self.sampler.log_q(targets).exp()], 1).to(s.dtype)  # [B, 2]
        log_rest = torch.log1p(-q_pos.clamp(max=1.0 - 1e-6))  # log(1 - q_src(p_b)) of each source
        from_batch = torch.arange(cand.numel(), device=cand.device) < n_batch
        z = scores - log_q + torch.where(from_batch.unsqueeze(0), log_rest[:, :1], log_rest[:, 1:])
        z = z.masked_fill(same, -math.inf)
        n_neg = (~same).sum(1)
        has_neg = n_neg > 0
        z = torch.where(has_neg.unsqueeze(1), z, torch.zeros_like(z))  # a finite stand-in; such rows add 0 below
        per_row = torch.logsumexp(z, 1) - pos
        weight = torch.sigmoid(per_row - torch.log(n_neg.clamp(min=1).to(s.dtype))).detach()  # 1 - P_b
        return (weight * per_row * has_neg).mean()
