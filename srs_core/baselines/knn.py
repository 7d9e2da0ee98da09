"""Session-based kNN (SKNN) and its vector-multiplication variant (V-SKNN), as in session-rec.

Definitions and defaults follow session-rec (Jannach and Ludewig, "When
recurrent neural networks meet the neighborhood for session-based
recommendation", RecSys 2017; Ludewig and Jannach, "Evaluation of
session-based recommendation algorithms", 2018; code:
``algorithms/knn/sknn.py`` and ``vsknn.py`` of rn5l/session-rec); the class
docstrings state them.

The computation is vectorised per chunk of prefixes: each item's train
sessions are stored most recent first, and since the ``sample_size`` most
recent sessions of a union are among the ``sample_size`` most recent of each
member's list, only those are expanded. Similarities come from one
expansion of the candidates' items, scores from one of the neighbours'.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..data.dataset import Split
from .rules import GAP_WEIGHTS, check_choice
from .simple import PopularityTies, train_popularity
from .sparse import Prefixes, SparseScores, expand, rank_in_sorted, summed, unique_sorted

#: session-rec's weight of a prefix item at 1-based position ``p`` of ``L`` (V-SKNN ``weighting``).
POSITION_WEIGHTS = {
    "same": lambda p, L: np.ones_like(p, dtype=np.float64),
    "div": lambda p, L: p / L,
    "quadratic": lambda p, L: (p / L) ** 2,
    "log": lambda p, L: 1.0 / np.log10(L - p + 1.7),
}


@dataclass(frozen=True)
class SessionIndex:
    """Train sessions as distinct-item sets, both ways round.

    Sessions are renumbered by recency (0 = oldest). Session ``s`` holds items
    ``sess_items[sess_ptr[s]:sess_ptr[s+1]]``; item ``j`` occurs in sessions
    ``item_sess[item_ptr[j]:item_ptr[j+1]]``, most recent first.
    """

    n_items: int
    sess_ptr: np.ndarray
    sess_items: np.ndarray
    item_ptr: np.ndarray
    item_sess: np.ndarray
    idf: np.ndarray  # float64 [N + 1]

    @classmethod
    def build(cls, train: Split, n_items: int) -> "SessionIndex":
        n_sess = train.n_sessions
        recency = np.empty(n_sess, dtype=np.int64)
        recency[np.lexsort((np.arange(n_sess), np.asarray(train.times)))] = np.arange(n_sess)
        items = np.asarray(train.items, dtype=np.int64)
        sess = np.repeat(recency, np.diff(np.asarray(train.offsets)))
        keys = unique_sorted(sess * (n_items + 1) + items)
        sess, items_u = np.divmod(keys, n_items + 1)
        sess_ptr = np.zeros(n_sess + 1, dtype=np.int64)
        np.cumsum(np.bincount(sess, minlength=n_sess), out=sess_ptr[1:])
        order = np.lexsort((-sess, items_u))
        item_ptr = np.zeros(n_items + 2, dtype=np.int64)
        np.cumsum(np.bincount(items_u, minlength=n_items + 1), out=item_ptr[1:])
        pop = train_popularity(train, n_items)
        idf = np.where(pop > 0, np.log(max(n_sess, 1) / np.maximum(pop, 1)), 0.0)
        return cls(n_items, sess_ptr, items_u, item_ptr, sess[order], idf)


@dataclass
class SessionKNN(PopularityTies):
    """SKNN: cosine over item sets, ``k`` neighbours among ``sample_size`` recent candidates.

    For the current session ``s`` (the test prefix), SKNN and V-SKNN

    1. take as **candidates** the ``sample_size`` most recent train sessions
       that share at least one item with ``s`` (recency: the session's last
       event, ties by storage order; ``sample_size = 0`` keeps all);
    2. give each candidate ``n`` a **similarity** to ``s`` and keep the ``k``
       most similar as neighbours (equal similarities: the more recent first);
    3. **score** every item of the neighbours by the sum of the similarities
       of the neighbours that contain it.

    SKNN's similarity is the cosine of the two item sets,
    ``|s & n| / sqrt(|s| |n|)`` (session-rec's code writes it with an
    operator-precedence slip that multiplies the cosine by ``|s|``, the same
    for every candidate of a prefix, so its neighbours and rankings are the
    cosine's).

    Defaults: ``k = 100``, ``sample_size = 500`` and the cosine, as in
    session-rec's ``ContextKNN`` docstring and its yoochoose-100k example
    configuration (``conf/example_next.yml``; the class's code defaults to
    ``sample_size = 1000`` and the Jaccard index instead).
    ``popularity_ties`` orders equal scores (and unscored items) by train
    popularity, as the transition baseline does; ``False`` leaves them tied.
    """

    k: int = 100
    sample_size: int = 500
    popularity_ties: bool = True
    batch_size: int = 1_024  # test samples per evaluation chunk
    index: SessionIndex | None = field(default=None, init=False, repr=False)
    popularity: np.ndarray | None = field(default=None, init=False, repr=False)

    def fit(self, train: Split, n_items: int) -> "SessionKNN":
        if self.k < 1 or self.sample_size < 0:
            raise ValueError(f"need k >= 1 and sample_size >= 0 (0: all candidates), got k={self.k}, "
                             f"sample_size={self.sample_size}.")
        self.index = SessionIndex.build(train, n_items)
        self.popularity = train_popularity(train, n_items)
        return self

    # -- the three steps, shared with V-SKNN ---------------------------------
    def _query(self, prefixes: Prefixes):
        """Distinct ``(row, item)`` of the prefixes with the 1-based position of the last occurrence."""
        n = self.index.n_items + 1
        keys = prefixes.rows * n + prefixes.items
        order = np.lexsort((prefixes.pos, keys))
        keys = keys[order]
        last_of_key = np.r_[keys[1:] != keys[:-1], True] if len(keys) else np.zeros(0, bool)
        q_keys = keys[last_of_key]
        q_pos = prefixes.pos[order][last_of_key]
        q_rows = q_keys // n
        return q_keys, q_rows, q_keys - q_rows * n, q_pos

    def _candidates(self, q_rows, q_items, n_rows):
        """``(row, session)`` of the ``sample_size`` most recent sessions sharing an item, per row."""
        ix = self.index
        start = ix.item_ptr[q_items]
        count = ix.item_ptr[q_items + 1] - start
        if self.sample_size:
            count = np.minimum(count, self.sample_size)
        owner, at = expand(start, count)
        n_sess = len(ix.sess_ptr) - 1
        keys = unique_sorted(q_rows[owner] * n_sess + ix.item_sess[at])
        rows, sess = np.divmod(keys, n_sess)
        if self.sample_size:
            ends = np.cumsum(np.bincount(rows, minlength=n_rows))
            keep = ends[rows] - np.arange(len(rows)) <= self.sample_size  # the newest of each row
            rows, sess = rows[keep], sess[keep]
        return rows, sess

    def _overlap(self, q_keys, q_weight, q_pos, c_rows, c_sess):
        """Per candidate: shared items, their summed prefix weights, the latest shared position."""
        ix = self.index
        start = ix.sess_ptr[c_sess]
        length = ix.sess_ptr[c_sess + 1] - start
        owner, at = expand(start, length)
        keys = c_rows[owner] * (ix.n_items + 1) + ix.sess_items[at]
        p = np.minimum(np.searchsorted(q_keys, keys), len(q_keys) - 1)
        match = q_keys[p] == keys
        n_c = len(c_rows)
        shared = np.bincount(owner, weights=match, minlength=n_c)
        weight = np.bincount(owner, weights=np.where(match, q_weight[p], 0.0), minlength=n_c)
        seg = np.cumsum(length) - length
        latest = np.maximum.reduceat(np.where(match, q_pos[p], 0), seg) if n_c else np.zeros(0, np.int64)
        return shared, weight, latest, length

    def _neighbours(self, rows, sess, sim, *extra):
        """The ``k`` most similar candidates of each row (ties: the more recent), with ``extra`` alongside."""
        top = np.flatnonzero(sim > 0)[::-1]  # candidates come by (row, session): reversed, newest first
        top = top[np.lexsort((-sim[top], rows[top]))]  # by row, then similarity; stable, so ties stay newest first
        top = top[rank_in_sorted(rows[top]) < self.k]
        return (rows[top], sess[top], sim[top], *(x[top] for x in extra))

    def _score(self, rows, sess, weight, idf_weighting: float = 0.0) -> SparseScores:
        ix = self.index
        start = ix.sess_ptr[sess]
        owner, at = expand(start, ix.sess_ptr[sess + 1] - start)
        items = ix.sess_items[at]
        values = weight[owner]
        if idf_weighting:
            values = values * (1.0 + idf_weighting * ix.idf[items])
        return summed(rows[owner], items, values, ix.n_items)

    def score(self, prefixes: Prefixes) -> SparseScores:
        q_keys, q_rows, q_items, q_pos = self._query(prefixes)
        rows, sess = self._candidates(q_rows, q_items, prefixes.n_rows)
        shared, _, _, length = self._overlap(q_keys, np.ones(len(q_keys)), q_pos, rows, sess)
        distinct = np.bincount(q_rows, minlength=prefixes.n_rows)
        sim = shared / np.sqrt(distinct[rows] * length)
        rows, sess, sim = self._neighbours(rows, sess, sim)
        return self._score(rows, sess, sim)


@dataclass
class VSKNN(SessionKNN):
    """V-SKNN: position-weighted prefix, ``1 / step`` decay of neighbours, IDF-weighted items.

    The steps of :class:`SessionKNN`, with these changes. The prefix's items
    are weighed by position: the item at position ``p`` of ``L`` (its last
    occurrence) gets ``p / L`` (``weighting = "div"``, a linear decay from 1
    for the last item), and the similarity is the sum of the weights of the
    shared items over the number of distinct prefix items (session-rec's
    ``vec``). A neighbour's contribution is further multiplied by ``1 / step``
    (``weighting_score``), where ``step`` is 1 when it contains the last item,
    2 when its most recent shared item is the one before, and so on; and,
    with ``idf_weighting = w > 0``, item ``j``'s share by ``1 + w idf(j)``,
    ``idf(j) = ln(train sessions / train occurrences of j)``.

    Defaults: session-rec's ``VMContextKNN`` (``sample_size = 1000``, linear
    position weights ``weighting = "div"``, ``weighting_score = "div"``) with
    its documented ``k = 100``; the class leaves IDF off, so
    ``idf_weighting = 5`` comes from session-rec's yoochoose-100k example
    configuration (``conf/example_next.yml``, which also sets ``k = 500``,
    ``sample_size = 5000`` and ``weighting = "quadratic"``). ``0`` switches IDF off.
    Session-rec's ``linear`` position weight is left out: its code gives
    weight 0 to every position after the tenth.
    """

    k: int = 100
    sample_size: int = 1_000
    weighting: str = "div"
    weighting_score: str = "div"
    idf_weighting: float = 5.0

    def fit(self, train: Split, n_items: int) -> "VSKNN":
        check_choice("V-SKNN weighting", self.weighting, POSITION_WEIGHTS)
        check_choice("V-SKNN weighting_score", self.weighting_score, GAP_WEIGHTS)
        super().fit(train, n_items)
        return self

    def score(self, prefixes: Prefixes) -> SparseScores:
        q_keys, q_rows, q_items, q_pos = self._query(prefixes)
        L = prefixes.lengths[q_rows]
        q_weight = POSITION_WEIGHTS[self.weighting](q_pos.astype(np.float64), L.astype(np.float64))
        rows, sess = self._candidates(q_rows, q_items, prefixes.n_rows)
        _, weight, latest, _ = self._overlap(q_keys, q_weight, q_pos, rows, sess)
        distinct = np.bincount(q_rows, minlength=prefixes.n_rows)
        sim = weight / distinct[rows]
        step = prefixes.lengths[rows] - latest + 1
        decay = GAP_WEIGHTS[self.weighting_score](step.astype(np.float64))
        rows, sess, sim, decay = self._neighbours(rows, sess, sim, decay)
        return self._score(rows, sess, sim * decay, self.idf_weighting)

