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


def _legend_below(fig: plt.Figure, ax: plt.Axes) -> None:
    """One legend under the panels, so that it never hides a bar."""
    handles, labels = ax.get_legend_handles_labels()
    ax.get_legend().remove()
    fig.tight_layout(rect=(0, 0.1, 1, 0.93))
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), fontsize=8, frameon=False)


#: How a figure names each optimizer, and the line style and marker that tell them apart (a loss keeps its colour).
OPTIMIZER_LABELS = {"dense": "dense Adam", "sparse": "SparseAdam", "sparse_fast": "sparse_fast"}
OPTIMIZER_STYLES = {"dense": ("-", "o"), "sparse": (":", "s"), "sparse_fast": ("--", "^")}


def pairing_label(loss: str, optimizer: str) -> str:
    """``"negative sampling + sparse_fast"``: a loss and its optimizer as the book names them."""
    return f"{LABELS.get(loss, loss)} + {OPTIMIZER_LABELS.get(optimizer, optimizer)}"


def scaling(df: pd.DataFrame) -> plt.Figure:
    """Step time and peak memory against the number of items (log-log), sized
    for the text column: one colour per loss, one line style and marker per
    optimizer, one legend entry per pairing, below the panels."""
    fig, axes = plt.subplots(1, 2, figsize=(PAGE_WIDTH, 3.6))
    pairs = df[["loss", "optimizer"]].drop_duplicates()
    pairs = pairs.sort_values(["loss", "optimizer"], key=lambda s: s.map(lambda v: (v != REFERENCE, v)))
    for r in pairs.itertuples():
        d = df[(df.loss == r.loss) & (df.optimizer == r.optimizer)].groupby("n_items")[["median_ms", "peak_rss_mb"]].median()
        line, marker = OPTIMIZER_STYLES.get(r.optimizer, ("-.", "d"))
        for ax, col in zip(axes, ("median_ms", "peak_rss_mb")):
            ax.plot(d.index, d[col], linestyle=line, marker=marker, markersize=4, color=colour(r.loss),
                    label=pairing_label(r.loss, r.optimizer))
    for ax, name, title in ((axes[0], "ms per training step (median)", "(a) time per step"),
                            (axes[1], "peak resident memory (MB)", "(b) peak memory")):
        ax.set(xscale="log", yscale="log")
        ax.set_xlabel("number of items N", fontsize=FONT)
        ax.set_ylabel(name, fontsize=FONT)
        ax.set_title(title, fontsize=FONT + 1)
        ax.tick_params(labelsize=FONT)
    handles, labels = axes[0].get_legend_handles_labels()
    rows = -(-len(labels) // 2)
    fig.tight_layout(rect=(0, 0.055 * (rows + 1), 1, 1))
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=FONT, frameon=False)
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
    """Accuracy against cost, one panel per model, sized for the text column:
    x the loss's training step (ms, log scale) at a MeLi2020-sized catalogue,
    y its test-day MRR@20 over cross-entropy's with the 95% interval, each
    point in its loss's colour and labelled with its loss (labels alternate
    above and below, so neighbours do not overlap); the frontier
    (``on_frontier``) is joined by a line. Points without a step time
    (``NaN``: not benchmarked) are left out; a panel with none says so."""
    models = list(dict.fromkeys(points.model))
    fig, axes = plt.subplots(len(models), 1, figsize=(PAGE_WIDTH, 3.8 * len(models)), squeeze=False, sharex=True)
    for ax, model in zip(axes[:, 0], models):
        d = points[(points.model == model) & (points.step_ms > 0)].sort_values("step_ms")  # NaN: not timed
        if not len(d):
            ax.axis("off")
            ax.text(0.5, 0.5, f"{LABELS.get(model, model)}: no step time measured for these losses\n"
                    "(benchmarks/bench_losses.py)", ha="center", va="center", fontsize=FONT, transform=ax.transAxes)
            continue
        front = d[on_frontier.reindex(d.index).fillna(False).astype(bool)]
        ax.step(front.step_ms, front.mrr_ratio, where="post", color="0.35", linewidth=1.2, label="frontier")
        ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--", label="cross-entropy")
        for i, r in enumerate(d.itertuples()):
            err = [[max(r.mrr_ratio - r.mrr_lo, 0)], [max(r.mrr_hi - r.mrr_ratio, 0)]]
            ax.errorbar([r.step_ms], [r.mrr_ratio], yerr=err, fmt="o", capsize=3, color=colour(r.loss))
            below = i % 2 == 1
            ax.annotate(LABELS.get(r.loss, r.loss), (r.step_ms, r.mrr_ratio), textcoords="offset points",
                        xytext=(0, -12 if below else 8), ha="center", va="top" if below else "bottom", fontsize=FONT)
        lo, hi = d.step_ms.min(), d.step_ms.max()
        ax.set_xlim(lo / 2.5, hi * 2.5)  # room for the labels of the first and the last point
        ax.set_xscale("log")
        ax.set_ylabel("test MRR@20 / cross-entropy's", fontsize=FONT)
        ax.set_title(LABELS.get(model, model), fontsize=FONT + 1)
        ax.tick_params(labelsize=FONT)
        ax.margins(y=0.15)
        ax.legend(loc="best", fontsize=FONT)
    axes[-1, 0].set_xlabel("ms per training step (log scale)", fontsize=FONT)
    fig.tight_layout()
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
