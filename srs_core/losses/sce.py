"""SCE: cross-entropy over the hard negatives of random-projection buckets (not in the dissertation)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from srs_core.scoring import all_items, item_vectors

from .base import Loss
from .options import LossOptions, at_least_one, option

_SCE_MISUSE = "--sce-buckets and --sce-bucket-size configure --loss sce, not {loss!r}: leave them at their defaults"


@dataclass(frozen=True)
class SCEOptions(LossOptions):
    """The bucketing: how many random bucket vectors, and how many sessions and items each takes."""

    sce_buckets: int = option(8, "sce: the number of random bucket vectors per batch (default 8)", identity="own",
                              check=at_least_one("sce_buckets", "--sce-buckets"), misuse=_SCE_MISUSE, metavar="NB")
    sce_bucket_size: int = option(256, "sce: sessions and items per bucket, clamped to the batch and the catalogue "
                                  "(default 256)", identity="own",
                                  check=at_least_one("sce_bucket_size", "--sce-bucket-size"), misuse=_SCE_MISUSE,
                                  metavar="BS")


class ScalableCrossEntropy(Loss):
    """SCE, scalable cross-entropy (not in the dissertation: Mezentsev et al.,
    "Scalable Cross-Entropy Loss for Sequential Recommendations with Large
    Item Catalogs", RecSys 2024, arXiv 2409.18721; reference code: RePlay,
    ``replay/models/nn/loss/sce.py``).

    Cross-entropy over the hard negatives that a random-projection bucketing
    finds (an approximate maximum-inner-product search). Per batch,
    ``n_buckets`` Gaussian vectors ``w_j`` (``[n_buckets, d]``, drawn by
    :meth:`draw` from the step's generator) each take the ``bucket_size``
    sessions of the batch and the ``bucket_size`` items of the whole table
    (rows 1..N) with the largest inner products ``w_j . s_b`` and ``w_j .
    y_i``: sessions and items that point the same way, whose scores dominate
    the softmax. The selection uses the scoring vectors (L2-normalised and
    scaled as in every loss) and takes no gradient. Bucket j gives each of
    its sessions b, with target p,

    ``ce_j(b) = log(exp(s_b . y_p) + sum_{i in bucket j, i != p} exp(s_b . y_i)) - s_b . y_p``

    (selected items equal to ``p`` are accidental hits and are masked; the
    positive's column is added once). Reduction, as RePlay's: a session in
    several buckets keeps its largest ``ce_j`` (its hardest negatives), and
    the loss is the mean over the sessions that at least one bucket took. A
    session in no bucket adds nothing this step (no value, no gradient),
    rather than a cross-entropy over its positive alone, which would be 0 and
    only dilute the mean. ``bucket_size`` is clamped to B for the sessions and
    to N for the items, so with one bucket and ``bucket_size >= max(B, N)``
    this is full cross-entropy.

    Differences from RePlay: one ``bucket_size`` for sessions and items
    (RePlay: ``bucket_size_x``, ``bucket_size_y``); no ``mix_x`` option; the
    bucket vectors are not scaled by ``d ** -0.25`` (the top-k is the same);
    RePlay leaves out sessions whose loss is exactly 0 as "not selected",
    here the selection itself is tracked.

    ``compute(session, targets, embedding, buckets, l2)`` takes the bucket
    vectors in place of ``negatives``. Items are looked up only through
    :func:`~srs_core.scoring.item_vectors` (the targets and the selected
    rows), so the item table's gradient touches only those rows and every
    optimizer works (dense, sparse, sparse_fast); the selection reads the
    whole table without gradient, ``n_buckets x N x d`` multiply-adds per
    step. Not for CUDA graphs or torchrun (see
    :func:`srs_core.training.graph.graph_support` and ``data_parallel``): a
    bucket takes the top sessions of the whole batch, which one rank's
    shard cannot see.
    """

    name = "sce"
    label = "scalable CE (SCE)"
    colour = 8
    options = SCEOptions
    data_parallel = False
    recent = True

    @classmethod
    def build(cls, settings, n_items, counts, device):
        return cls(settings.sce_buckets, settings.sce_bucket_size, score_scale=settings.score_scale, device=device)

    @classmethod
    def graph_reason(cls, settings):
        return ("the sce loss draws float bucket vectors, not the negative ids the graphed step keeps in its static "
                "buffers, and its graphed step has not been checked on a GPU; train it eagerly (--graph off, or auto, "
                "which runs it eagerly)")

    @classmethod
    def cost_key(cls, settings):
        return (bool(settings.l2), int(settings.sce_buckets), int(settings.sce_bucket_size))

    @classmethod
    def describe(cls, settings):
        size = (int(settings.sce_buckets), int(settings.sce_bucket_size))
        return [f"{size[0]}x{size[1]} buckets"] if size != (8, 256) else []

    def __init__(self, n_buckets: int = 8, bucket_size: int = 256, score_scale: float = 1.0,
                 device: torch.device | str = "cpu") -> None:
        super().__init__(score_scale=score_scale)
        if isinstance(n_buckets, bool) or int(n_buckets) != n_buckets or n_buckets < 1:
            raise ValueError(f"sce needs at least one bucket (--sce-buckets), got {n_buckets}")
        if isinstance(bucket_size, bool) or int(bucket_size) != bucket_size or bucket_size < 1:
            raise ValueError(f"sce's bucket size (--sce-bucket-size) must be a positive integer, got {bucket_size}")
        self.n_buckets = int(n_buckets)
        self.bucket_size = int(bucket_size)
        self.device = torch.device(device)

    def draw(self, batch_size, dim, generator=None):
        """``n_buckets`` fresh Gaussian bucket vectors ``[n_buckets, dim]``."""
        return torch.randn((self.n_buckets, int(dim)), generator=generator, device=self.device)

    def compute(self, session, targets, embedding, negatives, l2):
        buckets = negatives
        if buckets is None or buckets.dim() != 2 or buckets.shape[1] != session.shape[-1]:
            got = None if buckets is None else tuple(buckets.shape)
            raise ValueError(
                f"sce takes its bucket vectors [n_buckets, d = {session.shape[-1]}] in place of negatives, got {got}: "
                "call the loss (it draws them) or pass loss.draw(batch_size, d, generator)"
            )
        s = self.session(session, l2)
        batch, n_items = s.shape[0], embedding.num_embeddings - 1
        size_x, size_y = min(self.bucket_size, batch), min(self.bucket_size, n_items)
        pos = (s * item_vectors(embedding, targets, l2)).sum(-1)  # [B]
        with torch.no_grad():  # which sessions and items share a bucket: no gradient through the choice
            w = buckets.to(device=s.device, dtype=s.dtype)
            top_x = torch.topk(w @ s.T, size_x, dim=1).indices  # [n_b, size_x] rows of the batch
            top_y = torch.topk(w @ all_items(embedding, l2).T, size_y, dim=1).indices + 1  # [n_b, size_y] item ids
        neg = torch.bmm(s[top_x], item_vectors(embedding, top_y, l2).transpose(1, 2))  # [n_b, size_x, size_y]
        neg = neg.masked_fill(targets[top_x].unsqueeze(-1) == top_y.unsqueeze(1), -math.inf)
        p = pos[top_x]
        ce = torch.logsumexp(torch.cat([p.unsqueeze(-1), neg], -1), -1) - p  # [n_b, size_x]
        rows = top_x.flatten()
        per_session = torch.zeros_like(pos).scatter_reduce(0, rows, ce.flatten(), "amax", include_self=False)
        taken = torch.zeros(batch, dtype=s.dtype, device=s.device).index_fill(0, rows, 1.0)
        return (per_session * taken).sum() / taken.sum()
