"""Routing the item embedding's lookups to the optimizer (``sparse_fast``).

``build_optimizer`` routes the lookups of ``model.item_embedding`` (the
model's own, and those of :func:`srs_core.scoring.item_vectors`) through a
small autograd function (:class:`RowGradEmbedding`). Its backward hands the
gradient rows and their ids to a :class:`RowGradSink` instead of building a
sparse COO tensor: no ``coalesce``, no sparse additions.

:func:`row_gradient` gives the data-parallel reducer
(:mod:`srs_core.training.distributed`) one view of the item table's gradient
rows, whichever optimizer holds them, so that it needs to know none of them.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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




class StaticRows:
    """The table's gradient summed per row in a dense buffer (static shapes):
    ``ids()`` the looked-up ids, ``read``/``write`` rows of the buffer, and
    ``keep(ids)`` the ids the optimizer updates."""

    static = True

    def __init__(self, sink: RowGradSink) -> None:
        self.sink = sink

    def ids(self) -> torch.Tensor:
        s = self.sink
        return torch.cat(s.ids) if s.ids else torch.zeros(0, dtype=torch.long, device=s.buffer.device)

    def read(self, ids: torch.Tensor) -> torch.Tensor:
        return self.sink.buffer.index_select(0, ids)

    def write(self, ids: torch.Tensor, rows: torch.Tensor) -> None:
        self.sink.buffer.index_copy_(0, ids, rows)  # duplicates write the same values

    def keep(self, ids: torch.Tensor) -> None:
        self.sink.ids[:] = [ids]


class PieceRows:
    """The table's gradient as ``(ids, rows)`` pieces with repeats, held by a
    :class:`RowGradSink` (eager ``sparse_fast``) or by a COO ``weight.grad``
    (``torch.optim.SparseAdam``, which sums repeated ids itself)."""

    static = False

    def __init__(self, weight: torch.Tensor, sink: RowGradSink | None) -> None:
        self.weight, self.sink = weight, sink

    def pieces(self) -> tuple[torch.Tensor, torch.Tensor]:
        w, s = self.weight, self.sink
        if s is not None:
            ids, rows = s.ids, s.rows
        elif w.grad is not None:
            g = w.grad.coalesce()
            ids, rows = [g.indices()[0]], [g.values()]
        else:
            ids, rows = [], []
        return (torch.cat(ids) if ids else torch.zeros(0, dtype=torch.long, device=w.device),
                torch.cat(rows) if rows else torch.zeros(0, w.shape[1], dtype=w.dtype, device=w.device))

    def replace(self, ids: torch.Tensor, rows: torch.Tensor) -> None:
        if self.sink is not None:
            self.sink.ids[:] = [ids]
            self.sink.rows[:] = [rows]
        else:
            self.weight.grad = torch.sparse_coo_tensor(ids.unsqueeze(0), rows, self.weight.shape)


def row_gradient(table_optimizer) -> StaticRows | PieceRows:
    """The view of an item-table optimizer's gradient rows (``sparse`` or ``sparse_fast``)."""
    sink = getattr(table_optimizer, "sink", None)
    if sink is not None and sink.static_shapes:
        return StaticRows(sink)
    weight = getattr(table_optimizer, "weight", None)
    if weight is None:  # torch.optim.SparseAdam
        weight = table_optimizer.param_groups[0]["params"][0]
    return PieceRows(weight, sink)
