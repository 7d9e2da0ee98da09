"""Item popularity and first-order item-to-item transitions.

- **popularity** scores item ``j`` by its number of occurrences in the train
  split. Every sample gets the same scores.
- **transition** scores item ``j`` by ``count(last -> j)``, the number of times
  ``j`` directly follows the prefix's last item in the train sessions, and
  breaks ties between equal counts by popularity: the score is the pair
  ``(count, popularity)`` compared lexicographically, which as one number is
  ``count + popularity / (max popularity + 1)``. Items with equal count *and*
  equal popularity still tie, and ties count against the target.

A transition row holds only the items that ever followed the last item, so
ranks come exactly from the sparse rows (:func:`sparse_ranks`); the
dense form (:func:`transition_scores`) exists for small cases and tests.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data.dataset import ProcessedDataset, Split
from .sparse import Prefixes, SparseScores, expand, sparse_ranks


def _load(dataset: ProcessedDataset | str | Path) -> ProcessedDataset:
    return dataset if isinstance(dataset, ProcessedDataset) else ProcessedDataset.load(dataset)


def train_popularity(train: Split, n_items: int) -> np.ndarray:
    """Train occurrence count of ids ``0..N`` (int64; the padding id 0 counts 0)."""
    pop = np.bincount(np.asarray(train.items, dtype=np.int64), minlength=n_items + 1)
    pop[0] = 0
    return pop


def popularity_scores(dataset: ProcessedDataset | str | Path) -> np.ndarray:
    """Train occurrence count of items ``0..N`` as float64; the padding id 0 scores ``-inf``."""
    counts = _load(dataset).item_counts().astype(np.float64)
    counts[0] = -np.inf
    return counts


def popularity_ranks(popularity: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Ranks of ``targets`` when every item ``j`` scores ``popularity[j]`` (ids ``1..N``)."""
    sorted_pop = np.sort(popularity[1:])
    return len(sorted_pop) - np.searchsorted(sorted_pop, popularity[targets], side="left")


def row_scores(indptr: np.ndarray, cols: np.ndarray, values: np.ndarray, last: np.ndarray) -> SparseScores:
    """Row ``last[b]`` of a row-compressed item x item table as the scores of row ``b``."""
    lo = indptr[last]
    rows, at = expand(lo, indptr[last + 1] - lo)
    return SparseScores(rows, cols[at], values[at].astype(np.float64))


@dataclass(frozen=True)
class TransitionCounts:
    """Counts of ``a -> b`` (``b`` right after ``a`` in a train session), row-compressed.

    Row ``a`` is ``cols[indptr[a]:indptr[a + 1]]`` (sorted next items) with
    ``counts`` alongside; ``popularity[j]`` is item ``j``'s train count.
    """

    n_items: int
    indptr: np.ndarray  # int64 [N + 2]
    cols: np.ndarray  # int64 [nnz]
    counts: np.ndarray  # int64 [nnz]
    popularity: np.ndarray  # int64 [N + 1]
    keys: np.ndarray  # int64 [nnz], a * (N + 1) + b, sorted: the entries' (row, col) as one number

    @classmethod
    def from_split(cls, split: Split, n_items: int) -> "TransitionCounts":
        items = np.asarray(split.items, dtype=np.int64)
        follows = np.ones(max(len(items) - 1, 0), dtype=bool)
        inner = np.asarray(split.offsets[1:-1], dtype=np.int64)  # session starts after the first
        follows[inner[(inner > 0) & (inner < len(items))] - 1] = False  # no pair across sessions
        keys = items[:-1][follows] * (n_items + 1) + items[1:][follows]
        keys, counts = np.unique(keys, return_counts=True)
        rows, cols = np.divmod(keys, n_items + 1)
        indptr = np.zeros(n_items + 2, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=n_items + 1), out=indptr[1:])
        return cls(n_items, indptr, cols, counts.astype(np.int64), train_popularity(split, n_items), keys)

    def count(self, last: np.ndarray, target: np.ndarray) -> np.ndarray:
        """``count(last -> target)`` for paired arrays (0 where ``target`` never followed ``last``)."""
        if len(self.keys) == 0:
            return np.zeros(len(last), dtype=np.int64)
        query = np.asarray(last, np.int64) * (self.n_items + 1) + np.asarray(target, np.int64)
        pos = np.minimum(np.searchsorted(self.keys, query), len(self.keys) - 1)
        return np.where(self.keys[pos] == query, self.counts[pos], 0)


def transition_scores(model: TransitionCounts, last: np.ndarray) -> torch.Tensor:
    """Dense scores ``[B, N + 1]`` (float64): count after ``last`` + popularity / (max + 1); column 0 is ``-inf``.

    Meant for small cases and tests; evaluation uses the exact sparse ranks.
    """
    last = np.asarray(last, dtype=np.int64)
    pop = model.popularity.astype(np.float64)
    scores = np.tile(pop / (pop.max() + 1.0), (len(last), 1))
    for b, a in enumerate(last):
        lo, hi = model.indptr[a], model.indptr[a + 1]
        scores[b, model.cols[lo:hi]] += model.counts[lo:hi]
    scores[:, 0] = -np.inf
    return torch.from_numpy(scores)


def transition_ranks(model: TransitionCounts, last: np.ndarray, targets: np.ndarray,
                     max_entries: int = 4_000_000) -> np.ndarray:
    """Exact ranks of ``targets`` under the transition scores, expanding at most about
    ``max_entries`` row entries at a time."""
    last = np.asarray(last, dtype=np.int64)
    targets = np.asarray(targets, dtype=np.int64)
    ends = np.cumsum(model.indptr[last + 1] - model.indptr[last])
    out = np.empty(len(last), dtype=np.int64)
    start = 0
    while start < len(last):
        base = ends[start - 1] if start else 0
        stop = max(start + 1, int(np.searchsorted(ends, base + max_entries, side="right")))
        scores = row_scores(model.indptr, model.cols, model.counts, last[start:stop])
        out[start:stop] = sparse_ranks(scores, targets[start:stop], model.n_items, model.popularity)
        start = stop
    return out


def sample_pairs(split: Split) -> tuple[np.ndarray, np.ndarray]:
    """``(last item of the prefix, target)`` of every augmented sample of ``split``."""
    sess, pos = split.sample_index()
    at = np.asarray(split.offsets, dtype=np.int64)[sess] + pos
    items = np.asarray(split.items, dtype=np.int64)
    return items[at - 1], items[at]


class PopularityTies:
    """Mixin of sr, ar, sknn and vsknn: equal scores ordered by train popularity when
    ``popularity_ties`` is set, else left tied (``tie_break`` is what :func:`sparse_ranks` takes)."""

    popularity_ties: bool
    popularity: np.ndarray | None

    @property
    def tie_break(self) -> np.ndarray | None:
        return self.popularity if self.popularity_ties else None


@dataclass
class Popularity:
    """Train popularity: no item-specific score, every item ranked by its train count."""

    batch_size: int = 65_536  # test samples per evaluation chunk
    popularity: np.ndarray | None = field(default=None, init=False, repr=False)
    n_items: int = field(default=0, init=False, repr=False)

    def fit(self, train: Split, n_items: int) -> "Popularity":
        self.n_items, self.popularity = n_items, train_popularity(train, n_items)
        return self

    def score(self, prefixes: Prefixes) -> SparseScores:
        empty = np.zeros(0, dtype=np.int64)
        return SparseScores(empty, empty, np.zeros(0))

    @property
    def tie_break(self) -> np.ndarray:
        return self.popularity


@dataclass
class Transition:
    """First-order transition counts after the last item, ties broken by popularity."""

    batch_size: int = 4_096
    table: TransitionCounts | None = field(default=None, init=False, repr=False)

    def fit(self, train: Split, n_items: int) -> "Transition":
        self.table = TransitionCounts.from_split(train, n_items)
        return self

    def score(self, prefixes: Prefixes) -> SparseScores:
        t = self.table
        return row_scores(t.indptr, t.cols, t.counts, prefixes.last)

    @property
    def tie_break(self) -> np.ndarray:
        return self.table.popularity
