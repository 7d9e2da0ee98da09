"""A whole training step in one CUDA graph: forward, loss
with its negative sampling, backward, and both optimizer steps, replayed per
batch. :func:`srs_core.training.loop.fit` trains with it on CUDA by default
(``--graph auto``).

At 1.28M items a sparse step is a few hundred tiny kernels; launching them
one by one from Python costs more than running them. A CUDA graph records
them once and replays them with one launch. That needs fixed shapes and no
host synchronisation, so the step uses:

* ``sparse_fast`` with ``static_shapes=True`` (:mod:`srs_core.optim`): no
  ``torch.unique``, no sparse COO gradient (its construction syncs with the
  host). The item embedding's lookups go through a custom autograd function
  whose backward adds the gradient rows (``index_add_``) into a dense-shaped buffer
  that is zero except at the rows of the step, and the update touches only
  those rows;
* or, with ``optimizer="dense"``, Adam over every parameter, which also
  lets full cross-entropy (or a sampled loss with dense Adam) be captured;
* Adam with ``capturable=True`` for the other parameters (its step count is a
  device tensor);
* negatives drawn inside the graph by device ops (``torch.randint``, or
  ``torch.rand`` + ``searchsorted``), from the default CUDA generator, which
  graphs support natively (its seed offset advances on every replay), or from
  a given generator registered with the graph;
* a fixed batch shape ``[batch_size, max_len]``: narrower batches are
  right-padded to ``max_len`` with the padding id. A batch of another size
  (the last, partial batch of an epoch) is not graphed: the same call runs the
  same step on it eagerly, with the same parameters and optimizer state, so no
  sample is dropped.

Which pairings can be captured (:func:`graph_support`): every loss but
``sce`` with the dense optimizer, and the sampled losses with ``sparse_fast``. SparseAdam
(``--optimizer sparse``) cannot: it builds and coalesces sparse tensors whose
sizes the host must read.

Under torchrun (:mod:`srs_core.training.distributed`) the step trains on this rank's
rows of the global batch and sums the gradients over the ranks between
backward and the optimizer step, with fixed-shape collectives.

The first ``warmup`` calls run the same step eagerly on a side stream (with
the real batches: they are training steps, not throw-away ones), as graph
capture requires; the next call captures the graph and every later call
replays it. Without CUDA the class runs the identical static-shape step
eagerly, which is how it is tested on CPU.
"""
from __future__ import annotations

from types import SimpleNamespace

import torch

from srs_core.losses import Loss, loss_class
from srs_core.losses.registry import settings_of
from srs_core.optim import build_optimizer

from .distributed import SINGLE, Dist
from .step import TrainStep

GRAPH_OPTIMIZERS = ("sparse_fast", "dense")
#: Encoders whose graphed step a GPU has run (the CUDA tests of
#: tests/test_optim.py, reported passing on an H200 in December 2026). ``--graph auto``
#: captures only these; ``--graph on`` captures any.
VERIFIED_MODELS = ("stamp", "srgnn")


def graph_support(settings) -> str | None:
    """``None`` when a training step of ``settings`` (a config, or anything
    with its ``loss``, ``optimizer`` and the loss's options) can be captured in
    a CUDA graph, else the reason it cannot: the optimizer's, or the loss's own
    (:meth:`srs_core.losses.base.Loss.graph_reason`)."""
    optimizer, cls = settings.optimizer, loss_class(settings.loss)
    if optimizer not in GRAPH_OPTIMIZERS:
        return (f"--optimizer {optimizer} (SparseAdam) builds and coalesces sparse gradients, whose sizes the host "
                f"must read; a graph can capture {' or '.join(GRAPH_OPTIMIZERS)}")
    if optimizer == "sparse_fast" and cls.dense_gradient:
        return "full cross-entropy reads every item row: graph it with --optimizer dense"
    return cls.graph_reason(settings)


def check_graphable(loss_fn: Loss, optimizer: str, device: torch.device, generator: torch.Generator | None, *,
                    use_graph: bool, warmup: int, batch_size: int, dist: Dist) -> None:
    """Raise a clear ``ValueError`` when a :class:`GraphedTrainStep` cannot be built from these parts."""
    if optimizer == "sparse_fast" and loss_fn.dense_gradient:
        raise ValueError(
            f"the {loss_fn.name!r} loss reads every item row; a graphed sparse step needs a sampled loss "
            "(ns, triplet, sampled_softmax), or optimizer='dense'"
        )
    own = vars(loss_fn.settings or settings_of())  # what the loss was built from
    reason = graph_support(SimpleNamespace(**{**own, "loss": loss_fn.name, "optimizer": optimizer}))
    if reason is not None:
        raise ValueError(f"this step cannot be graphed: {reason}")
    if use_graph and device.type != "cuda":
        raise ValueError("a CUDA graph needs the model on a CUDA device")
    if loss_fn.sampled:
        sd = loss_fn.sampler.device
        if sd.type != device.type or (sd.index is not None and device.index is not None
                                           and sd.index != device.index):
            raise ValueError(f"the loss samples on {loss_fn.sampler.device} but the model is on {device}")
    if generator is not None and generator.device.type != device.type:
        raise ValueError(
            f"the generator is on {generator.device} but the model is on {device}: "
            f"make it with torch.Generator(device={str(device)!r})"
        )
    if use_graph and int(warmup) < 1:
        raise ValueError(
            "a CUDA graph needs warmup >= 1: the optimizers' state must exist before capture, "
            "or every replay would start Adam afresh"
        )
    if dist.active and int(batch_size) < dist.world:
        raise ValueError(f"a batch of {batch_size} cannot be shared by {dist.world} processes")


class GraphedTrainStep(TrainStep):
    """``step(items, lengths, targets) -> loss``: one training step, replayed from a CUDA graph.

    ``model`` is a :class:`~srs_core.models.base.SessionEncoder` whose item
    embedding suits ``optimizer`` (``sparse_fast``: built with
    ``sparse=True``; ``dense``: ``sparse=False``); ``loss_fn`` a loss from
    :func:`srs_core.losses.registry.build_loss` on the model's device (a sampled one
    for ``sparse_fast``). With ``sample_in_graph=False`` the negatives are
    an input of ``step`` instead (for equivalence tests). ``dist``: this
    process's place under torchrun; the batches passed in are then the
    global batch, the same on every rank.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        loss_fn: Loss,
        *,
        batch_size: int,
        max_len: int,
        l2: bool,
        optimizer: str = "sparse_fast",
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        generator: torch.Generator | None = None,
        warmup: int = 3,
        sample_in_graph: bool = True,
        use_graph: bool | None = None,
        dist: Dist = SINGLE,
    ) -> None:
        self.device = next(model.parameters()).device
        self.use_graph = self.device.type == "cuda" if use_graph is None else bool(use_graph)
        check_graphable(loss_fn, optimizer, self.device, generator, use_graph=self.use_graph, warmup=warmup,
                        batch_size=batch_size, dist=dist)
        opt = build_optimizer(model, optimizer, lr, betas=betas, eps=eps, static_shapes=optimizer == "sparse_fast",
                              capturable=self.use_graph)
        if self.use_graph:  # capturable Adam warns when it runs uncaptured, as the warm-up steps must
            for part in opt.optimizers.values():
                if isinstance(part, torch.optim.Optimizer):
                    part._warned_capturable_if_run_uncaptured = True
        super().__init__(model, loss_fn, opt, l2=l2, generator=generator, dist=dist)
        self.batch_size = int(batch_size)
        self.max_len = int(max_len)
        self.warmup = int(warmup)
        self.sample_in_graph = sample_in_graph
        dev = self.device
        self.items = torch.zeros(self.batch_size, self.max_len, dtype=torch.long, device=dev)
        self.items[:, 0] = 1
        self.lengths = torch.ones(self.batch_size, dtype=torch.long, device=dev)
        self.targets = torch.ones(self.batch_size, dtype=torch.long, device=dev)
        self.negatives = (torch.ones(loss_fn.sampler.shape(self.batch_size), dtype=torch.long, device=dev)
                          if loss_fn.sampled else None)
        self.loss: torch.Tensor | None = None
        self.graph: torch.cuda.CUDAGraph | None = None
        self.calls = 0

    def _load(self, items: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor,
              negatives: torch.Tensor | None) -> None:
        if items.shape[0] != targets.shape[0]:
            raise ValueError(f"a batch of {items.shape[0]} sessions with {targets.shape[0]} targets")
        width = items.shape[1]
        if width > self.max_len:
            raise ValueError(f"batch width {width} exceeds max_len={self.max_len}; pad_to/max_len must match")
        if width < self.max_len:
            self.items[:, width:].zero_()
        self.items[:, :width].copy_(items, non_blocking=True)
        self.lengths.copy_(lengths, non_blocking=True)
        self.targets.copy_(targets, non_blocking=True)
        if not self.sample_in_graph:
            self.negatives.copy_(negatives, non_blocking=True)

    def _static_step(self) -> torch.Tensor:
        return self._train(self.items, self.lengths, self.targets,
                           None if self.sample_in_graph else self.negatives, fixed_shapes=True)

    def __call__(self, items, lengths, targets, negatives=None) -> torch.Tensor:
        """Train on one batch; returns its loss, a device scalar that later
        steps leave alone. A batch of ``batch_size`` is replayed from the
        graph (on CPU, its static-shape step runs eagerly); a smaller one (an
        epoch's last) runs the same step unshaped, with the same parameters,
        optimizer state and generator. ``negatives``: only when built with
        ``sample_in_graph=False``."""
        if negatives is not None and self.sample_in_graph:
            raise ValueError("negatives are drawn inside the step; build with sample_in_graph=False to pass them")
        if negatives is None and not self.sample_in_graph and self.loss_fn.sampled:
            raise ValueError("built with sample_in_graph=False: pass the negatives")
        if len(targets) != self.batch_size:
            self.opt.zero_grad(set_to_none=True)
            return self._train(items, lengths, targets, negatives, fixed_shapes=False)
        self._load(items, lengths, targets, negatives)
        self.calls += 1
        if not self.use_graph:
            self.opt.zero_grad(set_to_none=True)
            self.loss = self._static_step()
            return self.loss.clone()
        if self.graph is None and self.calls <= self.warmup:
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                self.opt.zero_grad(set_to_none=True)
                loss = self._static_step()
            torch.cuda.current_stream(self.device).wait_stream(side)
            return loss
        if self.graph is None:
            self._capture()
        self.graph.replay()
        return self.loss.clone()  # the graph overwrites its loss

    def _capture(self) -> None:
        torch.cuda.synchronize(self.device)
        self.opt.zero_grad(set_to_none=True)  # grads are then allocated from the graph's pool
        graph = torch.cuda.CUDAGraph()
        if self.generator is not None:
            graph.register_generator_state(self.generator)
        with torch.cuda.device(self.device), torch.cuda.graph(graph):  # capture on the model's own GPU
            self.loss = self._static_step()
        self.graph = graph


def use_graph(config, device: torch.device, dist: Dist = SINGLE) -> bool:
    """Whether ``fit`` trains with the graphed step: ``graph="on"`` always
    (on CPU its static step runs eagerly); ``"auto"`` on one CUDA device for
    a pairing a graph can capture and an encoder a GPU has captured
    (:data:`VERIFIED_MODELS`). Under torchrun ``auto`` stays eager until a
    multi-GPU run has checked NCCL collectives inside a graph
    (``benchmarks/gpu.sh`` checks one process); ``on`` forces it."""
    if config.graph != "auto":
        return config.graph == "on"
    return (device.type == "cuda" and config.batching != "sessions" and not dist.active and config.model in VERIFIED_MODELS
            and graph_support(config) is None)
