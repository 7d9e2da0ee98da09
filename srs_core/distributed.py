"""Data-parallel training under ``torchrun`` (issue 10).

``torchrun --nproc_per_node K -m srs_core.cli train ...`` starts K processes
(ranks); :func:`srs_core.train.fit` sees torchrun's environment and trains
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

from .losses import Loss, SampledSoftmax


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


def resolve_device(name: str, local_rank: int) -> torch.device:
    """The device of a torchrun process: ``cuda:LOCAL_RANK`` for ``auto`` (with
    CUDA) and ``cuda``; ``cpu`` stays ``cpu``."""
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if name not in ("auto", "cuda"):
        raise ValueError(f"under torchrun each process uses the GPU of its LOCAL_RANK: pass --device cuda or auto, "
                         f"not {name!r}")
    if not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but CUDA is not available; use --device cpu or auto")
    if local_rank >= torch.cuda.device_count():
        raise ValueError(f"LOCAL_RANK {local_rank} but this machine has {torch.cuda.device_count()} GPUs: "
                         "use --nproc_per_node at most the number of GPUs")
    return torch.device("cuda", local_rank)


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
    total = targets.shape[0]
    if negatives is not None and negatives.dim() == 2:
        negatives = negatives[lo:hi]
    if isinstance(loss_fn, SampledSoftmax):
        # one process scores every row against all B targets + k negatives;
        # the other rows' targets join the shared candidates (same set, the
        # same accidental-hit mask, the row's own target stays its label)
        negatives = torch.cat([targets[:lo], targets[hi:], negatives])
    loss = loss_fn.compute(session, targets[lo:hi], embedding, negatives, l2)
    return loss * ((hi - lo) / total)


def _all_gather(x: torch.Tensor, world: int) -> torch.Tensor:
    out = x.new_empty((world * x.shape[0], *x.shape[1:]))
    gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor  # renamed in torch 2.13
    gather(out, x.contiguous())
    return out


class GradReducer:
    """Sums every rank's gradient into the global batch's, between backward and the optimizer step.

    ``opt`` is the :class:`~srs_core.optim.OptimizerSet` of ``model``.
    ``reducer(fixed_shapes=True)`` (the steps of a CUDA graph, which all
    have the same shapes) exchanges the number of looked-up ids on its first
    call only and then never reads a value on the host, so it can be
    captured; other calls exchange it every time. A parameter without a
    gradient on a rank (a rank with no rows in a last, small batch) counts
    as zero.
    """

    def __init__(self, model: torch.nn.Module, opt, d: Dist) -> None:
        from .optim import FastSparseAdam

        self.d = d
        emb = model.item_embedding
        self.table = opt.optimizers.get("embedding")
        self.fast = isinstance(self.table, FastSparseAdam)
        self.padding_idx = emb.padding_idx if emb.padding_idx is not None else 0
        table_weight = emb.weight if self.table is not None else None
        self.dense = [p for p in model.parameters() if p.requires_grad and p is not table_weight]
        self._width: int | None = None  # static: the largest number of ids any rank looks up

    def __call__(self, fixed_shapes: bool = False) -> None:
        self._reduce_dense()
        if self.table is None:
            return
        if self.fast and self.table.static_shapes:
            self._reduce_static_rows(fixed_shapes)
        elif self.fast:
            self._reduce_sink_rows()
        else:
            self._reduce_coo_rows()

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

    def _reduce_static_rows(self, fixed_shapes: bool) -> None:
        """sparse_fast with static shapes: its sink's dense buffer holds this
        rank's gradient summed per row; sum it across ranks at the union of
        the ids, write it back, and hand the optimizer the union."""
        sink = self.table.sink
        ids = torch.cat(sink.ids) if sink.ids else torch.zeros(0, dtype=torch.long, device=sink.buffer.device)
        union = self._gather_ids(ids, fixed_shapes)
        rows = sink.buffer.index_select(0, union)  # duplicates read the same row
        dist.all_reduce(rows)
        sink.buffer.index_copy_(0, union, rows)  # duplicates write the same values
        sink.ids[:] = [union]

    def _reduce_sink_rows(self) -> None:
        """sparse_fast, eager: the sink holds ``(ids, rows)`` pieces with
        repeats; gather every rank's pieces, which the optimizer sums per id."""
        sink = self.table.sink
        dim = self.table.weight.shape[1]
        dev = self.table.weight.device
        ids = torch.cat(sink.ids) if sink.ids else torch.zeros(0, dtype=torch.long, device=dev)
        rows = torch.cat(sink.rows) if sink.rows else torch.zeros(0, dim, dtype=self.table.weight.dtype, device=dev)
        all_ids, all_rows = self._gather_pieces(ids, rows)
        sink.ids[:] = [all_ids]
        sink.rows[:] = [all_rows]

    def _reduce_coo_rows(self) -> None:
        """SparseAdam: its COO gradient, gathered from every rank (left
        uncoalesced: SparseAdam sums repeated ids)."""
        w = self.table.param_groups[0]["params"][0]
        if w.grad is not None:
            g = w.grad.coalesce()
            ids, rows = g.indices()[0], g.values()
        else:
            ids = torch.zeros(0, dtype=torch.long, device=w.device)
            rows = torch.zeros(0, w.shape[1], dtype=w.dtype, device=w.device)
        all_ids, all_rows = self._gather_pieces(ids, rows)
        w.grad = torch.sparse_coo_tensor(all_ids.unsqueeze(0), all_rows, w.shape)

    def _gather_pieces(self, ids: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = ids.numel()
        all_ids = self._gather_ids(ids)
        width = all_ids.numel() // self.d.world
        if width > n:  # padded ids carry zero rows
            rows = torch.cat([rows, rows.new_zeros(width - n, rows.shape[1])])
        return all_ids, _all_gather(rows, self.d.world)


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
