"""The interface every loss implements, and what each declares about itself.

A loss is called as ``loss(session, targets, embedding, l2)`` and returns the
mean over the batch:

``session``    ``[B, d]`` session embeddings from a model (not yet normalised);
``targets``    ``[B]`` item ids 1..N;
``embedding``  the model's ``nn.Embedding`` (row 0 is padding, never a candidate);
``l2``         Section 4.2's flag, applied through :mod:`srs_core.scoring` only.

The sampled losses draw fresh negatives from their
:class:`~srs_core.losses.sampler.NegativeSampler` on every call;
``loss.compute(session, targets, embedding, negatives, l2)`` evaluates the
same loss for given negative ids (tests, reproducibility). :meth:`Loss.draw`
is that random part of a call: the negative ids of a sampled loss, ``sce``'s
Gaussian bucket vectors (which ``compute`` then takes in place of
``negatives``), ``None`` for ``ce`` and ``cce``. Every item lookup goes
through :func:`srs_core.scoring.item_vectors`, so a sparse embedding table
receives a sparse gradient that touches only the looked-up rows.

Accidental hits: a sampled negative equal to the row's own target is not a
negative (Section 4.1.2 defines ``y_n`` as "a random label different from
``x_a``'s label"). The ``ns`` and ``triplet`` losses leave such negatives out
of their mean over the k negatives; ``sampled_softmax`` masks them to
``-inf``.

Besides its code, each loss class declares its facts (class attributes and
methods below): its options (:mod:`srs_core.losses.options`), its label in
tables, whether its item-table gradient is dense, whether a CUDA graph or
torchrun can run it, what its step's cost depends on, and how a run's name
describes its setting. The rest of the library reads these instead of
naming losses.
"""
from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import nn

from srs_core.scoring import prepare_session

from .options import LossOptions


class Loss:
    """Common interface: ``loss(session, targets, embedding, l2) -> scalar``."""

    name: ClassVar[str] = "base"
    #: How tables and figures name the loss.
    label: ClassVar[str] = "base"
    #: The loss's options dataclass (its fields are also TrainConfig's).
    options: ClassVar[type] = LossOptions
    sampled: ClassVar[bool] = False
    shared_negatives: ClassVar[bool] = False
    #: Its gradient reaches every item row, so it needs the dense optimizer.
    dense_gradient: ClassVar[bool] = False
    #: Whether the ranks' shard losses (:func:`srs_core.training.distributed.shard_loss`)
    #: add up to this loss of the global batch, so that torchrun may train it.
    data_parallel: ClassVar[bool] = True
    #: Published since the dissertation (compared apart, in notebook 07-beyond).
    recent: ClassVar[bool] = False
    #: Its colour in every figure, as an index into the book's colour-blind-safe palette of 10.
    colour: ClassVar[int] = 9
    #: L2 normalisation in the dissertation's setting of this loss (a run's
    #: name says when it differs).
    dissertation_l2: ClassVar[bool] = True
    #: The options it was built from (:func:`srs_core.losses.registry.build_loss` sets them).
    settings: Any = None
    #: For a batch of whole sessions (``--batching sessions``), the session of
    #: each row, set by the training step around the call; ``None`` otherwise.
    #: A loss that scores a row against the other rows' targets leaves out
    #: those of the row's own session (:meth:`same_session`): they are its
    #: session's other clicks, not draws from the negatives' distribution.
    groups: torch.Tensor | None = None

    def __init__(self, sampler=None, score_scale: float = 1.0) -> None:
        if self.sampled and sampler is None:
            raise ValueError(f"the {self.name!r} loss needs a NegativeSampler")
        if not (math.isfinite(score_scale) and score_scale > 0):
            raise ValueError(f"score_scale must be a positive number, got {score_scale}")
        self.sampler = sampler
        self.score_scale = float(score_scale)

    # -- what the rest of the library asks a loss class ---------------------------
    @classmethod
    def build(cls, settings: Any, n_items: int, counts, device) -> "Loss":
        """The loss for ``settings`` (an object with every option as an attribute)."""
        return cls(score_scale=settings.score_scale)

    @classmethod
    def graph_reason(cls, settings: Any) -> str | None:
        """Why a CUDA graph cannot capture a step of this loss (``None``: it can)."""
        return None

    @classmethod
    def check_device(cls, settings: Any, device: torch.device | str) -> None:
        """Raise a ``ValueError`` when these settings cannot run on ``device``."""

    @classmethod
    def cost_key(cls, settings: Any) -> tuple:
        """What the step's cost depends on, beside the loss and the optimizer's family."""
        return (bool(settings.l2),)

    @classmethod
    def describe(cls, settings: Any) -> list[str]:
        """This loss's own part of a run's name (:func:`srs_core.diagnosis.variant`)."""
        return []

    @classmethod
    def is_recent(cls, settings: Any) -> bool:
        """Whether these settings are a loss published since the dissertation."""
        return cls.recent

    # -- one call -----------------------------------------------------------------
    def session(self, session: torch.Tensor, l2: bool) -> torch.Tensor:
        """The session vectors every score of this loss is made from."""
        return prepare_session(session, l2, self.score_scale)

    def __call__(self, session: torch.Tensor, targets: torch.Tensor, embedding: nn.Embedding, l2: bool,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        negatives = self.draw(session.shape[0], session.shape[-1], generator)
        return self.compute(session, targets, embedding, negatives, l2)

    def draw(self, batch_size: int, dim: int, generator: torch.Generator | None = None) -> torch.Tensor | None:
        """The random part of one call for a batch of ``batch_size`` sessions
        of size ``dim``, passed to ``compute`` as ``negatives``: fresh
        negative ids from the sampler, or ``None`` for a loss without one."""
        return self.sampler.sample(batch_size, generator) if self.sampled else None

    def compute(self, session: torch.Tensor, targets: torch.Tensor, embedding: nn.Embedding,
                negatives: torch.Tensor | None, l2: bool) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def same_session(self, batch: int, n_candidates: int) -> torch.Tensor | None:
        """``[batch, n_candidates]``: True where candidate column ``c < batch``
        (another row's target) belongs to another row of the same session;
        ``None`` when the batch is not one of whole sessions."""
        if self.groups is None:
            return None
        g = self.groups
        related = (g.unsqueeze(1) == g.unsqueeze(0)) & ~torch.eye(batch, dtype=torch.bool, device=g.device)
        return torch.nn.functional.pad(related, (0, n_candidates - batch))

    def shard_negatives(self, targets: torch.Tensor, negatives: torch.Tensor | None, lo: int,
                        hi: int) -> torch.Tensor | None:
        """The negatives of rows ``lo:hi`` of a global batch (data-parallel
        training, :mod:`srs_core.training.distributed`): a ``[B, k]`` draw is
        sliced, a shared ``[k]`` one is kept."""
        if negatives is not None and negatives.dim() == 2:
            return negatives[lo:hi]
        return negatives

    def __repr__(self) -> str:
        params = {k: v for k, v in vars(self).items() if k != "sampler" and not k.startswith("_")}
        if self.sampler is not None:
            params.update(k=self.sampler.k, distribution=self.sampler.distribution, shared=self.sampler.shared)
        inner = ", ".join(f"{k}={v!r}" for k, v in params.items())
        return f"{type(self).__name__}({inner})"


def masked_mean(values: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Mean of ``values [B, k]`` over the entries where ``keep`` (at least one counted)."""
    keep = keep.to(values.dtype)
    return (values * keep).sum(-1) / keep.sum(-1).clamp(min=1.0)
