"""The shared machinery of the baselines: test prefixes in chunks, sparse scores, exact ranks.

A baseline scores only a few items per prefix (the items of its rules or of
its neighbour sessions); every other item scores 0. So scores travel as a
:class:`SparseScores` (one entry per scored ``(row, item)``), and
:func:`sparse_ranks` turns them into the exact ranks that
:func:`srs_core.metrics.ranks_from_scores` would give on the dense
``[rows, N]`` matrix, without building it: the cost is the number of entries,
not ``rows x N``.

Ties follow the pessimistic rule of :mod:`srs_core.metrics` (an item scoring
the same as the target counts against it). With ``popularity`` given, the
score is the pair ``(score, train popularity)`` compared lexicographically:
equal scores, and in particular the many unscored items, are ordered by
popularity, and only items equal in both tie.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.dataset import Split


@dataclass(frozen=True)
class Prefixes:
    """A chunk of ``B`` test prefixes as flat arrays (the current sessions so far).

    Element ``e`` is item ``items[e]`` at 1-based position ``pos[e]`` of prefix
    ``rows[e]``; prefix ``b`` has ``lengths[b]`` items and ends with ``last[b]``.
    """

    items: np.ndarray  # int64 [E]
    rows: np.ndarray  # int64 [E]
    pos: np.ndarray  # int64 [E], 1 .. lengths[row]
    lengths: np.ndarray  # int64 [B]
    last: np.ndarray  # int64 [B]

    @property
    def n_rows(self) -> int:
        return len(self.lengths)


@dataclass(frozen=True)
class SparseScores:
    """Scores of a chunk of prefixes: ``values[e]`` for item ``items[e]`` of row ``rows[e]``.

    Entries are unique and sorted by ``(row, item)``; items are ``1..N``; every
    item without an entry scores 0.
    """

    rows: np.ndarray  # int64
    items: np.ndarray  # int64
    values: np.ndarray  # float64

    def dense(self, n_rows: int, n_items: int) -> np.ndarray:
        """The ``[n_rows, N + 1]`` score matrix (column 0, the padding id, is ``-inf``); for tests."""
        out = np.zeros((n_rows, n_items + 1))
        out[self.rows, self.items] = self.values
        out[:, 0] = -np.inf
        return out


def expand(starts: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For ranges ``starts[i] .. starts[i] + counts[i]``: ``(owner i, index)`` of every element."""
    counts = np.asarray(counts, dtype=np.int64)
    owner = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    offsets = np.cumsum(counts) - counts
    index = np.repeat(np.asarray(starts, dtype=np.int64) - offsets, counts) + np.arange(int(counts.sum()), dtype=np.int64)
    return owner, index


def unique_sorted(keys: np.ndarray) -> np.ndarray:
    """The sorted distinct values of ``keys`` (by sorting: faster here than :func:`numpy.unique`'s hashing)."""
    keys = np.sort(keys)
    return keys[np.r_[True, keys[1:] != keys[:-1]]] if len(keys) else keys


def summed(rows: np.ndarray, items: np.ndarray, values: np.ndarray, n_items: int) -> SparseScores:
    """Sum the values of duplicate ``(row, item)`` pairs into one sorted :class:`SparseScores`."""
    keys = rows * (n_items + 1) + items
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys) else np.zeros(0, np.int64)
    total = np.add.reduceat(values[order], starts) if len(keys) else np.zeros(0)
    r, i = np.divmod(keys[starts], n_items + 1)
    return SparseScores(r, i, total)


def rank_in_sorted(groups: np.ndarray) -> np.ndarray:
    """0-based position of each element inside its run of equal ``groups`` (``groups`` sorted)."""
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]]) if len(groups) else np.zeros(0, np.int64)
    return np.arange(len(groups)) - np.repeat(starts, np.diff(np.r_[starts, len(groups)]))


def rank_within(groups: np.ndarray, *keys: np.ndarray) -> np.ndarray:
    """0-based rank of each element inside its group, ordered by ``keys`` (last key first, as
    :func:`numpy.lexsort`); returns ranks in the original element order."""
    order = np.lexsort((*keys, groups))
    ranks = np.empty(len(order), dtype=np.int64)
    ranks[order] = rank_in_sorted(groups[order])
    return ranks


def prefixes_of(split: Split, sess: np.ndarray, pos: np.ndarray) -> tuple[Prefixes, np.ndarray]:
    """The prefixes and targets of samples ``(sess[i], pos[i])`` of ``split`` (see :meth:`srs_core.data.dataset.Split.sample_index`)."""
    sess = np.asarray(sess, dtype=np.int64)
    lengths = np.asarray(pos, dtype=np.int64)
    starts = np.asarray(split.offsets, dtype=np.int64)[sess]
    rows, at = expand(starts, lengths)
    items = np.asarray(split.items)
    flat_items = items[at].astype(np.int64)
    position = at - starts[rows] + 1
    targets = items[starts + lengths].astype(np.int64)
    last = items[starts + lengths - 1].astype(np.int64)
    return Prefixes(flat_items, rows, position, lengths, last), targets


def sparse_ranks(scores: SparseScores, targets: np.ndarray, n_items: int,
                 popularity: np.ndarray | None = None) -> np.ndarray:
    """Exact rank of each row's target among items ``1..N`` under the module's tie rule.

    ``popularity`` (``[N + 1]``) breaks equal scores; ``None`` leaves them tied,
    so a constant scorer ranks every target last (rank ``N``).
    """
    targets = np.asarray(targets, dtype=np.int64)
    n_rows = len(targets)
    keys = scores.rows * (n_items + 1) + scores.items
    key_t = np.arange(n_rows, dtype=np.int64) * (n_items + 1) + targets
    at = np.minimum(np.searchsorted(keys, key_t), max(len(keys) - 1, 0))
    found = (keys[at] == key_t) if len(keys) else np.zeros(n_rows, dtype=bool)
    s_t = np.where(found, scores.values[at] if len(keys) else 0.0, 0.0)
    rows, vals = scores.rows, scores.values
    st_e = s_t[rows]
    n_entries = np.bincount(rows, minlength=n_rows)
    outside = n_items - n_entries  # items without an entry: they score 0
    if popularity is None:
        above = np.bincount(rows, weights=vals >= st_e, minlength=n_rows)
        outside_ge = outside
    else:
        pop = np.asarray(popularity)
        p_t = pop[targets]
        p_e = pop[scores.items]
        pt_e = p_t[rows]
        ge = (vals > st_e) | ((vals == st_e) & (p_e >= pt_e))
        above = np.bincount(rows, weights=ge, minlength=n_rows)
        sorted_pop = np.sort(pop[1:])
        at_least_as_popular = len(sorted_pop) - np.searchsorted(sorted_pop, p_t, side="left")
        outside_ge = at_least_as_popular - np.bincount(rows, weights=p_e >= pt_e, minlength=n_rows)
    ranks = above + np.where(s_t < 0, outside, np.where(s_t == 0, outside_ge, 0))
    return np.rint(ranks).astype(np.int64)
