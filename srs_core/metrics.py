"""Full-ranking metrics with one explicit tie rule.

Tie rule (pessimistic): the rank of the target is the number of candidate
items whose score is greater than *or equal to* the target's score, the
target included. A scorer that gives every item the same score therefore
ranks every target last (rank N) and earns nothing, instead of rank 1.

P@K (= HR@K) is 1 when rank <= K; MRR@K is 1/rank when rank <= K, else 0
(dissertation Section 3.5 and Section 4.6).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


def ranks_from_scores(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Ranks of ``targets`` (column indices) in a full ``[B, N]`` score matrix."""
    target_scores = scores.gather(1, targets.view(-1, 1))
    return (scores >= target_scores).sum(dim=1)


def count_at_least(scores: torch.Tensor, target_scores: torch.Tensor, target_cols: torch.Tensor) -> torch.Tensor:
    """For one chunk of columns: how many *non-target* items score >= the target.

    ``target_cols`` holds each row's target column inside this chunk, or -1
    when the target lies elsewhere. Excluding the target's own column (and
    adding 1 for it once, see :func:`RankAccumulator`) keeps the rank exact
    even when the target score was computed by a different kernel.
    """
    ge = scores >= target_scores.view(-1, 1)
    # the target's own comparison, where the target lies in this chunk; no
    # data-dependent indexing, so a GPU never waits on the host here
    own = ge.gather(1, target_cols.clamp(min=0).view(-1, 1)).squeeze(1) & (target_cols >= 0)
    return ge.sum(dim=1) - own.long()


@dataclass
class RankAccumulator:
    """Accumulates hits and reciprocal ranks over batches of ranks."""

    k: int = 20
    n: int = 0
    hits: float = 0.0
    rr: float = 0.0
    _ranks: list = field(default_factory=list, repr=False)

    def add(self, ranks: torch.Tensor) -> None:
        ranks = ranks.detach().to("cpu", torch.float64)
        top = ranks <= self.k
        self.n += ranks.numel()
        self.hits += float(top.sum())
        self.rr += float(torch.where(top, 1.0 / ranks, torch.zeros_like(ranks)).sum())

    def result(self) -> dict[str, float]:
        if self.n == 0:
            raise ValueError("no samples were evaluated: the test split is empty")
        return {f"p_at_{self.k}": self.hits / self.n, f"mrr_at_{self.k}": self.rr / self.n}


def metrics_from_ranks(ranks: torch.Tensor, k: int = 20) -> dict[str, float]:
    acc = RankAccumulator(k=k)
    acc.add(ranks)
    return acc.result()
