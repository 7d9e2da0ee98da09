"""Experiment I on real data: what an epoch costs per training sample, against the catalogue.

The dissertation's Experiment I times cross-entropy's epoch on catalogues of
17k to 1.3M items. On real data we have two catalogues, the 2.5k-item
yoochoose-100k sample and the 43k-item standard Diginetica split, with
different numbers of training samples; :func:`cost_table` puts each run's
epoch time on one footing (milliseconds per 1,000 training samples) and
:func:`cost_grows_real` reads how much more a sample costs on the larger
catalogue, for cross-entropy and for the recommended scalable loss.
"""
from __future__ import annotations

import math

import pandas as pd

from srs_core.claims import Claim, _fmt, count

#: How much more a sample may cost on the larger catalogue and still "not grow" (a ratio).
FLAT_RATIO = 1.5


def cost_table(runs: pd.DataFrame, stats: dict[str, dict]) -> pd.DataFrame:
    """Per dataset, model and loss: items, training samples, seconds per epoch
    and milliseconds per 1,000 training samples (means over seeds).
    ``runs``: :func:`srs_core.experiments.summarise` rows with a ``label``
    column naming the loss ("cross-entropy", "recommended"); ``stats``: each
    dataset's ``stats.json``."""
    rows = []
    for (dataset, model, label), g in runs.groupby(["dataset", "model", "label"], sort=True):
        samples = stats[dataset]["n_train_samples"]
        secs = g.epoch_seconds.mean()
        rows.append({"dataset": dataset, "model": model, "loss": label, "items": stats[dataset]["n_items"],
                     "train samples": samples, "s / epoch": secs, "ms / 1k samples": 1e6 * secs / samples,
                     "runs": len(g)})
    return pd.DataFrame(rows)


def cost_grows_real(table: pd.DataFrame, small: str, large: str, names: dict[str, str] | None = None) -> Claim:
    """I on real data. For each model and loss timed on both datasets, the
    ratio of its cost per training sample on ``large`` to that on ``small``.
    Cross-entropy's cost "grows with the catalogue" when every such ratio of
    cross-entropy is above :data:`FLAT_RATIO`, "does not grow" when every one
    is at most that; the recommended loss's ratios are quoted beside it.
    ``names`` gives the sentence a reader's name for each dataset."""
    names = names or {}
    both = table[table.dataset.isin([small, large])]
    ratios = []
    for (model, loss), g in both.groupby(["model", "loss"]):
        per = g.set_index("dataset")["ms / 1k samples"]
        if small in per and large in per:
            ratios.append({"model": model, "loss": loss, "ratio": per[large] / per[small]})
    r = pd.DataFrame(ratios, columns=["model", "loss", "ratio"])
    ce = r[r.loss == "cross-entropy"]
    if not len(ce):
        return Claim("I-real", "not measured", f"Cross-entropy was not timed on both {names.get(small, small)} and {names.get(large, large)}.", {"n": 0})
    items = table.drop_duplicates("dataset").set_index("dataset")["items"]
    span = items[large] / items[small]
    word = ("grows with the catalogue" if (ce.ratio > FLAT_RATIO).all() else
            "does not grow" if (ce.ratio <= FLAT_RATIO).all() else "mixed")
    rec = r[r.loss == "recommended"]

    def span_text(x: pd.DataFrame) -> str:
        v = x.ratio.to_numpy(float)
        lo, hi = v.min(), v.max()
        return f"{_fmt(lo)}x" if round(lo, 2) == round(hi, 2) else f"{_fmt(lo)}-{_fmt(hi)}x"

    text = (f"Per training sample, cross-entropy's epoch cost {span_text(ce)} as much on {names.get(large, large)} "
            f"({int(items[large]):,} items) as on {names.get(small, small)} ({int(items[small]):,} items), {span:.0f} times the items "
            f"({count(len(ce), 'model')})")
    text += (f"; the recommended scalable loss's cost {span_text(rec)} as much." if len(rec) else ".")
    numbers = {"n": len(ce), "ce_min": float(ce.ratio.min()), "ce_max": float(ce.ratio.max()),
               "rec_max": float(rec.ratio.max()) if len(rec) else math.nan, "span": float(span)}
    return Claim("I-real", word, text, numbers)
