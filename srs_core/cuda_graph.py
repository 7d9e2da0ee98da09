"""A whole training step in one CUDA graph (issue 6): forward, loss with its
negative sampling, backward, and both optimizer steps, replayed per batch.

At 1.28M items a sparse step is a few hundred tiny kernels; launching them
one by one from Python costs more than running them. A CUDA graph records
them once and replays them with one launch. That needs fixed shapes and no
host synchronisation, so the step uses:

* ``sparse_fast`` with ``static_shapes=True`` (:mod:`srs_core.optim`): no
  ``torch.unique``, no sparse COO gradient (its construction syncs with the
  host). The item embedding's lookups go through a custom autograd function
  whose backward ``index_add_``s the gradient rows into a dense-shaped buffer
  that is zero except at the rows of the step, and the update touches only
  those rows;
* Adam with ``capturable=True`` for the other parameters (its step count is a
  device tensor);
* negatives drawn inside the graph by device ops (``torch.randint``, or
  ``torch.rand`` + ``searchsorted``), from the default CUDA generator, which
  graphs support natively (its seed offset advances on every replay), or from
  a given generator registered with the graph;
* a fixed batch shape ``[batch_size, max_len]``: narrower batches are
  right-padded to ``max_len`` with the padding id; the last, partial batch of
  an epoch must be **dropped** (``iter_batches(..., drop_last=True)``); a
  batch of another size is refused.

The first ``warmup`` calls run the same step eagerly on a side stream (with
the real batches: they are training steps, not throw-away ones), as graph
capture requires; the next call captures the graph and every later call
replays it. Without CUDA the class runs the identical static-shape step
eagerly, which is how it is tested on CPU.
"""
from __future__ import annotations

import torch

from .losses import Loss
from .optim import OptimizerSet, build_optimizer


class GraphedTrainStep:
    """``step(items, lengths, targets) -> loss``: one training step, replayed from a CUDA graph.

    ``model`` is a :class:`~srs_core.models.base.SessionEncoder` whose item
    embedding is optimised by ``sparse_fast``; ``loss_fn`` a sampled loss
    from :func:`srs_core.losses.build_loss` on the model's device.
    With ``sample_in_graph=False`` the negatives are an input of ``step``
    instead (for equivalence tests).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        loss_fn: Loss,
        *,
        batch_size: int,
        max_len: int,
        l2: bool,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        generator: torch.Generator | None = None,
        warmup: int = 3,
        sample_in_graph: bool = True,
        use_graph: bool | None = None,
    ) -> None:
        if not loss_fn.sampled:
            raise ValueError(
                f"the {loss_fn.name!r} loss reads every item row; a graphed sparse step needs a sampled loss "
                "(ns, triplet, sampled_softmax)"
            )
        self.device = next(model.parameters()).device
        self.use_graph = self.device.type == "cuda" if use_graph is None else bool(use_graph)
        if self.use_graph and self.device.type != "cuda":
            raise ValueError("a CUDA graph needs the model on a CUDA device")
        sd = loss_fn.sampler.device
        if sd.type != self.device.type or (sd.index is not None and self.device.index is not None
                                           and sd.index != self.device.index):
            raise ValueError(f"the loss samples on {loss_fn.sampler.device} but the model is on {self.device}")
        if generator is not None and generator.device.type != self.device.type:
            raise ValueError(
                f"the generator is on {generator.device} but the model is on {self.device}: "
                f"make it with torch.Generator(device={str(self.device)!r})"
            )
        if self.use_graph and int(warmup) < 1:
            raise ValueError(
                "a CUDA graph needs warmup >= 1: the optimizers' state must exist before capture, "
                "or every replay would start Adam afresh"
            )
        self.model = model
        self.loss_fn = loss_fn
        self.l2 = l2
        self.batch_size = int(batch_size)
        self.max_len = int(max_len)
        self.generator = generator
        self.warmup = int(warmup)
        self.sample_in_graph = sample_in_graph
        self.opt: OptimizerSet = build_optimizer(
            model, "sparse_fast", lr, betas=betas, eps=eps, static_shapes=True, capturable=self.use_graph
        )
        dev = self.device
        self.items = torch.zeros(self.batch_size, self.max_len, dtype=torch.long, device=dev)
        self.items[:, 0] = 1
        self.lengths = torch.ones(self.batch_size, dtype=torch.long, device=dev)
        self.targets = torch.ones(self.batch_size, dtype=torch.long, device=dev)
        self.negatives = torch.ones(loss_fn.sampler.shape(self.batch_size), dtype=torch.long, device=dev)
        self.loss: torch.Tensor | None = None
        self.graph: torch.cuda.CUDAGraph | None = None
        self.calls = 0

    # the step itself, identical eager and captured
    def _forward_backward_step(self) -> torch.Tensor:
        session = self.model(self.items, self.lengths)
        if self.sample_in_graph:
            drawn = self.loss_fn.sampler.sample(self.batch_size, self.generator)
            self.negatives.copy_(drawn)  # kept so callers can see what was drawn
        loss = self.loss_fn.compute(session, self.targets, self.model.item_embedding, self.negatives, self.l2)
        loss.backward()
        self.opt.step()
        return loss.detach()

    def _load(self, items: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor,
              negatives: torch.Tensor | None) -> None:
        if items.shape[0] != self.batch_size or targets.shape[0] != self.batch_size:
            raise ValueError(
                f"the graphed step has a fixed batch of {self.batch_size} but got {items.shape[0]}: "
                "drop the last partial batch (iter_batches(..., drop_last=True))"
            )
        width = items.shape[1]
        if width > self.max_len:
            raise ValueError(f"batch width {width} exceeds max_len={self.max_len}; pad_to/max_len must match")
        if width < self.max_len:
            self.items[:, width:].zero_()
        self.items[:, :width].copy_(items, non_blocking=True)
        self.lengths.copy_(lengths, non_blocking=True)
        self.targets.copy_(targets, non_blocking=True)
        if not self.sample_in_graph:
            if negatives is None:
                raise ValueError("built with sample_in_graph=False: pass the negatives")
            self.negatives.copy_(negatives, non_blocking=True)
        elif negatives is not None:
            raise ValueError("negatives are drawn inside the graph; build with sample_in_graph=False to pass them")

    def __call__(self, items, lengths, targets, negatives=None) -> torch.Tensor:
        """Train on one batch; returns the loss (a device scalar, overwritten by the next call)."""
        self._load(items, lengths, targets, negatives)
        self.calls += 1
        if not self.use_graph:
            self.opt.zero_grad(set_to_none=True)
            self.loss = self._forward_backward_step()
            return self.loss
        if self.graph is None and self.calls <= self.warmup:
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                self.opt.zero_grad(set_to_none=True)
                loss = self._forward_backward_step()
            torch.cuda.current_stream(self.device).wait_stream(side)
            return loss
        if self.graph is None:
            self._capture()
        self.graph.replay()
        return self.loss

    replay = __call__

    def _capture(self) -> None:
        torch.cuda.synchronize(self.device)
        self.opt.zero_grad(set_to_none=True)  # grads are then allocated from the graph's pool
        graph = torch.cuda.CUDAGraph()
        if self.generator is not None:
            graph.register_generator_state(self.generator)
        with torch.cuda.device(self.device), torch.cuda.graph(graph):  # capture on the model's own GPU
            self.loss = self._forward_backward_step()
        self.graph = graph
