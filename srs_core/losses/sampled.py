"""What the sampled losses share: a sampler built from their options, and
the parts of their name and cost that the negatives decide."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .base import Loss
from .options import option
from .sampler import NegativeSampler, SamplerOptions


@dataclass(frozen=True)
class SharingOptions(SamplerOptions):
    """The sampler's options, and one set of negatives for the whole batch (ns and triplet)."""

    shared_negatives: bool = option(False, "ns/triplet: one set of k negatives shared by the whole batch (more "
                                    "negatives, same cost)", action="store_true", extension=bool,
                                    misuse="shared_negatives applies to the ns and triplet losses, not {loss!r} "
                                    "(sampled_softmax always shares its negatives; ce uses every item)")


class SampledLoss(Loss):
    """A loss that scores the targets against negatives drawn by a :class:`~srs_core.losses.sampler.NegativeSampler`."""

    sampled = True
    options = SamplerOptions

    @classmethod
    def sampler(cls, settings: Any, n_items: int, counts, device) -> NegativeSampler:
        """The negative sampler these settings ask for."""
        return NegativeSampler(n_items, k=settings.negatives, distribution=settings.sampling, alpha=settings.alpha,
                               counts=counts, shared=cls.shared_negatives or settings.shared_negatives,
                               mix=settings.mix, device=device)

    @classmethod
    def build(cls, settings: Any, n_items: int, counts, device) -> "SampledLoss":
        return cls(cls.sampler(settings, n_items, counts, device), score_scale=settings.score_scale)

    @classmethod
    def cost_key(cls, settings: Any) -> tuple:
        """The negatives' source and count, and whether the batch shares them."""
        return (str(settings.sampling), int(settings.negatives),
                bool(settings.shared_negatives) or cls.shared_negatives)

    @classmethod
    def describe(cls, settings: Any, always_k: bool = False) -> list[str]:
        """The sampling and k where they differ from the dissertation's (uniform, k = 100)."""
        parts = []
        if settings.sampling != "uniform":
            parts.append(settings.sampling if settings.sampling != "mixed" else f"mixed {settings.mix:g}")
        k = int(settings.negatives)
        if k != 100 or always_k:
            parts.append(f"k={k}" + (" shared" if settings.shared_negatives else ""))
        elif settings.shared_negatives:
            parts.append("shared")
        return parts
