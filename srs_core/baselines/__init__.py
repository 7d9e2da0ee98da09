"""Model-free baselines, evaluated exactly like the neural models.

=============  ===========================================================
name           scores of the items for a prefix
=============  ===========================================================
popularity     train occurrence count (:class:`Popularity`)
transition     count of ``last -> j`` in the train sessions (:class:`Transition`)
sr             sequential rules of session-rec (:class:`SequentialRules`)
ar             association rules of session-rec (:class:`AssociationRules`)
sknn           session-based kNN of session-rec (:class:`SessionKNN`)
vsknn          V-SKNN of session-rec (:class:`VSKNN`)
=============  ===========================================================

Each baseline is fitted on the **train split only** (``fit(train, n_items)``
never sees the test split) and then scores every test sample's prefix, the
current session so far. Every test sample ranks its target among *all* items
``1..N`` with the tie rule of :mod:`srs_core.metrics` (rank = number of items
scoring at least as high as the target, the target included), and
:class:`srs_core.metrics.RankAccumulator` turns ranks into P@K and MRR@K.

Items a baseline does not score get 0. Equal scores, the unscored items
included, are ordered by train popularity (the transition baseline's rule,
kept for the new ones; ``popularity_ties=False`` switches it off for sr, ar,
sknn and vsknn): the score is the pair ``(score, popularity)`` compared
lexicographically, and items equal in both still tie against the target. So
a baseline falls back to popularity where it knows nothing, and a constant
scorer without the popularity order ranks every target last.

Ranks are computed from the sparse scores (:func:`sparse_ranks`),
never from a dense ``samples x N`` matrix, over chunks of test samples
(``batch_size``), so memory stays bounded at any catalogue size.
Hyperparameters are the named arguments of each class, with session-rec's
defaults; :func:`evaluate_baseline` takes them as ``params``.
:func:`tune_baseline` chooses them on the validation split out of a small
grid (:data:`VALID_GRIDS`) and reports the chosen setting on the test split,
the protocol the neural models follow.
"""
from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from srs_core.progress import tqdm

from ..data.dataset import ProcessedDataset, Split
from ..metrics import RankAccumulator
from .knn import VSKNN, SessionIndex, SessionKNN
from .rules import AssociationRules, ItemRules, LastItemRules, SequentialRules
from .simple import (
    Popularity,
    PopularityTies,
    Transition,
    TransitionCounts,
    popularity_ranks,
    popularity_scores,
    sample_pairs,
    transition_ranks,
    transition_scores,
)
from .sparse import Prefixes, SparseScores, prefixes_of, sparse_ranks

#: The class of each baseline name.
BASELINE_CLASSES = {
    "popularity": Popularity,
    "transition": Transition,
    "sr": SequentialRules,
    "ar": AssociationRules,
    "sknn": SessionKNN,
    "vsknn": VSKNN,
}
#: Names of the baselines, as given to :func:`evaluate_baseline`; the book runs every one on every dataset.
BASELINES = tuple(BASELINE_CLASSES)
#: How tables and figures name each baseline.
BASELINE_LABELS = {"popularity": "popularity", "transition": "transition", "sr": "SR (sequential rules)",
                   "ar": "AR (association rules)", "sknn": "SKNN", "vsknn": "V-SKNN"}

#: The stated grid each tunable baseline is chosen from on the validation
#: split (every combination; session-rec's default is always one of them).
#: The others have no hyperparameter worth a grid at this size.
VALID_GRIDS = {
    "vsknn": {"k": [50, 100, 200], "sample_size": [500, 1000], "weighting": ["div", "quadratic"]},
    "sknn": {"k": [50, 100, 200]},
    "sr": {"steps": [5, 10, 15]},
}

__all__ = [
    "BASELINES", "BASELINE_CLASSES", "BASELINE_LABELS", "VALID_GRIDS", "baseline_params", "make_baseline", "baseline_ranks",
    "evaluate_baseline", "grid_points", "tune_baseline",
    "Popularity", "Transition", "SequentialRules", "AssociationRules", "SessionKNN", "VSKNN",
    "PopularityTies", "LastItemRules", "TransitionCounts", "ItemRules", "SessionIndex",
    "Prefixes", "SparseScores", "prefixes_of", "sparse_ranks",
    "popularity_ranks", "popularity_scores", "sample_pairs", "transition_ranks", "transition_scores",
]
def _check_name(name: str) -> type:
    if name not in BASELINE_CLASSES:
        raise ValueError(f"unknown baseline {name!r}: choose one of {', '.join(BASELINES)}.")
    return BASELINE_CLASSES[name]


def baseline_params(name: str) -> dict:
    """The named arguments of baseline ``name`` with their defaults."""
    return {f.name: f.default for f in dataclasses.fields(_check_name(name)) if f.init}


def make_baseline(name: str, **params):
    """An unfitted baseline ``name`` with hyperparameters ``params`` (the rest keep their defaults)."""
    cls = _check_name(name)
    allowed = baseline_params(name)
    bad = sorted(set(params) - set(allowed))
    if bad:
        raise ValueError(f"baseline {name!r} has no parameter {', '.join(bad)}: its parameters are "
                         f"{', '.join(f'{k}={v!r}' for k, v in allowed.items())}.")
    return cls(**params)


def baseline_ranks(model, test: Split, n_items: int, batch_size: int | None = None,
                   quiet: bool = True, desc: str = "baseline") -> np.ndarray:
    """Rank of every test sample's target under a fitted ``model``, in sample order."""
    sess, pos = test.sample_index()
    step = batch_size or model.batch_size
    out = np.empty(len(sess), dtype=np.int64)
    for lo in tqdm(range(0, len(sess), step), desc=desc, disable=quiet, leave=False):
        prefixes, targets = prefixes_of(test, sess[lo:lo + step], pos[lo:lo + step])
        out[lo:lo + step] = sparse_ranks(model.score(prefixes), targets, n_items, model.tie_break)
    return out


def _metrics(ranks: np.ndarray, k: int) -> dict[str, float]:
    acc = RankAccumulator(k=k)
    acc.add(torch.from_numpy(ranks))
    return acc.result()


def _load(dataset) -> ProcessedDataset:
    return dataset if isinstance(dataset, ProcessedDataset) else ProcessedDataset.load(dataset)


def evaluate_baseline(
    name: str,
    dataset: ProcessedDataset | str | Path,
    k: int = 20,
    batch_size: int | None = None,
    quiet: bool = True,
    params: Mapping[str, object] | None = None,
    split: str = "test",
) -> dict[str, float]:
    """P@K and MRR@K of baseline ``name`` (:data:`BASELINES`) over every sample
    of ``split`` (``test`` or ``valid``).

    The baseline is fitted on the train split alone; ``params`` sets its named
    hyperparameters (e.g. ``{"k": 200}`` for sknn; the rest keep their
    defaults); ``batch_size`` samples are scored at a time (default: the
    baseline's own).
    """
    model = make_baseline(name, **(params or {}))
    data = _load(dataset)
    target = _split(data, split)
    model.fit(data.train, data.n_items)
    return _metrics(baseline_ranks(model, target, data.n_items, batch_size, quiet, desc=f"{name} baseline"), k)


def _split(data: ProcessedDataset, split: str) -> Split:
    if split == "test":
        return data.test
    if split == "valid":
        if data.valid is None:
            raise ValueError(f"{data.path} has no validation split; make it with `srs preprocess --valid-days N`")
        return data.valid
    raise ValueError(f"split must be 'test' or 'valid', not {split!r}")


def grid_points(name: str, grid: Mapping[str, list] | None = None) -> list[dict]:
    """Every combination of ``grid`` (default: :data:`VALID_GRIDS` of ``name``;
    a baseline without a grid has the one point of its defaults)."""
    grid = VALID_GRIDS.get(name, {}) if grid is None else grid
    allowed = baseline_params(name)
    bad = sorted(set(grid) - set(allowed))
    if bad:
        raise ValueError(f"baseline {name!r} has no parameter {', '.join(bad)} to tune")
    keys = sorted(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def tune_baseline(
    name: str,
    dataset: ProcessedDataset | str | Path,
    grid: Mapping[str, list] | None = None,
    k: int = 20,
    quiet: bool = True,
) -> dict:
    """Choose baseline ``name``'s setting on the validation split, then rank the test split once.

    Each point of ``grid`` (:func:`grid_points`) is fitted on the train split
    and scored on the validation split; the point with the best MRR@K (the
    first on ties, in grid order) is reported on the test split. Without a
    validation split the baseline keeps its defaults (``selected_on: test``
    says so). Returns ``{"params", "selected_on", "valid", "test", "grid",
    "ranks"}``: the chosen setting, its metrics on both splits, every grid
    point's validation metrics, and the test ranks (sample order).
    """
    data = _load(dataset)
    points = grid_points(name, grid) if data.valid is not None else [{}]
    tried, best = [], None
    for point in points:
        model = make_baseline(name, **point)
        model.fit(data.train, data.n_items)
        valid = None
        if data.valid is not None:
            valid = _metrics(baseline_ranks(model, data.valid, data.n_items, quiet=quiet, desc=f"{name} valid"), k)
            tried.append({"params": point, **{f"valid_{m}": v for m, v in valid.items()}})
        if best is None or (valid is not None and valid[f"mrr_at_{k}"] > best[1][f"mrr_at_{k}"]):
            best = (model, valid, point)
    model, valid, point = best
    ranks = baseline_ranks(model, data.test, data.n_items, quiet=quiet, desc=f"{name} test")
    return {"params": {**baseline_params(name), **point}, "selected_on": "test" if valid is None else "valid",
            "valid": valid, "test": _metrics(ranks, k), "grid": tried, "ranks": ranks}


# The submodules' classes and functions are documented (and pickled) as members of
# this package, where the API appendix lists them.
for _obj in (globals()[_name] for _name in __all__):
    if getattr(_obj, "__module__", "").startswith(__name__ + "."):
        _obj.__module__ = __name__
