"""The dissertation's Table 1 on the standard Diginetica split: ours beside the published numbers.

The dissertation's Table 1 (its Section 3.5) quotes P@20 and MRR@20 that Wu
et al. (2019, the SR-GNN paper) report for GRU4Rec, NARM, STAMP and SR-GNN on
Yoochoose 1/64, 1/4 and Diginetica, each trained with its authors' own loss
and protocol. :func:`table1` sets our runs on the same Diginetica split
beside them, under two protocols:

* **validation** (ours): the epoch is chosen on the validation split (the
  last tenth of the training sessions), and its test metrics are read once;
* **best test epoch** (the published protocol): the epoch with the best test
  MRR@20 among the epochs trained, labelled as such.

:func:`published_gap` states, per model, whether our number is above, level
with or below the published one, by the rule in its text.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from srs_core.claims import PLUS_MINUS, Claim, _fmt
from srs_core.diagnosis import REFERENCE

#: The dissertation's Table 1, quoted from Wu et al. (2019) in percent, as model, then dataset, then (P@20, MRR@20).
TABLE1_PUBLISHED = {
    "gru4rec": {"yoochoose-1/64": (60.64, 22.89), "yoochoose-1/4": (59.53, 22.60), "diginetica": (29.45, 8.33)},
    "narm": {"yoochoose-1/64": (68.32, 28.63), "yoochoose-1/4": (69.73, 29.23), "diginetica": (49.70, 16.17)},
    "stamp": {"yoochoose-1/64": (68.74, 29.67), "yoochoose-1/4": (70.44, 30.00), "diginetica": (45.64, 14.32)},
    "srgnn": {"yoochoose-1/64": (70.57, 30.94), "yoochoose-1/4": (71.36, 31.89), "diginetica": (50.73, 17.59)},
}
#: The split's published statistics (SR-GNN's preprocessing, and the data folder's README)
#: for its items, training sessions, training samples (every prefix) and test samples.
SPLIT_PUBLISHED = {"n_items": 43_097, "n_train_sessions": 186_670, "n_train_samples": 719_470,
                   "n_test_samples": 60_858}
#: Below this absolute difference (in MRR@20 or P@20, as a fraction) a number
#: is level with the published one even when the seeds agree more closely:
#: the same run differs by up to about this much from one CPU to another.
TOLERANCE = 0.005
#: Table 1's order of the models.
ORDER = ("gru4rec", "narm", "stamp", "srgnn")


def _name(model: str) -> str:
    from srs_core.models import MODELS

    return MODELS[model].label if model in MODELS else model


def published(model: str, dataset: str = "diginetica") -> tuple[float, float]:
    """``(P@20, MRR@20)`` of ``model`` in Table 1, as fractions (``NaN`` where absent)."""
    p, mrr = TABLE1_PUBLISHED.get(model, {}).get(dataset, (math.nan, math.nan))
    return p / 100.0, mrr / 100.0


def _cell(values: pd.Series) -> str:
    """Mean ± sd in percent over seeds (one seed shows its value alone)."""
    v = values.dropna().to_numpy(float) * 100
    if not len(v):
        return "–"
    return f"{v.mean():.2f}" if len(v) == 1 else f"{v.mean():.2f}{PLUS_MINUS}{v.std(ddof=1):.2f}"


def per_model(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per model and loss (``variant``) of the Table 1 runs: means,
    seed ranges and the published numbers (fractions), under both protocols."""
    rows = []
    for (model, variant), g in runs.groupby(["model", "variant"], sort=False):
        p_pub, mrr_pub = published(model)
        row = {"model": model, "variant": variant, "loss": g.loss.iloc[0], "seeds": len(g),
               "p_pub": p_pub, "mrr_pub": mrr_pub, "epoch_seconds": g.epoch_seconds.mean(),
               "epochs_run": g.epochs_run.mean()}
        for m, col in (("mrr", "mrr_at_20"), ("p", "p_at_20"), ("mrr_test_best", "test_best_mrr_at_20"),
                       ("p_test_best", "test_best_p_at_20")):
            v = g[col].to_numpy(float)
            row.update({m: v.mean(), f"{m}_range": float(np.ptp(v)) if len(v) > 1 else 0.0})
        rows.append(row)
    return pd.DataFrame(rows)


def table1(runs: pd.DataFrame, baselines: pd.DataFrame | None = None) -> pd.DataFrame:
    """Table 1 for the page: per model and loss, the published P@20 and MRR@20
    and ours (mean ± sd over seeds, in percent) chosen on validation and at the
    best test epoch, with seconds per training epoch; the session baselines
    (tuned on validation) below. A loss is named by its label; its full
    setting is the page's. ``runs``: rows of
    :func:`srs_core.experiments.summarise`."""
    from srs_core.baselines import BASELINE_LABELS
    from srs_core.losses import loss_class

    order = {m: i for i, m in enumerate(ORDER)}
    out = []
    for (model, variant), g in sorted(runs.groupby(["model", "variant"], sort=False),
                                      key=lambda kv: (order.get(kv[0][0], 99), kv[1].loss.iloc[0] != REFERENCE, kv[0][1])):
        p_pub, mrr_pub = published(model)
        out.append({"model": _name(model), "loss": loss_class(g.loss.iloc[0]).label, "seeds": len(g),
                    ("published", "P@20"): _fmt(p_pub * 100), ("published", "MRR@20"): _fmt(mrr_pub * 100),
                    ("ours, validation", "P@20"): _cell(g.p_at_20), ("ours, validation", "MRR@20"): _cell(g.mrr_at_20),
                    ("ours, best test epoch", "P@20"): _cell(g.test_best_p_at_20),
                    ("ours, best test epoch", "MRR@20"): _cell(g.test_best_mrr_at_20),
                    "s / epoch": _fmt(g.epoch_seconds.mean(), ".0f"), "epochs": _fmt(g.epochs_run.mean(), ".1f")})
    for _, b in (baselines if baselines is not None else pd.DataFrame()).iterrows():
        out.append({"model": BASELINE_LABELS.get(b.model, b.model), "loss": "session baseline", "seeds": 1,
                    ("published", "P@20"): "–", ("published", "MRR@20"): "–",
                    ("ours, validation", "P@20"): _fmt(b.p_at_20 * 100), ("ours, validation", "MRR@20"):
                    _fmt(b.mrr_at_20 * 100), ("ours, best test epoch", "P@20"): "–",
                    ("ours, best test epoch", "MRR@20"): "–", "s / epoch": "–", "epochs": "–"})
    table = pd.DataFrame(out).set_index(["model", "loss"])
    table.columns = pd.MultiIndex.from_tuples([c if isinstance(c, tuple) else (c, "") for c in table.columns])
    return table


def _gap_word(ours: float, spread: float, pub: float) -> str:
    if not (math.isfinite(ours) and math.isfinite(pub)):
        return "n/a"
    tol = max(spread, TOLERANCE)
    return "above" if ours - pub > tol else "below" if pub - ours > tol else "level"


def published_gap(rows: pd.DataFrame, where: str, protocol: str = "validation") -> Claim:
    """Ours against Table 1. ``rows``: :func:`per_model` rows of one loss.
    Per model and metric, ours is *above* (or *below*) the published number
    when the difference of the seeds' mean exceeds both the seeds' range and
    :data:`TOLERANCE`, else *level*. ``protocol`` "validation" reads the epoch
    chosen on validation, "best test epoch" the published protocol. The
    verdict: "at or above" when no model is below on MRR@20, "below" when
    every model is, else "mixed"."""
    r = rows[pd.to_numeric(rows.mrr_pub, errors="coerce").notna()] if len(rows) else rows
    if not len(r):
        return Claim("table1", "not measured", f"No model of Table 1 was trained on {where}.", {"n": 0})
    key = "" if protocol == "validation" else "_test_best"
    words = {}
    for _, x in r.iterrows():
        words[x.model] = (_gap_word(x[f"mrr{key}"], x[f"mrr{key}_range"], x.mrr_pub),
                          _gap_word(x[f"p{key}"], x[f"p{key}_range"], x.p_pub))

    def listing(metric: int, col: str, pub: str) -> str:
        parts = []
        for _, x in r.iterrows():
            diff = (x[f"{col}{key}"] - x[pub]) * 100
            parts.append(f"{_name(x.model)} {words[x.model][metric]} ({diff:+.2f} points)")
        return ", ".join(parts)

    mrr_words = [w[0] for w in words.values()]
    verdict = ("at or above" if "below" not in mrr_words else "below" if set(mrr_words) == {"below"} else "mixed")
    seeds = int(r.seeds.min())
    text = (f"On {where}, with {r.variant.iloc[0]} and the epoch chosen "
            + ("on validation" if protocol == "validation" else "by test MRR@20 (the published protocol)")
            + f", against Table 1: MRR@20 {listing(0, 'mrr', 'mrr_pub')}; P@20 {listing(1, 'p', 'p_pub')} "
            + f"({'1 seed' if seeds == 1 else f'{seeds} seeds'}; a gap counts when it exceeds the seeds' range and "
            + f"{TOLERANCE * 100:g} points).")
    numbers = {"n": len(r), **{f"{m}_mrr": w[0] for m, w in words.items()}, **{f"{m}_p": w[1] for m, w in words.items()}}
    return Claim("table1", verdict, text, numbers)



def split_counts(stats: dict, meta: dict) -> pd.DataFrame:
    """The imported split's counts: the published ones (:data:`SPLIT_PUBLISHED`),
    what the import read from the files (``meta.json``'s trace), and what the
    processed dataset uses (train and validation, where the validation split is
    cut from the published training sessions; a slice where one was asked for).
    ``stats`` and ``meta``: the processed dataset's ``stats.json`` and ``meta.json``."""
    trace = meta.get("trace", {})
    read = [trace.get("items_published"), trace.get("train_sessions_published"), trace.get("train_samples_published"),
            trace.get("test_rows_published")]
    valid = "n_valid_sessions" in stats

    def both(a: int, b: int | None) -> str:
        return f"{a:,}" + (f" train + {b:,} validation" if b is not None else "")

    used = [f"{stats['n_items']:,}", both(stats["n_train_sessions"], stats.get("n_valid_sessions") if valid else None),
            both(stats["n_train_samples"], stats.get("n_valid_samples") if valid else None),
            f"{stats['n_test_samples']:,}"]
    rows = ["items", "training sessions", "training samples (every prefix)", "test samples"]
    return pd.DataFrame({"published": [f"{SPLIT_PUBLISHED[k]:,}" for k in ("n_items", "n_train_sessions",
                                                                           "n_train_samples", "n_test_samples")],
                         "read from the files": ["–" if v is None else f"{v:,}" for v in read],
                         "used here": used}, index=rows)
