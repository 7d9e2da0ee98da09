"""The row-wise Adam of ``sparse_fast``: SparseAdam's update on dense index ops.

For the rows ``r`` touched by a step (gradient ``g`` summed over
duplicates), with ``t`` the number of steps taken so far (global):

``m_r <- m_r + (1 - b1)(g - m_r)``; ``v_r <- v_r + (1 - b2)(g^2 - v_r)``;
``w_r <- w_r - lr sqrt(1 - b2^t) / (1 - b1^t) * m_r / (sqrt(v_r) + eps)``.

Untouched rows keep their weights and moments bit for bit (Algorithm 2).
Two small classes share :class:`FastSparseAdam`'s state and checks:

* :class:`EagerRowAdam` (default) deduplicates the ids once (a scatter/gather
  "slot map" over a persistent ``[N + 1]`` index table, linear time, no
  sort), sums the gradient rows of each unique id into a ``[U, d]`` work
  buffer with ``index_add_``, and adds the deltas of both moments and of the
  weights back with ``index_add_`` (rows are distinct, so adding a delta is
  writing the new value; on CPU ``index_add_`` beat ``index_select`` +
  ``index_copy_``);
* :class:`StaticRowAdam` (``static_shapes=True``, for CUDA graphs) has no
  data-dependent shapes: backward ``index_add_``s the rows into a dense
  ``[N + 1, d]`` buffer that is zero except at touched rows; the step gathers
  the summed gradient for every looked-up position (duplicates included),
  updates those positions (all duplicates of an id compute the same value, so
  ``index_copy_`` writes the same numbers whichever copy lands last), then
  re-zeroes the touched buffer rows. The step count lives in a device tensor.

Either way the result equals ``torch.optim.SparseAdam`` (tests/test_optim.py).
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .memory import advise_huge_pages, zeros_huge
from .routing import RowGradSink


class FastSparseAdam:
    """Lazy Adam for one embedding table. ``FastSparseAdam(weight, ...)`` builds
    an :class:`EagerRowAdam`, or a :class:`StaticRowAdam` with
    ``static_shapes=True``. Gradients come from a :class:`~srs_core.optim.routing.RowGradSink`
    (``sink``) and/or a sparse COO ``weight.grad``; on a Linux CPU,
    ``huge_pages`` puts the table and both moments in transparent huge pages."""

    static_shapes = False

    def __new__(cls, *args, static_shapes: bool = False, **kwargs):
        if cls is FastSparseAdam:
            cls = StaticRowAdam if static_shapes else EagerRowAdam
        return super().__new__(cls)

    def __init__(self, weight: nn.Parameter, *, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, static_shapes: bool = False, sink: RowGradSink | None = None,
                 huge_pages: bool = True) -> None:
        if not lr > 0:
            raise ValueError(f"invalid learning rate {lr}: it must be positive")
        if not eps > 0:
            raise ValueError(f"invalid eps {eps}: it must be positive")
        for b in betas:
            if not 0.0 <= b < 1.0:
                raise ValueError(f"invalid betas {betas}: each must be in [0, 1)")
        if weight.dim() != 2:
            raise ValueError(f"FastSparseAdam optimizes a 2-D embedding table, got shape {tuple(weight.shape)}")
        self.weight = weight
        self.lr = float(lr)
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = float(eps)
        self.sink = sink
        if sink is not None and sink.static_shapes != self.static_shapes:
            raise ValueError("the RowGradSink and FastSparseAdam must agree on static_shapes")
        self._padding_idx = sink.padding_idx if sink is not None else None
        self.exp_avg = zeros_huge(weight, huge_pages)
        self.exp_avg_sq = zeros_huge(weight, huge_pages)
        if huge_pages:
            advise_huge_pages(weight.data, collapse=True)

    # -- bookkeeping -----------------------------------------------------
    @property
    def step_count(self) -> int:
        raise NotImplementedError

    def _set_step_count(self, step: int) -> None:
        raise NotImplementedError

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.weight.grad = None
        if self.sink is not None:
            self.sink.clear()

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step_count, "exp_avg": self.exp_avg, "exp_avg_sq": self.exp_avg_sq, "lr": self.lr,
                "betas": self.betas, "eps": self.eps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("exp_avg", "exp_avg_sq"):
            if tuple(state[key].shape) != tuple(self.weight.shape):
                raise ValueError(
                    f"optimizer state {key} has shape {tuple(state[key].shape)} but the embedding has "
                    f"{tuple(self.weight.shape)}: the checkpoint belongs to another catalogue size"
                )
        with torch.no_grad():  # copy into the existing tensors: CUDA graphs keep their addresses
            self.exp_avg.copy_(state["exp_avg"])
            self.exp_avg_sq.copy_(state["exp_avg_sq"])
        self.lr = float(state["lr"])
        self.betas = tuple(state["betas"])
        self.eps = float(state["eps"])
        self._set_step_count(int(state["step"]))

    def _pieces(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """A COO gradient that reached the table other than through the module."""
        grad = self.weight.grad
        pieces = []
        if grad is not None:
            if not grad.is_sparse:
                raise RuntimeError(
                    "a dense gradient reached the item embedding, so some code read every row "
                    "(e.g. full cross-entropy); sparse_fast only handles row lookups: use the dense optimizer"
                )
            pieces.append((grad._indices()[0], grad._values()))
        return pieces

    @torch.no_grad()
    def step(self) -> None:
        self._step()

    def _step(self) -> None:  # pragma: no cover
        raise NotImplementedError


class EagerRowAdam(FastSparseAdam):
    """Deduplicate, sum per row, update the distinct rows (the default)."""

    def __init__(self, weight: nn.Parameter, **kwargs) -> None:
        super().__init__(weight, **kwargs)
        self._count = 0
        # slot map for linear-time deduplication (see _dedupe)
        self._slot = torch.zeros(weight.shape[0], dtype=torch.long, device=weight.device)
        self._arange = torch.arange(0, device=weight.device)
        self._buf = torch.empty(4, 0, weight.shape[1], dtype=weight.dtype, device=weight.device)

    @property
    def step_count(self) -> int:
        return self._count

    def _set_step_count(self, step: int) -> None:
        self._count = step

    def _dedupe(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(unique, inverse)`` with ``unique[inverse] == ids``, in linear time.

        Every position writes its index into ``slot[id]``; one write per id
        survives, so ``slot[ids]`` names one representative position per id,
        identical for all its duplicates (whichever write won). The
        representatives are the unique ids; a cumulative sum numbers them.
        """
        n = ids.numel()
        if self._arange.numel() < n:
            self._arange = torch.arange(n, device=ids.device)
        pos = self._arange[:n]
        self._slot.index_put_((ids,), pos)
        rep = self._slot[ids]
        first = rep == pos
        unique = ids[first]
        number = torch.cumsum(first, 0).sub_(1)
        return unique, number[rep]

    def _step(self) -> None:
        pieces = self._pieces()
        if self.sink is not None:
            pieces += list(zip(self.sink.ids, self.sink.rows))
        if not pieces and self.weight.grad is None:
            return  # nothing looked up since zero_grad: like SparseAdam with grad None
        self._count += 1
        ids = torch.cat([i for i, _ in pieces]) if len(pieces) > 1 else pieces[0][0]
        if ids.numel() == 0:
            return
        unique, inverse = self._dedupe(ids)
        grad = self._scratch(unique.numel())[0].zero_()
        lo = 0
        for piece_ids, rows in pieces:
            hi = lo + piece_ids.numel()
            grad.index_add_(0, inverse[lo:hi], rows.to(grad.dtype))
            lo = hi
        pad = self._padding_idx
        if pad is not None:  # the padding row gets no gradient (nn.Embedding's padding_idx)
            grad.index_fill_(0, (unique == pad).nonzero().squeeze(1), 0.0)
        b1, b2 = self.betas
        step_size = self.lr * math.sqrt(1 - b2**self._count) / (1 - b1**self._count)
        self._update_unique(unique, grad, step_size)

    def _scratch(self, n: int) -> list[torch.Tensor]:
        """Four ``[n, d]`` work buffers, kept between steps: fresh multi-MB
        temporaries cost page faults on every step on CPU."""
        if self._buf.shape[1] < n:
            cap = max(n, int(self._buf.shape[1] * 1.5))
            self._buf = torch.empty(4, cap, self.weight.shape[1], dtype=self.weight.dtype, device=self.weight.device)
        return [self._buf[i, :n] for i in range(4)]

    def _update_unique(self, rows: torch.Tensor, grad: torch.Tensor, step_size: float) -> None:
        """Lazy Adam on distinct ``rows``, SparseAdam's arithmetic step for step
        (``grad``, a scratch view, is consumed)."""
        b1, b2 = self.betas
        _, m, v, delta = self._scratch(rows.numel())
        torch.index_select(self.exp_avg, 0, rows, out=m)
        torch.index_select(self.exp_avg_sq, 0, rows, out=v)
        torch.sub(grad, m, out=delta).mul_(1 - b1)  # m <- m + (1 - b1)(g - m)
        self.exp_avg.index_add_(0, rows, delta)
        m.add_(delta)
        dv = grad.mul_(grad).sub_(v).mul_(1 - b2)  # v <- v + (1 - b2)(g^2 - v)
        self.exp_avg_sq.index_add_(0, rows, dv)
        denom = v.add_(dv).sqrt_().add_(self.eps)
        self.weight.data.index_add_(0, rows, m.div_(denom).mul_(-step_size))


class StaticRowAdam(FastSparseAdam):
    """No data-dependent shapes and no host reads: capturable in a CUDA graph."""

    static_shapes = True

    def __init__(self, weight: nn.Parameter, **kwargs) -> None:
        super().__init__(weight, **kwargs)
        self._step_t = torch.zeros((), dtype=torch.float64, device=weight.device)

    @property
    def step_count(self) -> int:
        return int(self._step_t.item())

    def _set_step_count(self, step: int) -> None:
        self._step_t.fill_(step)

    def _step(self) -> None:
        if self.sink is None:
            raise RuntimeError("static_shapes=True needs the embedding's lookups routed to a RowGradSink")
        buffer = self.sink.buffer
        for piece_ids, rows in self._pieces():  # a COO gradient from code that bypassed the module
            buffer.index_add_(0, piece_ids, rows.to(buffer.dtype))
            self.sink.ids.append(piece_ids)
        if not self.sink.ids:
            return
        ids = torch.cat(self.sink.ids) if len(self.sink.ids) > 1 else self.sink.ids[0]
        if self._padding_idx is not None:
            buffer[self._padding_idx].zero_()  # the padding row gets no gradient
        grad = buffer.index_select(0, ids)
        buffer.index_fill_(0, ids, 0.0)
        self.sink.ids.clear()
        b1, b2 = self.betas
        self._step_t.add_(1)
        step_size = (self.lr * torch.sqrt(1 - torch.pow(b2, self._step_t)) / (1 - torch.pow(b1, self._step_t)))
        self._update(ids, grad, step_size.to(self.weight.dtype))

    def _update(self, rows: torch.Tensor, grad: torch.Tensor, step_size: torch.Tensor) -> None:
        """Lazy Adam on ``rows`` that may repeat: every copy of a row computes
        the same new values, so ``index_copy_`` is right whichever copy lands."""
        b1, b2 = self.betas
        w = self.weight.data
        m = self.exp_avg.index_select(0, rows)
        v = self.exp_avg_sq.index_select(0, rows)
        p = w.index_select(0, rows)
        m.lerp_(grad, 1 - b1)
        v.lerp_(grad.mul_(grad), 1 - b2)
        denom = torch.sqrt(v, out=grad).add_(self.eps)
        p.sub_(m.div(denom).mul_(step_size))
        self.exp_avg.index_copy_(0, rows, m)
        self.exp_avg_sq.index_copy_(0, rows, v)
        w.index_copy_(0, rows, p)
