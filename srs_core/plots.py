"""Figure functions the figures notebook calls (seaborn, one figure each)."""
from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib import ticker
import seaborn as sns

from srs_core.baselines import BASELINE_LABELS
from srs_core.diagnosis import REFERENCE
from srs_core.losses import LOSSES
from srs_core.models import MODELS

sns.set_theme(style="whitegrid", context="notebook")

#: How every figure names each model, loss and baseline (each declares its label beside its code).
LABELS = {**{n: cls.label for n, cls in MODELS.items()}, **{n: cls.label for n, cls in LOSSES.items()},
          **BASELINE_LABELS}
#: One colour per model and one per loss, the same in every figure (a colour-blind-safe palette).
_COLOURS = sns.color_palette("colorblind", 10)
COLOURS = {"gru4rec": _COLOURS[7], "narm": _COLOURS[4], "stamp": _COLOURS[0], "srgnn": _COLOURS[2],
           **{name: _COLOURS[cls.colour] for name, cls in LOSSES.items()}}  # each loss declares its colour
#: The second colour of a comparison within one loss (cross-entropy with L2 beside it without).
ALTERNATIVE = _COLOURS[9]
#: Figure width for the book's text column (about 720 pixels at the book's 100 dpi), and the smallest font.
PAGE_WIDTH, FONT = 7.2, 9


def colour(key: str, fallback: int = 9):
    """The colour of a model or a loss; a loss's variant (``"ns, S=5, popularity"``)
    takes a lighter shade of its loss's colour, so the two can be told apart."""
    if key in COLOURS:
        return COLOURS[key]
    head = str(key).split(",")[0]
    if head in COLOURS:
        return tuple(0.45 * c + 0.55 for c in COLOURS[head])
    return _COLOURS[fallback % 10]


def experiment(runs: pd.DataFrame, *, x: str, hue: str, x_order: list | None = None, x_names: dict | None = None,
               hue_names: dict | None = None, hue_colours: dict | None = None) -> plt.Figure:
    """The figure of an experiment page, sized for the text column: (a) test
    MRR@20 and (b) training seconds per epoch (log scale), one bar per ``hue``
    (mean over seeds; the black line spans one sd where there are several) in
    each ``x`` group, groups in ``x_order``; one colour per ``hue`` value (its
    model's or loss's, or ``hue_colours``), cross-entropy first, one legend
    entry each, below. More than three groups stack the panels, so that each
    is as wide as the column and the group names stay level."""
    x_order = x_order or list(dict.fromkeys(runs[x]))
    first = (REFERENCE, LABELS[REFERENCE])
    hues = sorted(dict.fromkeys(runs[hue]), key=lambda h: (h not in first, list(runs[hue]).index(h)))
    width = 0.8 / max(len(hues), 1)
    stacked = len(x_order) > 3
    fig, axes = plt.subplots(2 if stacked else 1, 1 if stacked else 2, figsize=(PAGE_WIDTH, 5.8 if stacked else 3.2))
    for ax, col, name in ((axes[0], "mrr_at_20", "MRR@20 (test)"), (axes[1], "epoch_seconds", "seconds per epoch")):
        for j, h in enumerate(hues):
            g = runs[runs[hue] == h].groupby(x)[col]
            mean, sd = g.mean().reindex(x_order), g.std().reindex(x_order)
            pos = [i - 0.4 + width * (j + 0.5) for i in range(len(x_order))]
            c = (hue_colours or {}).get(h, colour(h, j))
            ax.bar(pos, mean.to_numpy(), width, color=c, label=(hue_names or {}).get(h, LABELS.get(h, h)))
            if sd.notna().any():
                ax.errorbar(pos, mean.to_numpy(), yerr=sd.to_numpy(), fmt="none", ecolor="black", elinewidth=1,
                            capsize=2)
        names = ["\n".join(textwrap.fill(part, 11 if len(x_order) > 4 else 15) for part in str((x_names or {}).get(v, LABELS.get(v, v))).split("\n"))
                 for v in x_order]
        tilt = not stacked and len(x_order) > 3 and not any("\n" in n for n in names)
        ax.set_xticks(range(len(x_order)), names, fontsize=FONT, rotation=20 if tilt else 0,
                      ha="right" if tilt else "center")
        ax.set_ylabel(name, fontsize=FONT)
        ax.tick_params(axis="y", labelsize=FONT)
    axes[1].set_yscale("log")
    plain = ticker.FuncFormatter(lambda v, _: f"{v:g}")
    axes[1].yaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axes[1].yaxis.set_major_formatter(plain)
    axes[1].yaxis.set_minor_formatter(ticker.NullFormatter())
    handles, labels = axes[0].get_legend_handles_labels()
    longest = max((len(t) for t in labels), default=0)
    ncol = min(len(labels), 4 if longest < 16 else 3 if longest < 24 else 2)
    rows = -(-len(labels) // max(ncol, 1))
    fig.tight_layout(rect=(0, (0.035 if stacked else 0.06) * (rows + 1), 1, 1))
    fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=FONT, frameon=False)
    return fig


def _label(df: pd.DataFrame, col: str) -> pd.Series:
    return df[col].map(lambda v: LABELS.get(v, v))


#: Line styles of the baselines' reference marks (cycled).
FLOOR_STYLES = ["--", ":", "-.", (0, (5, 1)), (0, (1, 1)), (0, (3, 1, 1, 1))]


def quality_and_time(df: pd.DataFrame, *, x: str, hue: str, title: str, floors: pd.DataFrame | None = None) -> plt.Figure:
    """Two panels, as in the dissertation's Figures 8-10: (a) MRR@20, (b)
    training seconds per epoch. Bars are means over seeds; the black lines
    are one standard deviation when there are several seeds.

    ``floors`` (baseline rows: ``model`` names the baseline) are drawn in (a)
    as reference marks, one dashed segment per baseline across each group of
    bars, not as bars: over the group of their own ``x`` value where the
    floors have that column (``x="dataset"``), else across every group."""
    d = df.copy()
    d[hue], d[x] = _label(d, hue), _label(d, x)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    sns.barplot(d, x=x, y="mrr_at_20", hue=hue, errorbar="sd", ax=axes[0], err_kws={"linewidth": 1.2}, capsize=0.1)
    axes[0].set(ylabel="MRR@20", xlabel="", title="(a) recommendation quality")
    if floors is not None and len(floors):
        _floor_marks(axes[0], floors, x)
    timed = d.dropna(subset=["epoch_seconds"])
    sns.barplot(timed, x=x, y="epoch_seconds", hue=hue, errorbar="sd", ax=axes[1], capsize=0.1,
                err_kws={"linewidth": 1.2}, legend=False)
    axes[1].set(ylabel="training seconds per epoch", xlabel="", yscale="log", title="(b) training time")
    for ax in axes:
        ax.tick_params(axis="x", labelrotation=15)
    _legend_below(fig, axes[0])
    fig.suptitle(title)
    return fig


def _floor_marks(ax: plt.Axes, floors: pd.DataFrame, x: str) -> None:
    """One black segment per baseline over each group of bars, with its own line style."""
    groups = [t.get_text() for t in ax.get_xticklabels()]
    names = list(dict.fromkeys(floors.model))
    for style, name in zip(FLOOR_STYLES * (len(names) // len(FLOOR_STYLES) + 1), names):
        rows = floors[floors.model == name]
        for i, group in enumerate(groups):
            here = rows[_label(rows, x) == group] if x in rows.columns else rows
            if len(here):
                ax.hlines(float(here.mrr_at_20.mean()), i - 0.45, i + 0.45, colors="black", linestyles=style,
                          linewidth=1.3, label=f"{LABELS.get(name, name)} (baseline)")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))  # one entry per baseline
    ax.legend(unique.values(), unique.keys())


def _legend_below(fig: plt.Figure, ax: plt.Axes) -> None:
    """One legend under the panels, so that it never hides a bar."""
    handles, labels = ax.get_legend_handles_labels()
    ax.get_legend().remove()
    fig.tight_layout(rect=(0, 0.1, 1, 0.93))
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), fontsize=8, frameon=False)


def scaling(df: pd.DataFrame) -> plt.Figure:
    """Step time and peak memory against the number of items (log-log)."""
    d = df.copy()
    d["pairing"] = d["loss"].map(lambda v: LABELS.get(v, v)) + " + " + d["optimizer"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    sns.lineplot(d, x="n_items", y="median_ms", hue="pairing", style="pairing", markers=True, dashes=False, ax=axes[0])
    axes[0].set(xscale="log", yscale="log", xlabel="number of items N", ylabel="ms per training step (median)",
                title="(a) time per step")
    sns.lineplot(d, x="n_items", y="peak_rss_mb", hue="pairing", style="pairing", markers=True, dashes=False, ax=axes[1],
                 legend=False)
    axes[1].set(xscale="log", yscale="log", xlabel="number of items N", ylabel="peak resident memory (MB)",
                title="(b) peak memory")
    _legend_below(fig, axes[0])
    return fig


def peers(df: pd.DataFrame) -> plt.Figure:
    """Ours against RecBole (``benchmarks/results/peers.csv``): median ms per
    training step against the number of items, one panel per encoder (log-log)."""
    d = df.copy()
    library = d["library"].map({"recbole": "RecBole", "ours": "ours"})
    optimizer = d["optimizer"].replace({"adam": "dense Adam", "dense": "dense Adam"})
    d["configuration"] = library + " " + d["loss"].map(lambda v: LABELS.get(v, v)) + " + " + optimizer
    order = list(dict.fromkeys(d["configuration"]))  # the same colours and markers in every panel
    models = list(dict.fromkeys(d["model"]))
    fig, axes = plt.subplots(1, len(models), figsize=(3.4 * len(models), 4.2), sharey=True, squeeze=False)
    for ax, model in zip(axes[0], models):
        sns.lineplot(d[d.model == model], x="n_items", y="median_ms", hue="configuration", style="configuration",
                     markers=True, dashes=False, ax=ax, hue_order=order, style_order=order)
        ax.set(xscale="log", yscale="log", xlabel="number of items N", ylabel="ms per training step (median)",
               title=LABELS.get(model, model))
        if ax is not axes[0][0]:
            ax.get_legend().remove()
    _legend_below(fig, axes[0][0])
    return fig


def frontier(points: pd.DataFrame, on_frontier: pd.Series) -> plt.Figure:
    """Accuracy against cost, one panel per model: x the loss's training step
    (ms, log scale) at a MeLi2020-sized catalogue, y its test-day MRR@20 over
    cross-entropy's with the 95% interval, each point labelled with its loss;
    the frontier (``on_frontier``) is joined by a line. Points without a step
    time (``NaN``: not benchmarked) are left out; a panel with none says so."""
    models = list(dict.fromkeys(points.model))
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4.4), squeeze=False, sharey=True)
    for ax, model in zip(axes[0], models):
        d = points[(points.model == model) & (points.step_ms > 0)].sort_values("step_ms")  # NaN: not timed
        if not len(d):
            ax.axis("off")
            ax.text(0.5, 0.5, f"{LABELS.get(model, model)}: no step time measured for these losses\n"
                    "(benchmarks/bench_losses.py)", ha="center", va="center", fontsize=10, transform=ax.transAxes)
            continue
        err = [(d.mrr_ratio - d.mrr_lo).clip(lower=0), (d.mrr_hi - d.mrr_ratio).clip(lower=0)]
        ax.errorbar(d.step_ms, d.mrr_ratio, yerr=err, fmt="o", capsize=3, color="tab:blue")
        for r in d.itertuples():
            ax.annotate(LABELS.get(r.loss, r.loss), (r.step_ms, r.mrr_ratio), textcoords="offset points",
                        xytext=(5, 5), fontsize=9)
        front = d[on_frontier.reindex(d.index).fillna(False).astype(bool)]
        ax.step(front.step_ms, front.mrr_ratio, where="post", color="tab:orange", label="frontier")
        ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--", label="cross-entropy")
        ax.set(xscale="log", xlabel="ms per training step (log scale)", ylabel="test MRR@20 / cross-entropy's",
               title=LABELS.get(model, model))
    if axes[0][0].has_data():
        axes[0][0].legend(loc="lower right")
    return fig


def unavailable(text: str) -> plt.Figure:
    """A small figure that only says why a figure is missing (its data is
    absent where the book was built), so that the page still builds."""
    fig, ax = plt.subplots(figsize=(8, 0.8))
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=11)
    return fig


def table1(rows: pd.DataFrame) -> plt.Figure:
    """Table 1 as bars: per model, the published MRR@20 (grey) beside ours
    chosen on validation for each loss trained (``rows``:
    :func:`srs_core.table1.per_model`, fractions); the black line spans the
    seeds' range. Sized for the book's text width."""
    models = [m for m in ("gru4rec", "narm", "stamp", "srgnn") if m in set(rows.model)]
    variants = list(dict.fromkeys(rows.sort_values("loss", key=lambda s: s != REFERENCE).variant))
    colours = dict(zip(variants, sns.color_palette("colorblind", len(variants))))
    fig, ax = plt.subplots(figsize=(6.8, 3.6))
    width = 0.8 / (len(variants) + 1)
    for i, model in enumerate(models):
        pub = rows[rows.model == model].mrr_pub.iloc[0] * 100
        ax.bar(i - 0.4 + width / 2, pub, width, color="0.7", label="published (Table 1)")
        for j, v in enumerate(variants):
            r = rows[(rows.model == model) & (rows.variant == v)]
            if not len(r):
                continue
            x, y, half = i - 0.4 + width * (j + 1.5), r.mrr.iloc[0] * 100, r.mrr_range.iloc[0] * 50
            ax.bar(x, y, width, color=colours[v], label=f"ours: {LABELS.get(r.loss.iloc[0], v)}")
            if half > 0:
                ax.vlines(x, y - half, y + half, colors="black", linewidth=1.2)
    ax.set_xticks(range(len(models)), [LABELS.get(m, m) for m in models])
    ax.set(ylabel="MRR@20 (%)", xlabel="")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.legend(unique.values(), unique.keys(), loc="lower center", ncol=len(unique), fontsize=9, frameon=False)
    return fig


def ratios(table: pd.DataFrame) -> plt.Figure:
    """Each variant's test MRR@20 over its reference's, with the paired 95%
    interval, one panel per model (``table``: rows of
    :func:`srs_core.experiments.compare_runs`); the dashed line is the
    reference and the shaded band is where a ratio *matches* (0.97-1.03).
    Sized for the book's text width."""
    from srs_core.stats import MATCH_BAND

    models = list(dict.fromkeys(table.model))
    variants = sorted(set(table.variant))
    fig, axes = plt.subplots(1, len(models), figsize=(6.8, 0.5 * len(variants) + 1.6), squeeze=False, sharey=True)
    for ax, model in zip(axes[0], models):
        d = table[table.model == model].set_index("variant").reindex(variants)
        y = range(len(variants))
        err = [(d.mrr_ratio - d.mrr_lo).clip(lower=0), (d.mrr_hi - d.mrr_ratio).clip(lower=0)]
        ax.axvspan(1 - MATCH_BAND, 1 + MATCH_BAND, color="0.9")
        ax.axvline(1.0, color="black", linestyle="--", linewidth=0.8)
        ax.errorbar(d.mrr_ratio, y, xerr=err, fmt="o", capsize=3, color="tab:blue")
        ax.set_yticks(list(y), variants)
        ax.set(title=LABELS.get(model, model), xlabel="MRR@20 / cross-entropy's")
    fig.tight_layout()
    return fig
