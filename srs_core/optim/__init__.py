"""Optimizers for the item embedding and the rest of a model (dissertation Section 4.3).

Three kinds, chosen with ``build_optimizer(model, kind)``:

``dense``        Algorithm 1: ``torch.optim.Adam`` over every parameter. Every
                 item row's moments decay and its weight moves on every step,
                 so a step costs O(N d) whatever the batch.
``sparse``       Algorithm 2: ``torch.optim.SparseAdam`` on the item embedding
                 (built with ``sparse=True``) plus Adam on everything else.
                 Only the rows a batch looked up are touched.
``sparse_fast``  :class:`~srs_core.optim.rowadam.FastSparseAdam` on the item embedding plus Adam on the
                 rest: the same arithmetic as SparseAdam (lazy Adam on the
                 touched rows, bias correction by the global step count, eps
                 added to ``sqrt(v)`` before the bias-corrected step size), done
                 with a few dense index ops instead of sparse tensors.

Full cross-entropy reads every item row, so its gradient is dense;
:func:`~srs_core.optim.registry.check_combination` rejects it with the sparse kinds.

The package, from the bottom up: :mod:`.memory` (huge pages for the big
tables), :mod:`.routing` (the item embedding's lookups hand their gradient
rows to the optimizer; one view of them for the data-parallel reducer),
:mod:`.rowadam` (the row-wise Adam, eager and graph-safe), :mod:`.registry`
(the kinds, the pairings that work, :func:`~srs_core.optim.registry.build_optimizer`).
"""
from .memory import advise_huge_pages
from .registry import (OPTIMIZERS, SPARSE_KINDS, OptimizerSet, build_optimizer,
                       check_combination, embedding_is_sparse)
from .routing import RowGradEmbedding, RowGradSink, route_lookups, row_gradient, unroute_lookups
from .rowadam import EagerRowAdam, FastSparseAdam, StaticRowAdam

__all__ = ["OPTIMIZERS", "SPARSE_KINDS", "EagerRowAdam", "FastSparseAdam", "OptimizerSet",
           "RowGradEmbedding", "RowGradSink", "StaticRowAdam", "advise_huge_pages", "build_optimizer",
           "check_combination", "embedding_is_sparse", "route_lookups", "row_gradient", "unroute_lookups"]
