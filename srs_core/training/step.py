"""One eager training step: forward, loss with fresh negatives, backward,
(data-parallel reduction,) optimizer step."""
from __future__ import annotations

import torch

from srs_core.losses import Loss
from srs_core.optim import OptimizerSet

from .distributed import SINGLE, Dist, GradReducer, shard_loss, shard_rows


class TrainStep:
    """``step(items, lengths, targets) -> loss``: one eager training step
    (forward, loss with fresh negatives, backward, optimizer step) of
    ``model`` with ``opt`` (an :class:`~srs_core.optim.registry.OptimizerSet`).

    Under torchrun (``dist``) the batch is the global batch: this rank trains
    on its rows and the gradients are summed over the ranks before the
    optimizer step (:mod:`srs_core.training.distributed`). Alone, the step
    is the plain loop body of :func:`srs_core.training.loop.fit`, and the one
    training step of every benchmark (:mod:`srs_core.bench`).
    """

    def __init__(self, model: torch.nn.Module, loss_fn: Loss, opt: OptimizerSet, *, l2: bool,
                 generator: torch.Generator | None = None, dist: Dist = SINGLE) -> None:
        self.model = model
        self.loss_fn = loss_fn
        self.opt = opt
        self.l2 = l2
        self.generator = generator
        self.dist = dist
        self.device = next(model.parameters()).device
        if dist.active and not loss_fn.data_parallel:
            raise ValueError(
                f"the {loss_fn.name!r} loss cannot train data-parallel (torchrun): its value is not the sum of the "
                "ranks' shard losses (sce's buckets take the top sessions of the whole batch); run it in one process"
            )
        self.reducer = GradReducer(model, opt, dist) if dist.active else None
        self.negatives: torch.Tensor | None = None

    def _train(self, items: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor,
               negatives: torch.Tensor | None, fixed_shapes: bool) -> torch.Tensor:
        """Forward, loss, backward, (reduction over ranks,) optimizer step on
        one global batch; ``negatives=None`` draws them here."""
        session = None
        if targets.dim() == 2:  # a batch of whole sessions (sessions batching): every prefix in one pass
            at = targets > 0
            session, targets = self.model.forward_all(items, lengths)[at], targets[at]
            rows = torch.arange(at.shape[0], device=at.device)
            self.loss_fn.groups = rows.unsqueeze(1).expand_as(at)[at]  # each sample's session, for in-batch losses
        n = targets.shape[0]
        lo, hi = shard_rows(n, self.dist) if self.dist.active else (0, n)
        if session is None and not self.dist.active:
            session = self.model(items, lengths)
        elif session is None and hi > lo:
            session = self.model(items[lo:hi], lengths[lo:hi])
        if negatives is None:  # every rank draws the global batch's negatives (None for ce, cce; sce: its buckets)
            negatives = self.loss_fn.draw(n, self.model.item_embedding.embedding_dim, self.generator)
            if fixed_shapes and self.negatives is not None:
                self.negatives.copy_(negatives)  # kept so callers can see what was drawn
        emb = self.model.item_embedding
        if not self.dist.active:
            try:
                loss = self.loss_fn.compute(session, targets, emb, negatives, self.l2)
            finally:
                self.loss_fn.groups = None
            loss.backward()
        elif hi > lo:
            loss = shard_loss(self.loss_fn, session, targets, emb, negatives, self.l2, (lo, hi))
            loss.backward()
        else:  # a last batch smaller than the number of ranks: this one only adds its zeros
            loss = torch.zeros((), device=self.device)
        if self.reducer is not None:
            self.reducer(fixed_shapes)
        self.opt.step()
        return loss.detach()

    def __call__(self, items, lengths, targets, negatives: torch.Tensor | None = None) -> torch.Tensor:
        """Train on one batch (any size); returns the loss, a device scalar
        that later steps leave alone. ``negatives`` (equivalence checks) are
        used instead of a fresh draw."""
        self.opt.zero_grad(set_to_none=True)
        return self._train(items, lengths, targets, negatives, fixed_shapes=False)
