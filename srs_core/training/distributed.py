"""Data-parallel training under ``torchrun``.

``torchrun --nproc_per_node K -m srs_core.cli train ...`` starts K processes
(ranks); :func:`srs_core.training.loop.fit` sees torchrun's environment and trains
data-parallel with ``torch.distributed``: gloo on CPU, NCCL on GPUs (one GPU
per process, ``LOCAL_RANK``). The engine is PyTorch's own (torchrun's
launcher and rendezvous, the process group's collectives); what this module
adds is what a data-parallel step of *this* library needs:

* **the same global batch as one process.** Every rank draws the same
  shuffle and the same negatives (same seeds, the global batch's draw) and
  trains on its own contiguous slice of rows (:func:`shard_rows`). Its loss
  is weighted by its share of the rows, so the ranks' losses sum to the mean
  over the global batch, and summing the gradients gives one process's
  gradient. sampled_softmax's candidates are all the global batch's targets
  plus the shared negatives, as in one process (:func:`shard_loss`).
* **a reduction that fits the item table** (:class:`GradReducer`). The dense
  parameters' gradients (the encoder's layers; all of them with the dense
  optimizer) are summed with one ``all_reduce`` of a flat buffer. The item
  table's gradient is *not* reduced densely: with a sampled loss a step
  touches about ``B (L + 1 + k)`` rows (16k at batch 128, 100 negatives) of
  N (1.28M), so a dense all-reduce would move ~80x more bytes than the
  rows it needs (512 MB per step at d = 100). Instead the touched rows are
  all-reduced: the ranks exchange the ids they touched, every rank reads its
  own gradient at the union of ids, and those rows are summed.
  ``torch.nn.parallel.DistributedDataParallel`` is not used because it only
  reduces ``param.grad``, and ``sparse_fast`` hands the table's gradient rows
  to its optimizer without ever building ``.grad`` (:mod:`srs_core.optim`);
  the few fixed-shape collectives here are also what a CUDA graph can
  capture.
* **one voice.** Rank 0 writes the checkpoint and the run record; the
  epoch's record (metrics, loss, times) is broadcast from rank 0, so early
  stopping stops every rank at the same epoch.

Without torchrun (no ``WORLD_SIZE`` in the environment, or no process group)
nothing here is used and training is exactly the single-process code.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.distributed as dist

from srs_core.losses import Loss
from srs_core.optim import row_gradient

from .runtime import resolve_device


@dataclass(frozen=True)
class Dist:
    """Where this process stands: rank ``rank`` of ``world`` (1: not distributed)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def active(self) -> bool:
        """Whether this process runs under torchrun; then the collectives run even with one process."""
        return self.backend is not None

    @property
    def main(self) -> bool:
        return self.rank == 0


SINGLE = Dist()


def launched_by_torchrun() -> bool:
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


@contextmanager
def session(device_name: str) -> Iterator[tuple[Dist, torch.device | None]]:
    """``(Dist, device)`` for this process. Under torchrun it joins the
    process group (gloo on CPU, NCCL on CUDA) unless one exists, and leaves
    it on exit if it joined; otherwise it yields ``(SINGLE, None)``."""
    if not (launched_by_torchrun() or dist.is_initialized()):
        yield SINGLE, None
        return
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local_rank)
    joined = False
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                **({"device_id": device} if device.type == "cuda" else {}))
        joined = True
    d = Dist(dist.get_rank(), dist.get_world_size(), local_rank, dist.get_backend())
    try:
        yield d, device
    finally:
        if joined and dist.is_initialized():
            dist.destroy_process_group()


def shard_rows(n: int, d: Dist) -> tuple[int, int]:
    """Rows ``lo:hi`` of a global batch of ``n`` that rank ``d.rank`` trains
    on: contiguous, sizes differing by at most one."""
    return d.rank * n // d.world, (d.rank + 1) * n // d.world


def shard_loss(loss_fn: Loss, session: torch.Tensor, targets: torch.Tensor, embedding, negatives: torch.Tensor | None,
               l2: bool, rows: tuple[int, int]) -> torch.Tensor:
    """The loss of rows ``lo:hi`` of a global batch (``session`` holds only
    those rows; ``targets`` and ``negatives`` are the global batch's),
    weighted by ``(hi - lo) / B`` so that the ranks' values sum to the mean
    over the global batch."""
    lo, hi = rows
    loss = loss_fn.compute(session, targets[lo:hi], embedding, loss_fn.shard_negatives(targets, negatives, lo, hi), l2)
    return loss * ((hi - lo) / targets.shape[0])


def _all_gather(x: torch.Tensor, world: int) -> torch.Tensor:
    out = x.new_empty((world * x.shape[0], *x.shape[1:]))
    gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor  # renamed in torch 2.13
    gather(out, x.contiguous())
    return out


class GradReducer:
    """Sums every rank's gradient into the global batch's, between backward and the optimizer step.

    ``opt`` is the :class:`~srs_core.optim.registry.OptimizerSet` of ``model``; the
    item table's gradient rows are read through
    :func:`srs_core.optim.routing.row_gradient`, whichever optimizer holds them.
    ``reducer(fixed_shapes=True)`` (the steps of a CUDA graph, which all
    have the same shapes) exchanges the number of looked-up ids on its first
    call only and then never reads a value on the host, so it can be
    captured; other calls exchange it every time. A parameter without a
    gradient on a rank (a rank with no rows in a last, small batch) counts
    as zero.
    """

    def __init__(self, model: torch.nn.Module, opt, d: Dist) -> None:
        self.d = d
        emb = model.item_embedding
        table = opt.optimizers.get("embedding")
        self.rows = row_gradient(table) if table is not None else None
        self.padding_idx = emb.padding_idx if emb.padding_idx is not None else 0
        table_weight = emb.weight if table is not None else None
        self.dense = [p for p in model.parameters() if p.requires_grad and p is not table_weight]
        self._width: int | None = None  # static: the largest number of ids any rank looks up

    def __call__(self, fixed_shapes: bool = False) -> None:
        self._reduce_dense()
        if self.rows is None:
            return
        if self.rows.static:
            self._reduce_summed_rows(fixed_shapes)
        else:
            self._reduce_pieces()

    # -- dense parameters: one all-reduce of a flat buffer
    def _reduce_dense(self) -> None:
        if not self.dense:
            return
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in self.dense])
        dist.all_reduce(flat)
        at = 0
        for p in self.dense:
            n = p.numel()
            if p.grad is None:
                p.grad = flat[at : at + n].view_as(p).clone()
            else:
                p.grad.copy_(flat[at : at + n].view_as(p))
            at += n

    # -- the item table: only the touched rows
    def _gather_ids(self, ids: torch.Tensor, fixed_shapes: bool = False) -> torch.Tensor:
        """Every rank's ids, each rank's padded with the padding id to the
        longest (the padding row gets no gradient from any optimizer)."""
        n = ids.numel()
        if fixed_shapes and self._width is not None:
            width = self._width
        else:
            sizes = _all_gather(torch.tensor([n], device=ids.device), self.d.world)
            width = int(sizes.max())  # a host read: once for fixed shapes, on every call otherwise
            if fixed_shapes:
                self._width = width
        if n > width:
            raise RuntimeError(f"a fixed-shape step looked up {n} ids, more than the {width} of the first one")
        if width > n:
            ids = torch.cat([ids, ids.new_full((width - n,), self.padding_idx)])
        return _all_gather(ids, self.d.world)

    def _reduce_summed_rows(self, fixed_shapes: bool) -> None:
        """Static shapes: the gradient is summed per row in a dense buffer; sum
        it across ranks at the union of the ids, write it back, and hand the
        optimizer the union."""
        union = self._gather_ids(self.rows.ids(), fixed_shapes)
        rows = self.rows.read(union)  # duplicates read the same row
        dist.all_reduce(rows)
        self.rows.write(union, rows)
        self.rows.keep(union)

    def _reduce_pieces(self) -> None:
        """``(ids, rows)`` pieces with repeats: gather every rank's pieces,
        which the optimizer sums per id (padded ids carry zero rows)."""
        ids, rows = self.rows.pieces()
        n = ids.numel()
        all_ids = self._gather_ids(ids)
        width = all_ids.numel() // self.d.world
        if width > n:
            rows = torch.cat([rows, rows.new_zeros(width - n, rows.shape[1])])
        self.rows.replace(all_ids, _all_gather(rows, self.d.world))


def all_sum(values: list[float], device: torch.device) -> list[float]:
    """Sums of ``values`` over the ranks (float64)."""
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def broadcast(obj: Any, d: Dist) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not d.active:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
