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

from srs_core.claims import PLUS_MINUS, count
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


#: The datasets of ``benchmarks/calibrate_synthetic.py``'s ``calibration.csv``: results-store
#: names and the labels of its ``data`` column.
CALIBRATION_DATA = {"diginetica": "Diginetica-like preset", "diginetica-srgnn": "real split",
                    "yoochoose-1-64": "Yoochoose 1/64-like preset", "yoochoose-100k": "yoochoose-100k sample"}

#: The calibration pairs of ``calibration.csv`` (its ``data`` column): each real dataset's label,
#: with its preset's label (also the preset's column header) and the real data's column header.
CALIBRATION_PAIRS = {
    CALIBRATION_DATA[real]: (CALIBRATION_DATA[preset], header)
    for real, preset, header in (("diginetica-srgnn", "diginetica", "Diginetica split (real)"),
                                 ("yoochoose-100k", "yoochoose-1-64", "yoochoose-100k (real)"))
}


def calibration_pairs(table: pd.DataFrame) -> list[str]:
    """The real datasets of ``calibration.csv`` that have their preset beside them, in
    :data:`CALIBRATION_PAIRS`' order."""
    present = set(table.data)
    return [real for real, (preset, _) in CALIBRATION_PAIRS.items() if {real, preset} <= present]


def _pair_rows(table: pd.DataFrame, real: str) -> pd.DataFrame:
    """The rows of ``calibration.csv`` for the pair of real data ``real``: the real data and its preset."""
    return table[table.data.isin([real, CALIBRATION_PAIRS[real][0]])]


def calibration_builds(table: pd.DataFrame, real: str) -> str:
    """Where a pair's numbers come from: each side's commits and date, then the machine."""
    pair = _pair_rows(table, real)
    builds = "; ".join(f"{data}: commit {', '.join(sorted(g.commit.unique()))}, {g.date.iloc[0]}"
                       for data, g in pair.groupby("data"))
    return f"Read from the default profile's runs ({builds}; {pair.machine.iloc[0]})."


def _in_words(label: str) -> str:
    """A method's table label as a sentence names it: ``"STAMP, cross-entropy"`` -> ``"STAMP (cross-entropy)"``."""
    head, *rest = label.split(", ")
    return f"{head} ({', '.join(rest)})" if rest else head


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def calibration(table: pd.DataFrame, real: str = "real split") -> tuple[pd.DataFrame, str]:
    """The data chapter's table of ``benchmarks/calibrate_synthetic.py``'s
    ``calibration.csv`` for one pair (``real``, a key of :data:`CALIBRATION_PAIRS`):
    one row per method, the real data and its preset side by side (MRR@20,
    P@20, MRR@20 over V-SKNN's), methods in the real data's order; and a
    sentence on whether the preset keeps that order."""
    preset, real_header = CALIBRATION_PAIRS[real]
    noun = "split" if "split" in real else "sample"
    pick = _pair_rows(table, real).pivot(index="method", columns="data",
                                         values=["mrr_at_20", "p_at_20", "ratio_to_vsknn"])
    both = pick.dropna()
    both = both.sort_values(("mrr_at_20", real))
    out = pd.DataFrame({(header, name): both[(column, data)].map(fmt.format)
                        for header, data in ((real_header, real), (preset, preset))
                        for name, column, fmt in (("MRR@20", "mrr_at_20", "{:.4f}"), ("P@20", "p_at_20", "{:.4f}"),
                                                  ("÷ V-SKNN", "ratio_to_vsknn", "{:.2f}"))})
    out.index = [variant_label(m) for m in out.index]  # "stamp, cross-entropy" -> "STAMP, cross-entropy"
    out.index.name = "method"
    ours = both[("mrr_at_20", preset)].to_numpy()  # in the real data's order, lowest first
    swapped = [(out.index[i], out.index[j]) for i in range(len(out)) for j in range(i + 1, len(out)) if ours[i] > ours[j]]
    rho = {m: both[(m, real)].rank().corr(both[(m, preset)].rank()) for m in ("mrr_at_20", "p_at_20")}
    if not swapped:
        sentence = f"On MRR@20 the preset orders all {len(out)} methods exactly as the real {noun} does"
    else:
        pairs = "; ".join(f"{_in_words(a)} above {_and([_in_words(b) for x, b in swapped if x == a])}"
                          for a in dict.fromkeys(a for a, _ in swapped))
        sentence = (f"On MRR@20 the preset keeps the real {noun}'s order of the {len(out)} methods but for "
                    f"{count(len(swapped), 'pair')} in the other order (on the preset {pairs}; the real {noun} has "
                    f"each the other way round); the rank correlation is {rho['mrr_at_20']:.2f}")
    gap = (both[("ratio_to_vsknn", preset)] - both[("ratio_to_vsknn", real)]).abs()
    sentence += (f". Its ratios to V-SKNN's MRR@20 lie within {gap.max():.2f} of the {noun}'s (median "
                 f"{gap.median():.2f}, largest for {variant_label(gap.idxmax())}); on P@20 the rank correlation "
                 f"of the two orders is {rho['p_at_20']:.2f}.")
    return out, sentence


def _sweep_rows(sweep: pd.DataFrame) -> pd.DataFrame:
    """``calibration_lr.csv`` with its ``loss`` and ``dataset`` columns (a sweep written before
    they existed was STAMP with cross-entropy on the Diginetica-like preset alone)."""
    return sweep.assign(**{c: v for c, v in (("loss", "ce"), ("dataset", "diginetica")) if c not in sweep})


def chosen_rate(sweep: pd.DataFrame) -> float:
    """The learning rate ``benchmarks/calibrate_synthetic.py --sweep`` chooses: on each preset
    swept (``dataset``), cross-entropy's best validation MRR@20 at a rate over the best at any
    rate; the rate with the highest mean of these scores over the presets."""
    rows = _sweep_rows(sweep)
    best = rows[rows.loss == "ce"].groupby(["dataset", "lr"]).valid_mrr_at_20.max()
    best = best / best.groupby(level="dataset").transform("max")
    return float(best.groupby(level="lr").mean().idxmax())


def rate_sentence(sweep: pd.DataFrame) -> str:
    """The data chapter's sentence on the learning-rate sweep: the rate chosen and each preset's
    own best, with the recommended loss's best where it was run."""
    sweep = _sweep_rows(sweep)
    ce = sweep[sweep.loss == "ce"]
    chosen = chosen_rate(sweep)
    rates = ", ".join(f"{r:g}" for r in sorted(ce.lr.unique()))
    own = []
    for preset, g in ce.groupby("dataset", sort=False):
        top = g.loc[g.valid_mrr_at_20.idxmax()]
        at = g[g.lr == chosen].valid_mrr_at_20.max()
        own.append(f"on the {dataset_label(preset)} preset its best validation MRR@20, {top.valid_mrr_at_20:.4f}, "
                   f"came at {top.lr:g} (epoch {top.epoch}; {at:.4f} at {chosen:g})")
    text = (f"Learning rate of the synthetic presets: STAMP with cross-entropy, {ce.epoch.max()} epochs at each of "
            f"{rates}; {'; '.join(own)}. The rate chosen for every preset, the best on average relative to each "
            f"preset's own best, is {chosen:g}.")
    if (sweep.loss == "recommended").any():
        rec = sweep[sweep.loss == "recommended"]
        top = rec.loc[rec.valid_mrr_at_20.idxmax()]
        at = rec[rec.lr == chosen].valid_mrr_at_20.max()
        text += (f" With the recommended loss, run for reference on the Diginetica-like preset, the best came at "
                 f"{top.lr:g} ({top.valid_mrr_at_20:.4f}, epoch {top.epoch}; {at:.4f} at {chosen:g}).")
    return text


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
