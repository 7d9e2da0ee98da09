"""Paired statistics over test sessions, and the verdict rule of the book.

Two runs evaluated on the same test split rank the same targets, so they can
be compared target by target. :func:`paired_ratio` takes the per-target
ranks of a variant and of its reference (one array per seed, seeds matched
by position), sums each test session's reciprocal ranks (MRR@K) or hits
(P@K), averages them over the seeds, and resamples *sessions* with
replacement: each bootstrap replicate's ratio is the variant's total over
the reference's total on the same resampled sessions. Sessions, not single
predictions, are the unit, because the predictions of one session are not
independent of each other.

The verdict rule (:func:`interval_verdict`), stated in the book:

* **beats**: the 95% interval of the ratio lies above 1;
* **trails**: it lies below 1;
* **matches**: it lies inside ``[1 - band, 1 + band]`` (band 0.03);
* **inconclusive**: anything else (too few test sessions to tell).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Half-width of the "matches" band around a ratio of 1.
MATCH_BAND = 0.03
#: Bootstrap replicates and confidence level of every interval in the book.
N_BOOT = 1000
LEVEL = 0.95
VERDICTS = ("beats", "trails", "matches", "inconclusive")
#: The interval ends at which :func:`interval_verdict`'s word can change.
THRESHOLDS = (1.0 - MATCH_BAND, 1.0, 1.0 + MATCH_BAND)


def session_of_sample(offsets: np.ndarray, first: np.ndarray | None = None) -> np.ndarray:
    """The session index of every augmented sample of a split, in sample
    order (a session of ``n`` events has ``n - first`` samples; ``first``, the
    shortest prefix that is a sample, is 1 unless a split says otherwise,
    :class:`srs_core.data.dataset.Split`)."""
    n_per = np.diff(np.asarray(offsets, dtype=np.int64)) - (1 if first is None else np.asarray(first, np.int64))
    return np.repeat(np.arange(len(n_per), dtype=np.int64), n_per)


def per_session(ranks: np.ndarray, sessions: np.ndarray, n_sessions: int, metric: str, k: int = 20) -> np.ndarray:
    """Each session's sum of reciprocal ranks within ``k`` (``metric="mrr"``)
    or of hits within ``k`` (``"p"``)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    if ranks.shape != sessions.shape:
        raise ValueError(f"{len(ranks)} ranks for {len(sessions)} test samples: the runs were not evaluated on "
                         "this test split")
    top = (ranks >= 1) & (ranks <= k)
    if metric == "mrr":
        values = np.where(top, 1.0 / np.maximum(ranks, 1.0), 0.0)
    elif metric == "p":
        values = top.astype(np.float64)
    else:
        raise ValueError(f"metric must be 'mrr' or 'p', not {metric!r}")
    return np.bincount(sessions, weights=values, minlength=n_sessions)


@dataclass(frozen=True)
class Interval:
    """A ratio of a variant's metric to its reference's, with its bootstrap interval."""

    ratio: float
    lo: float
    hi: float
    n_sessions: int
    seeds: int

    @property
    def verdict(self) -> str:
        return interval_verdict(self.lo, self.hi)

    def text(self, spec: str = ".2f") -> str:
        """``"0.97 (0.93-1.01)"``, or "–" when not measured."""
        if not math.isfinite(self.ratio):
            return "–"
        return f"{self.ratio:{spec}} ({self.lo:{spec}}-{self.hi:{spec}})"


NOT_MEASURED = Interval(float("nan"), float("nan"), float("nan"), 0, 0)


def paired_ratio(variant: list[np.ndarray], reference: list[np.ndarray], offsets: np.ndarray, *,
                 metric: str = "mrr", k: int = 20, n_boot: int = N_BOOT, level: float = LEVEL,
                 seed: int = 0, first: np.ndarray | None = None) -> Interval:
    """The ratio of ``variant``'s metric to ``reference``'s on one test split,
    with a paired bootstrap interval over its sessions (see the module text).

    ``variant`` and ``reference`` hold one rank array per seed; seeds are
    matched by position, so both lists must be equally long. A reference of
    one run (a deterministic baseline) is paired with every seed of the
    variant. ``offsets`` are the test split's session offsets (and ``first``
    its first samples, where the split has them).
    """
    if not variant or not reference:
        return NOT_MEASURED
    if len(reference) == 1 and len(variant) > 1:
        reference = reference * len(variant)
    if len(variant) != len(reference):
        raise ValueError(f"{len(variant)} variant seeds against {len(reference)} reference seeds: seeds must match")
    sessions = session_of_sample(offsets, first)
    n = len(offsets) - 1
    a = np.mean([per_session(r, sessions, n, metric, k) for r in variant], axis=0)
    b = np.mean([per_session(r, sessions, n, metric, k) for r in reference], axis=0)
    if b.sum() == 0:
        return Interval(float("nan"), float("nan"), float("nan"), n, len(variant))
    rng = np.random.default_rng(seed)
    ratios = np.empty(n_boot)
    chunk = max(1, min(n_boot, 2_000_000 // max(n, 1)))
    for lo in range(0, n_boot, chunk):
        idx = rng.integers(0, n, size=(min(chunk, n_boot - lo), n))
        ratios[lo:lo + len(idx)] = a[idx].sum(1) / np.maximum(b[idx].sum(1), 1e-300)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(ratios, [tail, 1.0 - tail])
    return Interval(float(a.sum() / b.sum()), float(low), float(high), n, len(variant))


def interval_verdict(lo: float, hi: float, band: float = MATCH_BAND) -> str:
    """The book's word for an interval ``[lo, hi]`` of a ratio (module text)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "n/a"
    if lo > 1.0:
        return "beats"
    if hi < 1.0:
        return "trails"
    if lo >= 1.0 - band and hi <= 1.0 + band:
        return "matches"
    return "inconclusive"


def loglog_slope(n_items, values) -> float:
    """Least-squares slope of log(value) against log(n_items): 1 is linear growth."""
    x, y = np.log(np.asarray(n_items, float)), np.log(np.asarray(values, float))
    return float(np.polyfit(x, y, 1)[0])
