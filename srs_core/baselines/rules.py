"""Sequential rules (SR) and association rules (AR), as in session-rec.

Both mine item -> item rules from the train sessions and score the items of
the rules of the prefix's **last** item (session-rec's ``predict_next`` looks
only at the current item). Definitions and defaults follow session-rec
(Ludewig and Jannach, "Evaluation of session-based recommendation
algorithms", 2018; code: ``algorithms/baselines/sr.py`` and ``ar.py`` of
rn5l/session-rec); the class docstrings state them. Rules are built with one
vectorised pass per gap (at most the longest session), never a loop over
sessions.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..data.dataset import Split
from .simple import PopularityTies, row_scores, train_popularity
from .sparse import Prefixes, SparseScores, rank_within

#: session-rec's weights of a rule by the gap ``g >= 1`` between its two items.
GAP_WEIGHTS = {
    "linear": lambda g: np.where(g <= 100, 1 - 0.1 * g, 0.0),
    "same": lambda g: np.ones_like(g, dtype=np.float64),
    "div": lambda g: 1.0 / g,
    "log": lambda g: 1.0 / np.log10(g + 1.7),
    "quadratic": lambda g: 1.0 / (g * g),
}


def check_choice(kind: str, value: str, choices) -> None:
    if value not in choices:
        raise ValueError(f"unknown {kind} {value!r}: choose one of {', '.join(choices)}.")


@dataclass(frozen=True)
class ItemRules:
    """Row-compressed item -> item rule weights: row ``a`` is ``cols[indptr[a]:indptr[a+1]]``."""

    indptr: np.ndarray
    cols: np.ndarray
    values: np.ndarray

    @classmethod
    def mine(cls, train: Split, n_items: int, max_gap: int | None, weight, both_ways: bool,
             pruning: float) -> "ItemRules":
        """Rules from every pair of positions at gap ``1 .. max_gap`` (``None``: any gap) of each session.

        ``pruning`` keeps the ``pruning`` strongest rules of each item (a
        fraction below 1 drops that share of each item's rules; 0 keeps all).
        Equal weights are kept in the order session-rec's dictionaries would
        hold them: the rule seen first in the train split first.
        """
        items = np.asarray(train.items, dtype=np.int64)
        offsets = np.asarray(train.offsets, dtype=np.int64)
        lengths = np.diff(offsets)
        within = np.arange(len(items), dtype=np.int64) - np.repeat(offsets[:-1], lengths)
        longest = int(lengths.max()) if len(lengths) else 0
        gaps = range(1, (longest if max_gap is None else min(max_gap + 1, longest)))
        keys, weights, first = [], [], []
        n = n_items + 1
        for g in gaps:
            j = np.flatnonzero(within >= g)
            a, b = items[j - g], items[j]
            w = np.broadcast_to(weight(np.float64(g)), j.shape)
            order = j * len(items) + (j - g)  # when session-rec's dictionaries first see the rule
            keys.append(a * n + b), weights.append(w), first.append(order)
            if both_ways:
                keys.append(b * n + a), weights.append(w), first.append(order)
        if not keys:
            return cls(np.zeros(n + 1, np.int64), np.zeros(0, np.int64), np.zeros(0))
        keys, weights, first = np.concatenate(keys), np.concatenate(weights), np.concatenate(first)
        perm = np.argsort(keys, kind="stable")
        keys = keys[perm]
        starts = np.r_[0, np.flatnonzero(keys[1:] != keys[:-1]) + 1]
        values = np.add.reduceat(weights[perm], starts)
        first = np.minimum.reduceat(first[perm], starts)
        rows, cols = np.divmod(keys[starts], n)
        del keys, perm, weights
        if pruning > 0:
            row_len = np.bincount(rows, minlength=n)[rows]
            keep_n = np.full_like(row_len, int(pruning)) if pruning >= 1 else row_len - (row_len * pruning).astype(np.int64)
            keep = rank_within(rows, first, -values) < keep_n
            rows, cols, values = rows[keep], cols[keep], values[keep]
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
        return cls(indptr, cols, values)

    def of_last(self, prefixes: Prefixes) -> SparseScores:
        return row_scores(self.indptr, self.cols, self.values, prefixes.last)


class LastItemRules(PopularityTies):
    """Mixin of sr and ar: a prefix's scores are the rules of its last item."""

    rules: ItemRules | None

    def score(self, prefixes: Prefixes) -> SparseScores:
        return self.rules.of_last(prefixes)


@dataclass
class SequentialRules(LastItemRules):
    """SR: forward rules over gaps ``1 .. steps`` weighted by ``weighting`` (session-rec defaults).

    Every pair of positions ``j - g < j`` of a train session with gap
    ``g <= steps`` adds ``w(g)`` to the rule ``x_{j-g} -> x_j``; ``w`` is
    session-rec's default ``div``, ``1 / g`` (``linear`` is ``1 - 0.1 g``, and
    ``srs_core.baselines.rules.GAP_WEIGHTS`` lists the rest). ``pruning`` keeps each item's
    strongest rules (:meth:`ItemRules.mine`).
    ``popularity_ties`` orders equal scores (and unscored items) by train
    popularity, as the transition baseline does; ``False`` leaves them tied.
    """

    steps: int = 10
    weighting: str = "div"
    pruning: float = 20.0
    popularity_ties: bool = True
    batch_size: int = 16_384  # test samples per evaluation chunk
    rules: ItemRules | None = field(default=None, init=False, repr=False)
    popularity: np.ndarray | None = field(default=None, init=False, repr=False)

    def fit(self, train: Split, n_items: int) -> "SequentialRules":
        check_choice("SR weighting", self.weighting, GAP_WEIGHTS)
        if self.steps < 1:
            raise ValueError(f"SR steps must be at least 1, got {self.steps}.")
        self.rules = ItemRules.mine(train, n_items, self.steps, GAP_WEIGHTS[self.weighting], False, self.pruning)
        self.popularity = train_popularity(train, n_items)
        return self


@dataclass
class AssociationRules(LastItemRules):
    """AR: symmetric co-occurrence counts of item pairs in a session (session-rec defaults).

    Every pair of positions ``i < j`` of a train session adds 1 to the rule
    ``x_i -> x_j`` and 1 to ``x_j -> x_i``: order and distance are ignored,
    and repeated items count per occurrence. ``pruning`` keeps each item's
    strongest rules (:meth:`ItemRules.mine`).
    """

    pruning: float = 20.0
    popularity_ties: bool = True
    batch_size: int = 16_384
    rules: ItemRules | None = field(default=None, init=False, repr=False)
    popularity: np.ndarray | None = field(default=None, init=False, repr=False)

    def fit(self, train: Split, n_items: int) -> "AssociationRules":
        self.rules = ItemRules.mine(train, n_items, None, GAP_WEIGHTS["same"], True, self.pruning)
        self.popularity = train_popularity(train, n_items)
        return self
