"""Model-free baselines: item popularity and first-order item-to-item transitions.

Both are evaluated like the neural models: every test sample (prefix, next
item) of a processed dataset ranks the target among *all* items ``1..N`` with
the tie rule of :mod:`srs_core.metrics` (rank = number of items scoring at
least as high as the target, the target included), and
:class:`srs_core.metrics.RankAccumulator` turns ranks into P@K and MRR@K.

- **popularity** scores item ``j`` by its number of occurrences in the train
  split. Every sample gets the same scores.
- **transition** scores item ``j`` by ``count(last -> j)``, the number of times
  ``j`` directly follows the prefix's last item in the train sessions, and
  breaks ties between equal counts by popularity: the score is the pair
  ``(count, popularity)`` compared lexicographically, which as one number is
  ``count + popularity / (max popularity + 1)``. Items with equal count *and*
  equal popularity still tie, and ties count against the target.

Scoring all ``N`` items densely for every sample costs ``samples x N``
comparisons (10^12 at MeLi scale), so ranks are computed exactly from the
sparse structure instead: a transition row holds only the items that ever
followed the last item, every other item scores ``(0, popularity)``, and a
sorted copy of the popularity counts answers "how many items are at least as
popular" with one binary search. The dense form (:func:`transition_scores`)
exists for small cases; the tests check that both give the ranks of
:func:`srs_core.metrics.ranks_from_scores`. Memory stays bounded: samples are
processed in chunks, and transition rows are expanded at most
``max_entries`` at a time.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .data.dataset import ProcessedDataset, Split
from .metrics import RankAccumulator

#: Names of the baselines, as given to :func:`evaluate_baseline`.
BASELINES = ("popularity", "transition")


def _load(dataset: ProcessedDataset | str | Path) -> ProcessedDataset:
    return dataset if isinstance(dataset, ProcessedDataset) else ProcessedDataset.load(dataset)


def popularity_scores(dataset: ProcessedDataset | str | Path) -> np.ndarray:
    """Train occurrence count of items ``0..N`` as float64; the padding id 0 scores ``-inf``."""
    counts = _load(dataset).item_counts().astype(np.float64)
    counts[0] = -np.inf
    return counts


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
        popularity = np.bincount(items, minlength=n_items + 1)
        popularity[0] = 0
        return cls(n_items, indptr, cols, counts.astype(np.int64), popularity, keys)

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


def _at_least_as_popular(sorted_pop: np.ndarray, pop_t: np.ndarray) -> np.ndarray:
    """Number of items ``1..N`` whose popularity is ``>=`` each ``pop_t`` (tie rule: ties count)."""
    return len(sorted_pop) - np.searchsorted(sorted_pop, pop_t, side="left")


def popularity_ranks(popularity: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Ranks of ``targets`` when every item ``j`` scores ``popularity[j]`` (ids ``1..N``)."""
    sorted_pop = np.sort(popularity[1:])
    return _at_least_as_popular(sorted_pop, popularity[targets])


def transition_ranks(model: TransitionCounts, last: np.ndarray, targets: np.ndarray,
                     max_entries: int = 4_000_000) -> np.ndarray:
    """Exact ranks of ``targets`` under the transition scores of the module docstring.

    For a target seen after ``last`` (count ``c > 0``) the rank counts the row
    entries with a higher count, or an equal count and popularity at least the
    target's. For an unseen target (``c = 0``) every row entry scores higher,
    and so does every item outside the row that is at least as popular.
    """
    last = np.asarray(last, dtype=np.int64)
    targets = np.asarray(targets, dtype=np.int64)
    pop = model.popularity
    sorted_pop = np.sort(pop[1:])
    c_t = model.count(last, targets)
    p_t = pop[targets]
    lo, hi = model.indptr[last], model.indptr[last + 1]
    row_len = hi - lo
    above = np.zeros(len(last), dtype=np.int64)  # row entries scoring >= target (for c_t > 0)
    pop_ge = np.zeros(len(last), dtype=np.int64)  # row entries at least as popular (for c_t == 0)
    ends = np.cumsum(row_len)
    start = 0
    while start < len(last):
        base = ends[start - 1] if start else 0
        stop = max(start + 1, int(np.searchsorted(ends, base + max_entries, side="right")))
        n = row_len[start:stop]
        local = np.repeat(np.arange(stop - start), n)
        entry = np.repeat(lo[start:stop] - (np.cumsum(n) - n), n) + np.arange(int(n.sum()), dtype=np.int64)
        c_j = model.counts[entry]
        p_j = pop[model.cols[entry]]
        ct, pt = c_t[start:stop][local], p_t[start:stop][local]
        ge = (c_j > ct) | ((c_j == ct) & (p_j >= pt))
        above[start:stop] = np.bincount(local, weights=ge, minlength=stop - start).astype(np.int64)
        pop_ge[start:stop] = np.bincount(local, weights=p_j >= pt, minlength=stop - start).astype(np.int64)
        start = stop
    unseen = row_len + _at_least_as_popular(sorted_pop, p_t) - pop_ge
    return np.where(c_t > 0, above, unseen)


def sample_pairs(split: Split) -> tuple[np.ndarray, np.ndarray]:
    """``(last item of the prefix, target)`` of every augmented sample of ``split``."""
    sess, pos = split.sample_index()
    at = np.asarray(split.offsets, dtype=np.int64)[sess] + pos
    items = np.asarray(split.items, dtype=np.int64)
    return items[at - 1], items[at]


def evaluate_baseline(
    name: str,
    dataset: ProcessedDataset | str | Path,
    k: int = 20,
    batch_size: int = 65_536,
    quiet: bool = True,
) -> dict[str, float]:
    """P@K and MRR@K of baseline ``name`` (:data:`BASELINES`) over every test sample."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}: choose one of {', '.join(BASELINES)}.")
    data = _load(dataset)
    model = TransitionCounts.from_split(data.train, data.n_items)
    last, targets = sample_pairs(data.test)
    acc = RankAccumulator(k=k)
    for lo in tqdm(range(0, len(targets), batch_size), desc=f"{name} baseline", disable=quiet, leave=False):
        a, t = last[lo:lo + batch_size], targets[lo:lo + batch_size]
        if name == "popularity":
            ranks = popularity_ranks(model.popularity, t)
        else:
            ranks = transition_ranks(model, a, t)
        acc.add(torch.from_numpy(ranks))
    return acc.result()
