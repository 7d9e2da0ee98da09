"""Optimizers for the item embedding and the rest of a model (dissertation Section 4.3).

Three kinds, chosen with ``build_optimizer(model, kind)``:

``dense``        Algorithm 1: ``torch.optim.Adam`` over every parameter. Every
                 item row's moments decay and its weight moves on every step,
                 so a step costs O(N d) whatever the batch.
``sparse``       Algorithm 2: ``torch.optim.SparseAdam`` on the item embedding
                 (built with ``sparse=True``) plus Adam on everything else.
                 Only the rows a batch looked up are touched.
``sparse_fast``  :class:`FastSparseAdam` on the item embedding plus Adam on the
                 rest: the same arithmetic as SparseAdam (lazy Adam on the
                 touched rows, bias correction by the global step count, eps
                 added to ``sqrt(v)`` before the bias-corrected step size), done
                 with a few dense index ops instead of sparse tensors.

Full cross-entropy reads every item row, so its gradient is dense;
:func:`check_combination` rejects it with the sparse kinds.

How ``sparse_fast`` gets its gradient
-------------------------------------
``build_optimizer`` routes the lookups of ``model.item_embedding`` (the
model's own, and those of :func:`srs_core.scoring.item_vectors`) through a
small autograd function (:class:`RowGradEmbedding`). Its backward hands the
gradient rows and their ids to the optimizer's :class:`RowGradSink` instead of
building a sparse COO tensor: no ``coalesce``, no sparse additions. A step then

* eager (default): deduplicates the ids once (a scatter/gather "slot map" over
  a persistent ``[N + 1]`` index table, linear time, no sort), sums the
  gradient rows of each unique id into a ``[U, d]`` work buffer with
  ``index_add_``, gathers the U rows of both moments, computes SparseAdam's
  deltas with in-place ops in work buffers kept between steps, and adds the
  deltas of the two moments and of the weights back with ``index_add_``
  (rows are distinct, so adding a delta is writing the new value; on CPU
  ``index_add_`` beat ``index_select`` + ``index_copy_`` of the weights);
* ``static_shapes=True`` (for CUDA graphs): no data-dependent shapes. Backward
  ``index_add_``s the rows into a dense ``[N + 1, d]`` gradient buffer that is
  zero except at touched rows; the step gathers the summed gradient for every
  looked-up position (duplicates included), updates those positions (all
  duplicates of an id compute the same value, so ``index_copy_`` writes the
  same numbers whichever copy lands last), then re-zeroes the touched buffer
  rows. The step count lives in a device tensor.

Either way the result equals ``torch.optim.SparseAdam`` (tests/test_optim.py).
A gradient that reaches the table other than through the module (a COO
gradient from ``sparse=True``) is merged in; a dense one raises, because it
would mean some code reads every row (use ``dense``).
"""
from __future__ import annotations

import ctypes
import math
import sys
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

OPTIMIZERS: dict[str, str] = {
    "dense": "Adam over every parameter (Algorithm 1)",
    "sparse": "torch.optim.SparseAdam on the item embedding + Adam on the rest (Algorithm 2)",
    "sparse_fast": "SparseAdam's update done with dense index ops (same numbers, faster) + Adam on the rest",
}

SPARSE_KINDS = ("sparse", "sparse_fast")
DENSE_GRADIENT_LOSSES = ("ce",)


def _check_kind(kind: str) -> None:
    if kind not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {kind!r}; choose one of {', '.join(OPTIMIZERS)}")


def embedding_is_sparse(kind: str) -> bool:
    """The ``sparse=`` flag a model's item embedding needs for optimizer ``kind``."""
    _check_kind(kind)
    return kind in SPARSE_KINDS


def check_combination(loss_name: str, optimizer_kind: str) -> None:
    """Raise a clear ``ValueError`` for a loss x optimizer pairing that cannot work."""
    _check_kind(optimizer_kind)
    if loss_name in DENSE_GRADIENT_LOSSES and optimizer_kind in SPARSE_KINDS:
        raise ValueError(
            f"full cross-entropy (--loss {loss_name}) cannot use --optimizer {optimizer_kind}: "
            "its gradient touches every item row; use --optimizer dense or a sampled loss "
            "(ns, triplet, sampled_softmax)"
        )


# --------------------------------------------------------------------------
# Routing embedding lookups to the optimizer


class RowGradSink:
    """Collects the gradient rows of the item-embedding lookups of one step.

    Eager mode keeps ``(ids, rows)`` pieces; static mode adds the rows into
    ``buffer`` (dense ``[N + 1, d]``, zero except at recorded rows) and keeps
    only the ids. Rows of ``padding_idx`` are collected like any other (no
    per-row masking: most lookups hold no padding); the optimizer zeroes the
    padding row's summed gradient, so it gets none, as in ``nn.Embedding``.
    """

    def __init__(self, weight: torch.Tensor, padding_idx: int | None, static_shapes: bool) -> None:
        self.padding_idx = padding_idx
        self.static_shapes = static_shapes
        self.ids: list[torch.Tensor] = []
        self.rows: list[torch.Tensor] = []
        self.buffer = torch.zeros_like(weight, memory_format=torch.contiguous_format) if static_shapes else None

    def add(self, ids: torch.Tensor, grad: torch.Tensor) -> None:
        ids = ids.reshape(-1)
        rows = grad.reshape(ids.numel(), -1)
        if self.static_shapes:
            self.buffer.index_add_(0, ids, rows.to(self.buffer.dtype))
        else:
            self.rows.append(rows)
        self.ids.append(ids)

    def __len__(self) -> int:
        return len(self.ids)

    def clear(self) -> None:
        """Forget recorded lookups (and zero their rows of the static buffer)."""
        if self.static_shapes and self.ids:
            self.buffer.index_fill_(0, torch.cat(self.ids), 0.0)
        self.ids.clear()
        self.rows.clear()


class _RowLookup(torch.autograd.Function):
    """``weight[ids]`` whose backward gives its rows to a :class:`RowGradSink`
    (and no gradient tensor to ``weight``)."""

    @staticmethod
    def forward(ctx, weight: torch.Tensor, ids: torch.Tensor, sink: RowGradSink) -> torch.Tensor:
        ctx.sink = sink
        ctx.save_for_backward(ids)
        return F.embedding(ids, weight)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (ids,) = ctx.saved_tensors
        ctx.sink.add(ids, grad)
        return None, None, None


class RowGradEmbedding(nn.Embedding):
    """An ``nn.Embedding`` whose lookups report gradient rows to ``row_grad_sink``.

    Installed on an existing module by :func:`route_lookups` (the module keeps
    its weight, its state-dict keys and ``isinstance(m, nn.Embedding)``).
    """

    row_grad_sink: RowGradSink

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return _RowLookup.apply(self.weight, input, self.row_grad_sink)


def route_lookups(embedding: nn.Embedding, sink: RowGradSink) -> None:
    """Send the gradients of ``embedding``'s lookups to ``sink`` (in place)."""
    if not isinstance(embedding, nn.Embedding):
        raise TypeError(f"expected an nn.Embedding, got {type(embedding).__name__}")
    if embedding.max_norm is not None or embedding.scale_grad_by_freq:
        raise ValueError("sparse_fast supports plain embeddings only (no max_norm, no scale_grad_by_freq)")
    embedding.__class__ = RowGradEmbedding
    embedding.row_grad_sink = sink


def unroute_lookups(embedding: nn.Embedding) -> None:
    """Undo :func:`route_lookups`."""
    if isinstance(embedding, RowGradEmbedding):
        embedding.__class__ = nn.Embedding
        del embedding.row_grad_sink


# --------------------------------------------------------------------------
# Huge pages for the big CPU tables

_MADV_HUGEPAGE, _MADV_COLLAPSE = 14, 25
_HUGE = 2 << 20  # 2 MiB
_libc = None


def advise_huge_pages(t: torch.Tensor, *, collapse: bool) -> bool:
    """Ask Linux to back ``t``'s memory with 2 MiB transparent huge pages.

    A step reads and writes a few thousand random rows of tables of up to
    gigabytes; with 4 KiB pages nearly every row costs a TLB miss, with huge
    pages far fewer (measured: about 5% of a whole STAMP step at 1e6 items).
    Advise memory before its first touch, so the page faults allocate huge
    pages; ``collapse=True`` also converts pages already present
    (``MADV_COLLAPSE``, Linux 6.1+; about 1 s per 400 MB, once). Best effort:
    returns False (and changes nothing) off Linux, on CUDA, for small tensors
    or when the kernel refuses.
    """
    global _libc
    if t.device.type != "cpu" or not sys.platform.startswith("linux") or not t.is_contiguous():
        return False
    addr, nbytes = t.data_ptr(), t.numel() * t.element_size()
    lo, hi = -(-addr // _HUGE) * _HUGE, (addr + nbytes) // _HUGE * _HUGE
    if hi - lo < 2 * _HUGE:
        return False
    try:
        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
            _libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        ok = _libc.madvise(lo, hi - lo, _MADV_HUGEPAGE) == 0
        if ok and collapse:
            _libc.madvise(lo, hi - lo, _MADV_COLLAPSE)  # may fail (old kernel): khugepaged will get there
        return ok
    except (OSError, AttributeError):
        return False


def _zeros_huge(like: torch.Tensor, huge_pages: bool) -> torch.Tensor:
    out = torch.empty_like(like, memory_format=torch.contiguous_format)
    if huge_pages:
        advise_huge_pages(out, collapse=False)  # before the first touch: faults take huge pages
    return out.zero_()


# --------------------------------------------------------------------------
# The fast row-wise Adam


class FastSparseAdam:
    """``torch.optim.SparseAdam``'s update for one embedding table, on dense index ops.

    For the rows ``r`` touched by a step (gradient ``g`` summed over
    duplicates), with ``t`` the number of steps taken so far (global):

    ``m_r <- m_r + (1 - b1)(g - m_r)``; ``v_r <- v_r + (1 - b2)(g^2 - v_r)``;
    ``w_r <- w_r - lr sqrt(1 - b2^t) / (1 - b1^t) * m_r / (sqrt(v_r) + eps)``.

    Untouched rows keep their weights and moments bit for bit (Algorithm 2).
    Gradients come from a :class:`RowGradSink` (``sink``) and/or a sparse COO
    ``weight.grad``. On a Linux CPU, ``huge_pages`` puts the table and both
    moments in transparent huge pages (:func:`advise_huge_pages`).
    """

    def __init__(
        self,
        weight: nn.Parameter,
        *,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        static_shapes: bool = False,
        sink: RowGradSink | None = None,
        huge_pages: bool = True,
    ) -> None:
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
        self.static_shapes = bool(static_shapes)
        self.sink = sink
        if sink is not None and sink.static_shapes != self.static_shapes:
            raise ValueError("the RowGradSink and FastSparseAdam must agree on static_shapes")
        self._padding_idx = sink.padding_idx if sink is not None else None
        self.exp_avg = _zeros_huge(weight, huge_pages)
        self.exp_avg_sq = _zeros_huge(weight, huge_pages)
        if huge_pages:
            advise_huge_pages(weight.data, collapse=True)
        if self.static_shapes:
            self._step_t = torch.zeros((), dtype=torch.float64, device=weight.device)
            self._own_buffer: torch.Tensor | None = None
        else:
            self._step = 0
            # slot map for linear-time deduplication (see _dedupe)
            self._slot = torch.zeros(weight.shape[0], dtype=torch.long, device=weight.device)
            self._arange = torch.arange(0, device=weight.device)
            self._buf = torch.empty(4, 0, weight.shape[1], dtype=weight.dtype, device=weight.device)

    # -- bookkeeping -----------------------------------------------------
    @property
    def step_count(self) -> int:
        return int(self._step_t.item()) if self.static_shapes else self._step

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.weight.grad = None
        if self.sink is not None:
            self.sink.clear()

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step_count,
            "exp_avg": self.exp_avg,
            "exp_avg_sq": self.exp_avg_sq,
            "lr": self.lr,
            "betas": self.betas,
            "eps": self.eps,
        }

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
        if self.static_shapes:
            self._step_t.fill_(int(state["step"]))
        else:
            self._step = int(state["step"])

    # -- the step ----------------------------------------------------------
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

    def _pieces(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
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
        if self.static_shapes:
            self._step_static()
        else:
            self._step_eager()

    def _step_eager(self) -> None:
        pieces = self._pieces()
        if self.sink is not None:
            pieces += list(zip(self.sink.ids, self.sink.rows))
        if not pieces and self.weight.grad is None:
            return  # nothing looked up since zero_grad: like SparseAdam with grad None
        self._step += 1
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
        step_size = self.lr * math.sqrt(1 - b2**self._step) / (1 - b1**self._step)
        self._update_unique(unique, grad, step_size)

    def _step_static(self) -> None:
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
        self._update_static(ids, grad, step_size.to(self.weight.dtype))

    def _scratch(self, n: int) -> list[torch.Tensor]:
        """Four ``[n, d]`` work buffers, kept between steps: fresh multi-MB
        temporaries cost page faults on every step on CPU."""
        if self._buf.shape[1] < n:
            cap = max(n, int(self._buf.shape[1] * 1.5))
            self._buf = torch.empty(4, cap, self.weight.shape[1], dtype=self.weight.dtype, device=self.weight.device)
        return [self._buf[i, :n] for i in range(4)]

    def _update_unique(self, rows: torch.Tensor, grad: torch.Tensor, step_size: float) -> None:
        """Lazy Adam on distinct ``rows``, SparseAdam's arithmetic step for step:
        deltas of the moments and the weights are added in place with
        ``index_add_`` (on CPU faster than gathering the weights and copying
        them back). ``grad`` (a scratch view) is consumed."""
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

    def _update_static(self, rows: torch.Tensor, grad: torch.Tensor, step_size: torch.Tensor) -> None:
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


# --------------------------------------------------------------------------
# The set handed to the trainer


class OptimizerSet:
    """One or two optimizers stepped together (item embedding + the rest)."""

    def __init__(self, kind: str, optimizers: dict[str, Any]) -> None:
        self.kind = kind
        self.optimizers = optimizers

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for opt in self.optimizers.values():
            opt.step()

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("kind") != self.kind:
            raise ValueError(
                f"the checkpoint's optimizer is {state.get('kind')!r} but this run uses {self.kind!r}; "
                "resume with the same --optimizer"
            )
        missing = set(self.optimizers) ^ set(state["optimizers"])
        if missing:
            raise ValueError(f"optimizer state does not match this model (parts {sorted(missing)})")
        for k, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][k])

    def __repr__(self) -> str:
        return f"OptimizerSet({self.kind!r}, parts={list(self.optimizers)})"


def build_optimizer(
    model: nn.Module,
    kind: str,
    lr: float = 1e-3,
    *,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    static_shapes: bool = False,
    capturable: bool = False,
    route: bool = True,
) -> OptimizerSet:
    """The optimizers of ``model`` (which owns ``item_embedding``) for ``kind``.

    ``static_shapes`` (``sparse_fast`` only) selects the sort-free,
    shape-static step usable inside a CUDA graph; ``capturable`` makes the
    dense Adam capturable (CUDA graphs). ``route=False`` leaves the
    embedding's lookups alone so ``sparse_fast`` reads the COO gradient of a
    ``sparse=True`` table (only for benchmarking the two routes).
    """
    _check_kind(kind)
    emb = getattr(model, "item_embedding", None)
    if not isinstance(emb, nn.Embedding):
        raise TypeError("build_optimizer needs a model with an nn.Embedding `item_embedding` (a SessionEncoder)")
    if static_shapes and kind != "sparse_fast":
        raise ValueError("static_shapes only applies to --optimizer sparse_fast")
    # Adam's fused kernel (CPU and CUDA) does the same arithmetic in one pass;
    # CUDA graphs use the capturable multi-tensor version instead.
    adam_kw = dict(lr=lr, betas=betas, eps=eps)
    if capturable:
        adam_kw["capturable"] = True
    else:
        adam_kw["fused"] = True
    if kind == "dense":
        if emb.sparse:
            raise ValueError(
                "the dense optimizer needs a dense item embedding: build the model with "
                "sparse=embedding_is_sparse('dense') (False)"
            )
        return OptimizerSet(kind, {"all": torch.optim.Adam(model.parameters(), **adam_kw)})
    rest = [p for p in model.parameters() if p is not emb.weight and p.requires_grad]
    parts: dict[str, Any] = {}
    if kind == "sparse":
        if not emb.sparse:
            raise ValueError(
                "SparseAdam needs sparse gradients: build the model with sparse=embedding_is_sparse('sparse') (True)"
            )
        parts["embedding"] = torch.optim.SparseAdam([emb.weight], lr=lr, betas=betas, eps=eps)
    else:
        sink = None
        if route or static_shapes:
            sink = RowGradSink(emb.weight, emb.padding_idx, static_shapes)
            route_lookups(emb, sink)
        elif not emb.sparse:
            raise ValueError("sparse_fast with route=False reads COO gradients: build the model with sparse=True")
        parts["embedding"] = FastSparseAdam(
            emb.weight, lr=lr, betas=betas, eps=eps, static_shapes=static_shapes, sink=sink
        )
    if rest:
        parts["rest"] = torch.optim.Adam(rest, **adam_kw)
    return OptimizerSet(kind, parts)
