"""Negative sampling (dissertation Section 4.1): the sampler and its options.

:class:`NegativeSampler` draws the negatives of every sampled loss;
:class:`SamplerOptions` are the settings those losses share (``srs train
--negatives --sampling --alpha --mix``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .options import LossOptions, option

DISTRIBUTIONS = ("uniform", "popularity", "mixed")


def counts_tensor(counts, n_items: int) -> torch.Tensor:
    """``counts`` (the training frequency of every id 0..N) as a float64
    tensor, checked: N + 1 entries, finite and non-negative."""
    c = torch.as_tensor(np.asarray(counts), dtype=torch.float64).flatten()
    if c.numel() != n_items + 1:
        raise ValueError(f"counts must have n_items + 1 = {n_items + 1} entries (index 0 is padding), got {c.numel()}")
    if bool((c < 0).any()) or not bool(torch.isfinite(c).all()):
        raise ValueError("counts must be finite and non-negative")
    return c


@dataclass(frozen=True)
class SamplerOptions(LossOptions):
    """The negatives of a sampled loss: how many, and from which distribution."""

    negatives: int = option(100, "negatives per sample (k)", identity="always",
                            check=lambda v: None if v >= 1 else
                            f"the number of negatives k must be at least 1 (--negatives), got {v}")
    sampling: str = option("uniform", "negative distribution: uniform, popularity^alpha, or mixed (extension: "
                           "(1-mix) uniform + mix popularity^alpha)", identity="always",
                           check=lambda v: None if v in DISTRIBUTIONS else
                           f"unknown negative distribution {v!r} (--sampling); choose one of {', '.join(DISTRIBUTIONS)}",
                           extension=lambda v: v == "mixed", choices=list(DISTRIBUTIONS))
    alpha: float = option(0.75, "exponent for popularity sampling", identity="always")
    mix: float = option(0.5, "popularity share of --sampling mixed (default 0.5)",
                        identity=lambda config: config.sampling == "mixed",  # part of the result whenever it is used
                        check=lambda v: None if 0.0 <= v <= 1.0 else f"mix must be in [0, 1], got {v}")


class NegativeSampler:
    """Draws negative item ids in 1..N, fresh on every call (Section 4.1).

    ``distribution="uniform"``: every item equally likely.
    ``distribution="popularity"``: probability proportional to
    ``counts[i] ** alpha`` (word2vec's unigram^0.75 noise distribution);
    ``counts`` has length N + 1 with index 0 the padding id (ignored).
    Items with a zero count are never drawn. ``counts`` is ignored by the
    uniform distribution.
    ``distribution="mixed"`` (an extension): ``(1 - mix) * uniform + mix *
    popularity^alpha``, so every item keeps a floor probability while
    popular items are drawn more often; ``mix=1`` is ``popularity``.

    ``shared=False`` draws ``[B, k]`` ids (each sample its own k negatives);
    ``shared=True`` draws ``[k]`` ids used by the whole batch.

    Sampling is made of plain device ops (``torch.randint``; ``torch.rand`` +
    ``searchsorted`` on a float64 cumulative table), with no host sync, so it
    can run inside a CUDA graph with the default generator.
    """

    def __init__(
        self,
        n_items: int,
        *,
        k: int = 100,
        distribution: str = "uniform",
        alpha: float = 0.75,
        counts: np.ndarray | torch.Tensor | None = None,
        shared: bool = False,
        mix: float = 0.5,
        device: torch.device | str = "cpu",
    ) -> None:
        if n_items < 1:
            raise ValueError(f"n_items must be positive, got {n_items}")
        if k < 1:
            raise ValueError(f"the number of negatives k must be at least 1, got {k}")
        if distribution not in DISTRIBUTIONS:
            raise ValueError(
                f"unknown negative distribution {distribution!r}; choose one of {', '.join(DISTRIBUTIONS)}"
            )
        self.n_items = int(n_items)
        self.k = int(k)
        self.distribution = distribution
        self.alpha = float(alpha)
        self.mix = float(mix) if distribution == "mixed" else None
        self.shared = bool(shared)
        self.device = torch.device(device)
        self.cdf: torch.Tensor | None = None
        if distribution == "uniform":
            self._log_q = torch.full((self.n_items + 1,), -math.log(self.n_items), dtype=torch.float32)
            self._log_q[0] = -math.inf
        else:
            if counts is None:
                raise ValueError(
                    f"distribution={distribution!r} needs counts: the training frequency of every id 0..N "
                    "(e.g. ProcessedDataset.item_counts())"
                )
            c = counts_tensor(counts, self.n_items)
            if alpha < 0:
                raise ValueError(f"alpha must be non-negative, got {alpha}")
            w = c[1:].pow(self.alpha) * (c[1:] > 0)
            total = float(w.sum())
            if total <= 0:
                raise ValueError("counts has no positive entry among items 1..N: nothing to sample")
            p = w / total
            if distribution == "mixed":
                if not 0.0 <= mix <= 1.0:
                    raise ValueError(f"mix must be in [0, 1] (the popularity share of the mixture), got {mix}")
                p = (1.0 - mix) / self.n_items + mix * p
            cdf = torch.cumsum(p, 0)
            self.cdf = cdf / cdf[-1]  # top exactly 1.0, so u in [0, 1) always lands on an item
            log_q = torch.full((self.n_items + 1,), -math.inf, dtype=torch.float64)
            log_q[1:] = torch.log(p)
            self._log_q = log_q.float()
        finite = self._log_q[1:][torch.isfinite(self._log_q[1:])]
        self._log_q_floor = float(finite.min())  # computed once: no host sync while training
        self.to(self.device)

    def to(self, device: torch.device | str) -> "NegativeSampler":
        self.device = torch.device(device)
        self._log_q = self._log_q.to(self.device)
        if self.cdf is not None:
            self.cdf = self.cdf.to(self.device)
        return self

    def shape(self, batch_size: int) -> tuple[int, ...]:
        return (self.k,) if self.shared else (int(batch_size), self.k)

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Fresh negative ids: ``[batch_size, k]``, or ``[k]`` when shared."""
        shape = self.shape(batch_size)
        if self.cdf is None:
            return torch.randint(1, self.n_items + 1, shape, device=self.device, generator=generator)
        u = torch.rand(shape, dtype=torch.float64, device=self.device, generator=generator)
        pos = torch.searchsorted(self.cdf, u, right=True)
        return pos.clamp_(max=self.n_items - 1).add_(1)

    def log_q(self, ids: torch.Tensor) -> torch.Tensor:
        """Log sampling probability of each id (``-inf`` for padding and for
        items the distribution never draws)."""
        return self._log_q[ids]

    def log_q_correction(self, ids: torch.Tensor) -> torch.Tensor:
        """``log_q`` with never-drawn items raised to the least likely drawn
        item's value, so that a logQ-corrected logit stays finite (an
        in-batch target may have a zero count)."""
        return self._log_q[ids].clamp(min=self._log_q_floor)

    def probabilities(self) -> torch.Tensor:
        """The sampling probability of every id 0..N (0 for padding)."""
        return self._log_q.double().exp()

