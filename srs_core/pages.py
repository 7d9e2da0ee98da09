"""The results pages' tables: readable headers, mean ± sd over seeds, datasets by catalogue size.

Every results page of the book opens with a figure, one tidy table and the
sentences of its claims. :func:`tidy` makes that table from the runs and the
session baselines of :func:`srs_core.experiments.summarise`: one row per
dataset and model (or loss), the dataset and method names a reader knows,
MRR@20 and P@20 as mean ± sd over seeds ("–" for the spread of one seed),
the training seconds per epoch ("–" for a baseline, which trains no epochs),
and the number of seeds.
"""
from __future__ import annotations

import math

import pandas as pd

from srs_core.claims import PLUS_MINUS
from srs_core.plots import LABELS

#: How a page names each dataset of the profiles.
DATASET_LABELS = {"yoochoose-1-64": "Yoochoose 1/64-like", "yoochoose-1-4": "Yoochoose 1/4-like",
                  "diginetica": "Diginetica-like", "meli2020": "MeLi2020-like",
                  "yoochoose-100k": "yoochoose-100k", "diginetica-srgnn": "Diginetica split"}


def dataset_label(name: str) -> str:
    return DATASET_LABELS.get(name, name)


def by_catalogue(runs: pd.DataFrame) -> list[str]:
    """The datasets of ``runs`` from the smallest catalogue to the largest (the order of Table 3)."""
    sizes = runs.groupby("dataset").n_items.max() if "n_items" in runs else pd.Series(dtype=float)
    return sorted(runs.dataset.unique(), key=lambda d: (sizes.get(d, math.inf), d))


def mean_sd(mean: float, sd: float, digits: int = 4) -> str:
    """``"0.1234 ± 0.0012"``; a missing sd (one seed) shows ``"0.1234 ± –"``
    (no-break spaces around the sign, :data:`srs_core.claims.PLUS_MINUS`)."""
    return f"{mean:.{digits}f}{PLUS_MINUS}" + (f"{sd:.{digits}f}" if pd.notna(sd) else "–")


def spread(values: pd.Series, digits: int = 4) -> str:
    """:func:`mean_sd` of the values over seeds (``"–"`` when there are none)."""
    v = values.dropna().astype(float)
    if not len(v):
        return "–"
    return mean_sd(v.mean(), v.std(ddof=1) if len(v) > 1 else float("nan"), digits)


def variant_label(variant: str, omit: tuple[str, ...] = ()) -> str:
    """A run's name with its loss written out (``"ns, S=5, popularity"`` ->
    ``"negative sampling, S=5, popularity"``), without the parts in ``omit``
    (a setting every row of a page shares, such as ``"buckets batching"``)."""
    head, *rest = str(variant).split(", ")
    return ", ".join([LABELS.get(head, head), *(r for r in rest if r not in omit)])


def comparison(table: pd.DataFrame, omit: tuple[str, ...] = (), keep: tuple[str, ...] = ()) -> pd.DataFrame:
    """A page's table of :func:`srs_core.experiments.compare_runs` rows: per
    model and loss (its setting without the parts in ``omit``), the test
    MRR@20 as mean ± sd over seeds, P@20, the ratios of both to the
    reference's with their paired 95% intervals, the verdicts on MRR@20 and
    on P@20, the seeds, and the columns of ``table`` named in ``keep`` as
    they are; the reference first in each model."""
    from srs_core.experiments import interval_text

    reference = table.mrr_verdict.isna()
    out = pd.DataFrame({
        "model": table.model.map(lambda m: LABELS.get(m, m)),
        "loss and setting": name_variants(table, omit).variant,
        "MRR@20": [mean_sd(m, s) for m, s in zip(table.mrr_at_20_mean, table.mrr_at_20_sd)],
        "P@20": table.p_at_20_mean.map("{:.4f}".format),
        "MRR ratio (95% CI)": [interval_text(*r) for r in zip(table.mrr_ratio, table.mrr_lo, table.mrr_hi)],
        "P ratio (95% CI)": [interval_text(*r) for r in zip(table.p_ratio, table.p_lo, table.p_hi)],
        "verdict (MRR / P)": ["reference" if ref else f"{a} / {b}"
                              for ref, a, b in zip(reference, table.mrr_verdict, table.p_verdict)],
        "seeds": table.seeds.astype(int).astype(str),
        **{k: table[k] for k in keep},
        "_first": ~reference.to_numpy()})
    out = out.sort_values(["model", "_first", "loss and setting"]).drop(columns="_first")
    return out.set_index(["model", "loss and setting"])


def tidy(runs: pd.DataFrame, floors: pd.DataFrame | None = None, by: tuple[str, ...] = ("dataset", "model")) -> pd.DataFrame:
    """The page's table: one row per ``by`` group of ``runs`` (``("dataset",
    "model")``, or with ``"variant"`` for the loss and its setting), then the
    session baselines of ``floors`` on the same datasets; readable names,
    datasets by catalogue size, the neural rows (by model, then by MRR@20)
    before the baselines (by MRR@20)."""
    frames = [runs.assign(kind=0)] + ([floors[floors.dataset.isin(runs.dataset)].assign(kind=1)]
                                      if floors is not None and len(floors) else [])
    both = pd.concat(frames, ignore_index=True)
    order = {d: i for i, d in enumerate(by_catalogue(both))}
    models = {m: i for i, m in enumerate(LABELS)}
    rows = []
    for keys, g in both.groupby(list(by) + ["kind"], sort=False):
        keys = dict(zip(list(by) + ["kind"], keys))
        baseline = keys["kind"] == 1
        row = {"dataset": dataset_label(keys["dataset"]) if "dataset" in keys else None,
               "method": LABELS.get(g.model.iloc[0], g.model.iloc[0]) + (" (baseline)" if baseline else "")}
        if "variant" in by:
            row["loss"] = "–" if baseline else variant_label(keys["variant"])
        row.update({"MRR@20": spread(g.mrr_at_20), "P@20": spread(g.p_at_20),
                    "s / epoch": "–" if baseline else f"{g.epoch_seconds.mean():.1f}",
                    "seeds": "–" if baseline else str(g.seed.nunique()),
                    "_order": (order.get(keys.get("dataset"), 0), keys["kind"],
                               0 if baseline else models.get(g.model.iloc[0], 99), -g.mrr_at_20.mean())})
        rows.append(row)
    rows.sort(key=lambda r: r["_order"])  # datasets by catalogue; models in order, each by MRR@20; then the baselines
    table = pd.DataFrame(rows).drop(columns="_order")
    if "dataset" not in by:
        table = table.drop(columns="dataset")
    return table.set_index([c for c in table.columns if c not in ("MRR@20", "P@20", "s / epoch", "seeds")])


def scaling_table(steps: pd.DataFrame) -> pd.DataFrame:
    """The scaling page's table: one row per loss and optimizer (the book's
    names, cross-entropy first), the median step time at each catalogue size
    measured, and the log-log slopes of step time and of peak memory over the
    catalogue size (1: linear, 0: flat)."""
    from srs_core.plots import OPTIMIZER_LABELS, pairing_label
    from srs_core.stats import loglog_slope

    rows = {}
    for (loss, optimizer), g in steps.groupby(["loss", "optimizer"]):
        g = g.groupby("n_items")[["median_ms", "peak_rss_mb"]].median().sort_index()
        row = {("ms per step, at N items", f"{int(n):,}"): f"{ms:.1f}" for n, ms in g.median_ms.items()}
        row[("log-log slope", "time")] = f"{loglog_slope(g.index, g.median_ms):.2f}" if len(g) > 1 else "–"
        row[("log-log slope", "memory")] = f"{loglog_slope(g.index, g.peak_rss_mb):.2f}" if len(g) > 1 else "–"
        order = (loss != "ce", loss, list(OPTIMIZER_LABELS).index(optimizer) if optimizer in OPTIMIZER_LABELS else 9)
        rows[(order, pairing_label(loss, optimizer))] = row
    table = pd.DataFrame([rows[k] for k in sorted(rows)], index=[k[1] for k in sorted(rows)])
    sizes = sorted({c for c in table.columns if c[0].startswith("ms")}, key=lambda c: int(c[1].replace(",", "")))
    table = table[sizes + [c for c in table.columns if c not in sizes]].fillna("–")
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    table.index.name = "loss + optimizer"
    return table


def frontier_table(points: pd.DataFrame, on_frontier: pd.Series, reference_ms: float) -> pd.DataFrame:
    """The frontier's table: per model and loss, the setting chosen on
    validation, its MRR@20 ratio to cross-entropy's (95% interval) and
    verdict, its training step in ms and as a multiple of negative sampling's
    in the dissertation's setting (``reference_ms``), and whether it is on
    the accuracy-cost frontier. A loss that was not timed says so."""
    from srs_core.experiments import interval_text

    step = points.step_ms
    out = pd.DataFrame({
        "model": points.model.map(lambda m: LABELS.get(m, m)),
        "loss": points.loss.map(lambda v: LABELS.get(v, v)),
        "setting": [", ".join(str(v).split(", ")[1:]) or "as defined" for v in points.variant],
        "MRR ratio (95% CI)": [interval_text(*r) for r in zip(points.mrr_ratio, points.mrr_lo, points.mrr_hi)],
        "verdict (MRR)": points.mrr_verdict.fillna("reference"),
        "ms / step": [f"{v:.1f}" if pd.notna(v) else "not timed" for v in step],
        "÷ negative sampling's step": [f"{v / reference_ms:.2f}" if pd.notna(v) and reference_ms > 0 else "–" for v in step],
        "on the frontier": on_frontier.reindex(points.index).map({True: "yes", False: "no"}).fillna("–")})
    return out.sort_values(["model", "loss"]).set_index(["model", "loss"])


def official_table(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The side-by-side table of ``benchmarks/results/official.csv`` (our
    models next to their official code, one run each): per dataset and model,
    the official code's and ours' seconds per epoch, test MRR@20 and P@20
    after the epochs run, the speed-up (official time / ours) and the date
    measured (the machine goes in the page's sentence). Returns the
    table and its speed-ups as numbers (columns ``dataset``, ``model``,
    ``speedup``, ``mrr_ratio``), for the page's sentences."""
    who = rows.implementation.str.split(" ", n=1)
    rows = rows.assign(side=who.str[0], model=who.str[1])
    out, nums = [], []
    for (dataset, model), g in rows.groupby(["dataset", "model"], sort=False):
        sides = g.set_index("side")
        if not {"official", "ours"} <= set(sides.index):
            continue
        o, u = sides.loc["official"], sides.loc["ours"]
        speedup = o.median_epoch_seconds / u.median_epoch_seconds
        nums.append({"dataset": dataset, "model": model, "speedup": speedup, "mrr_ratio": u.mrr_at_20 / o.mrr_at_20})
        out.append({"dataset": dataset_label(dataset), "model": model, "epochs": int(o.epochs),
                    ("s / epoch", "official"): f"{o.median_epoch_seconds:,.1f}",
                    ("s / epoch", "ours"): f"{u.median_epoch_seconds:,.1f}",
                    ("MRR@20", "official"): f"{o.mrr_at_20:.4f}", ("MRR@20", "ours"): f"{u.mrr_at_20:.4f}",
                    ("P@20", "official"): f"{o.p_at_20:.4f}", ("P@20", "ours"): f"{u.p_at_20:.4f}",
                    "speed-up": f"{speedup:.1f}x", "date": str(o.date)})
    table = pd.DataFrame(out)
    if len(table):
        table = table.set_index(["dataset", "model"])
        table.columns = pd.MultiIndex.from_tuples([c if isinstance(c, tuple) else (c, "") for c in table.columns])
    return table, pd.DataFrame(nums, columns=["dataset", "model", "speedup", "mrr_ratio"])


def name_variants(rows: pd.DataFrame, omit: tuple[str, ...] = ()) -> pd.DataFrame:
    """``rows`` with each ``variant`` written as the book names it
    (:func:`variant_label`, without the parts in ``omit``), for a claim's sentence."""
    return rows.assign(variant=rows.variant.map(lambda v: variant_label(v, omit=omit)))
