"""The data chapter's calibration of the embedded data: the synthetic presets beside the real data.

Reads what ``benchmarks/calibrate_synthetic.py`` writes to ``benchmarks/results/``:
``calibration.csv`` (every method on each preset and its real data), ``calibration_knn.csv``
(V-SKNN with each of its refinements taken away) and ``calibration_lr.csv`` (the learning-rate
sweep), and turns each into a table and sentences computed from its numbers.
"""
from __future__ import annotations

import pandas as pd

from srs_core.claims import count
from srs_core.pages import dataset_label, variant_label


def read(path) -> pd.DataFrame:
    """One of the calibration files, its ``commit`` column as text (a short hash such as
    ``46919e0`` would otherwise be read as a number)."""
    return pd.read_csv(path, dtype={"commit": str})


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


def preset_scales(table: pd.DataFrame, real: str) -> list[float | None]:
    """The scales at which ``calibration.csv`` has the preset of the pair ``real``, smallest first
    (``[None]`` for a file without a ``scale`` column: one scale)."""
    if "scale" not in table:
        return [None]
    return sorted(table[table.data == CALIBRATION_PAIRS[real][0]].scale.unique())


def _pair_rows(table: pd.DataFrame, real: str, scale: float | None = None) -> pd.DataFrame:
    """The rows of ``calibration.csv`` for the pair of real data ``real``: the real data and its
    preset, at ``scale`` where given (else at its smallest scale)."""
    preset = CALIBRATION_PAIRS[real][0]
    rows = table[table.data.isin([real, preset])]
    if "scale" not in rows:
        return rows
    scale = preset_scales(table, real)[0] if scale is None else scale
    return rows[(rows.data == real) | (rows.scale == scale)]


def _n_items(rows: pd.DataFrame, data: str) -> int | None:
    """The catalogue size of ``data`` among ``rows``, where they record it."""
    n = rows.loc[rows.data == data, "n_items"].dropna() if "n_items" in rows else ()
    return int(n.iloc[0]) if len(n) else None


def _with_items(header: str, rows: pd.DataFrame, data: str) -> str:
    """A table's column header with the catalogue size of ``data`` where ``rows`` record it:
    ``Diginetica split (real, 43,097 items)``, ``Diginetica-like preset (3,288 items)``."""
    n = _n_items(rows, data)
    if n is None:
        return header
    return f"{header[:-1]}, {n:,} items)" if header.endswith(")") else f"{header} ({n:,} items)"


def calibration_builds(table: pd.DataFrame, real: str, source: str = "Read from the default profile's runs",
                       scale: float | None = None) -> str:
    """Where a pair's numbers come from (``source``): each side's commits and date, then the machine."""
    pair = _pair_rows(table, real, scale)
    builds = "; ".join(f"{data}: commit {', '.join(sorted(g.commit.unique()))}, {g.date.iloc[0]}"
                       for data, g in pair.groupby("data"))
    return f"{source} ({builds}; {pair.machine.iloc[0]})."


def _in_words(label: str) -> str:
    """A method's table label as a sentence names it: ``"STAMP, cross-entropy"`` -> ``"STAMP (cross-entropy)"``."""
    head, *rest = label.split(", ")
    return f"{head} ({', '.join(rest)})" if rest else head


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _noun(real: str) -> str:
    """What a pair's real data is called in its sentences: a ``split`` or a ``sample``."""
    return "split" if "split" in real else "sample"


def _beside(columns: list[tuple[str, pd.DataFrame, str]], real: str, rows: pd.DataFrame) -> pd.DataFrame:
    """A pair's table: for the real data, then its preset, one column per ``(name, frame, fmt)``
    of ``columns`` (each frame indexed by method, one column per ``data`` label), formatted; each
    side's header names its catalogue size where ``rows`` (the pair's) record it."""
    preset, real_header = CALIBRATION_PAIRS[real]
    return pd.DataFrame({(_with_items(header, rows, data), name): frame[data].map(fmt.format)
                         for header, data in ((real_header, real), (preset, preset))
                         for name, frame, fmt in columns})


def calibration(table: pd.DataFrame, real: str = "real split", scale: float | None = None) -> tuple[pd.DataFrame, str]:
    """The data chapter's table of ``benchmarks/calibrate_synthetic.py``'s
    ``calibration.csv`` for one pair (``real``, a key of :data:`CALIBRATION_PAIRS`),
    the preset at ``scale`` (default: its smallest in the file): one row per
    method, the real data and its preset side by side (MRR@20, P@20, MRR@20
    over V-SKNN's), methods in the real data's order; and a sentence on whether
    the preset keeps that order."""
    preset = CALIBRATION_PAIRS[real][0]
    noun = _noun(real)
    rows = _pair_rows(table, real, scale)
    pick = rows.pivot(index="method", columns="data", values=["mrr_at_20", "p_at_20", "ratio_to_vsknn"])
    both = pick.dropna()
    both = both.sort_values(("mrr_at_20", real))
    out = _beside([("MRR@20", both["mrr_at_20"], "{:.4f}"), ("P@20", both["p_at_20"], "{:.4f}"),
                   ("÷ V-SKNN", both["ratio_to_vsknn"], "{:.2f}")], real, rows)
    out.index = [variant_label(m) for m in out.index]  # "stamp, cross-entropy" -> "STAMP, cross-entropy"
    out.index.name = "method"
    ours = both[("mrr_at_20", preset)].to_numpy()  # in the real data's order, lowest first
    real_ratio = both[("ratio_to_vsknn", real)].to_numpy()
    pairs_ij = [(i, j) for i in range(len(out)) for j in range(i + 1, len(out)) if ours[i] > ours[j]]
    swapped = [(out.index[i], out.index[j]) for i, j in pairs_ij]
    real_margin = max((real_ratio[j] - real_ratio[i] for i, j in pairs_ij), default=0.0)
    rho = {m: both[(m, real)].rank().corr(both[(m, preset)].rank()) for m in ("mrr_at_20", "p_at_20")}
    n_preset = _n_items(rows, preset)
    at = "" if n_preset is None else f" at {n_preset:,} items"  # "the preset at 3,288 items"
    if not swapped:
        sentence = f"On MRR@20 the preset{at} orders all {len(out)} methods exactly as the real {noun} does"
    else:
        pairs = "; ".join(f"{_in_words(a)} above {_and([_in_words(b) for x, b in swapped if x == a])}"
                          for a in dict.fromkeys(a for a, _ in swapped))
        sentence = (f"On MRR@20 the preset{at} keeps the real {noun}'s order of the {len(out)} methods but for "
                    f"{count(len(swapped), 'pair')} in the other order (on the preset {pairs}; the real {noun} has "
                    f"{'it' if len(swapped) == 1 else 'each'} the other way round, "
                    f"{'by' if len(swapped) == 1 else 'by at most'} {real_margin:.2f} of "
                    f"V-SKNN's MRR@20); the rank correlation is {rho['mrr_at_20']:.2f}")
    gap = (both[("ratio_to_vsknn", preset)] - both[("ratio_to_vsknn", real)]).abs()
    sentence += (f". Its ratios to V-SKNN's MRR@20 lie within {gap.max():.2f} of the {noun}'s (median "
                 f"{gap.median():.2f}, largest for {_in_words(variant_label(gap.idxmax()))}); on P@20 the rank correlation "
                 f"of the two orders is {rho['p_at_20']:.2f}.")
    return out, sentence


def scale_sentence(table: pd.DataFrame, real: str = "real split") -> str:
    """How the preset's ratios to V-SKNN's MRR@20 move from its smallest scale in ``calibration.csv``
    to its largest, for the methods of the pair's table: each neural model's, and the largest move
    among the other methods; "" where the file has the preset at one scale only."""
    scales = preset_scales(table, real)
    if len(scales) < 2:
        return ""
    preset = CALIBRATION_PAIRS[real][0]
    ends = [_pair_rows(table, real, s) for s in (scales[0], scales[-1])]
    real_mrr = ends[0][ends[0].data == real].set_index("method").mrr_at_20.sort_values()  # the table's order
    small, large = (r[r.data == preset].set_index("method").ratio_to_vsknn for r in ends)
    both = pd.DataFrame({"small": small, "large": large}).reindex(real_mrr.index).dropna()
    neural = [m for m in both.index if ", " in m]
    rest = both.drop(index=[*neural, "vsknn"], errors="ignore")
    moves = ", ".join(f"{_in_words(variant_label(m))} from {both.small[m]:.2f} to {both.large[m]:.2f}" for m in neural)
    step = (rest.large - rest.small).abs()
    parts = [f"for the neural models {moves}"] if moves else []
    if len(step):
        parts.append(f"the other methods' by at most {step.max():.2f} ({variant_label(step.idxmax())})")
    if not parts:
        return ""
    return (f"From {_n_items(ends[0], preset):,} to {_n_items(ends[1], preset):,} items the preset's ratios to "
            f"V-SKNN's MRR@20 move {'; '.join(parts)}.")


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


def _best(rows: pd.DataFrame, chosen: float) -> tuple[pd.Series, str]:
    """The row of ``rows`` (one loss's sweep) with the best validation MRR@20, and the clause
    giving the chosen rate's best score where that rate is not the best one ("" where it is)."""
    top = rows.loc[rows.valid_mrr_at_20.idxmax()]
    at = rows[rows.lr == chosen].valid_mrr_at_20.max()
    return top, "" if top.lr == chosen else f"; {at:.4f} at {chosen:g}"


def rate_sentence(sweep: pd.DataFrame) -> str:
    """The data chapter's sentence on the learning-rate sweep: the rate chosen and each preset's
    own best, with the recommended loss's best where it was run."""
    sweep = _sweep_rows(sweep)
    ce = sweep[sweep.loss == "ce"]
    chosen = chosen_rate(sweep)
    rates = ", ".join(f"{r:g}" for r in sorted(ce.lr.unique()))
    own = []
    for preset, g in ce.groupby("dataset", sort=False):
        top, elsewhere = _best(g, chosen)
        own.append(f"on the {dataset_label(preset)} preset its best validation MRR@20, {top.valid_mrr_at_20:.4f}, "
                   f"came at {top.lr:g} (epoch {top.epoch}{elsewhere})")
    text = (f"Learning rate of the synthetic presets: STAMP with cross-entropy, {ce.epoch.max()} epochs at each of "
            f"{rates}; {'; '.join(own)}. The rate chosen for every preset, the best on average relative to each "
            f"preset's own best, is {chosen:g}.")
    if (sweep.loss == "recommended").any():
        top, elsewhere = _best(sweep[sweep.loss == "recommended"], chosen)
        text += (f" With the recommended loss, run for reference on the Diginetica-like preset, the best came at "
                 f"{top.lr:g} ({top.valid_mrr_at_20:.4f}, epoch {top.epoch}{elsewhere}).")
    return text


#: V-SKNN with one refinement taken away at a time (``calibration_knn.csv``'s ``variant`` column):
#: each key's label on the page, the baseline and its settings (the rest at their defaults).
KNN_VARIANTS = {
    "vsknn": ("V-SKNN", "vsknn", {}),
    "no_idf": ("V-SKNN without IDF weights", "vsknn", {"idf_weighting": 0.0}),
    "no_position": ("V-SKNN, the session's clicks weighed alike", "vsknn", {"weighting": "same"}),
    "no_step": ("V-SKNN, no discount of neighbours by step", "vsknn", {"weighting_score": "same"}),
    "sknn": ("SKNN (none of the three; cosine similarity)", "sknn", {}),
}
_RECENCY = ("no_position", "no_step")  # the refinements that favour the session's last clicks


def _pct(values) -> str:
    lo, hi = min(abs(v) for v in values), max(abs(v) for v in values)
    return f"{100 * lo:.1f}%" if round(100 * lo, 1) == round(100 * hi, 1) else f"{100 * lo:.1f}-{100 * hi:.1f}%"


def knn_refinements(table: pd.DataFrame, real: str = "real split") -> tuple[pd.DataFrame, str]:
    """The data chapter's table of ``calibration_knn.csv`` for one pair: MRR@20 of V-SKNN, of
    V-SKNN without each of its refinements in turn, and of SKNN, each over V-SKNN's, on the real
    data and its preset side by side; and a sentence on which way each removal moves MRR@20."""
    preset = CALIBRATION_PAIRS[real][0]
    noun = _noun(real)
    rows = _pair_rows(table, real)
    mrr = rows.pivot(index="variant", columns="data", values="mrr_at_20").reindex(list(KNN_VARIANTS)).dropna()
    if "vsknn" not in mrr.index or mrr.shape[1] < 2:
        raise ValueError(f"calibration_knn.csv needs V-SKNN on both {real} and {preset}: "
                         "rerun benchmarks/calibrate_synthetic.py --knn")
    ratio = mrr / mrr.loc["vsknn"]
    out = _beside([("MRR@20", mrr, "{:.4f}"), ("÷ V-SKNN", ratio, "{:.3f}")], real, rows)
    out.index = [KNN_VARIANTS[v][0] for v in mrr.index]
    out.index.name = "method"
    removed = [v for v in mrr.index if v not in ("vsknn", "sknn")]
    parts = []
    for data, where in ((real, f"the real {noun}"), (preset, "the preset")):
        change = ratio.loc[removed, data] - 1
        down, up = change[change < 0], change[change > 0]
        what = "it" if parts else "MRR@20"
        if len(down) == len(change):
            parts.append(f"on {where} each removal lowers {what} (by {_pct(down)})")
        elif len(up) == len(change):
            parts.append(f"on {where} each removal raises {what} (by {_pct(up)})")
        else:
            moves = [(n, verb) for n, verb in ((len(down), "lower"), (len(up), "raise"),
                                               (len(change) - len(down) - len(up), "leave")) if n]
            said = [f"{count(n, 'removal') if i == 0 else n} {verb}{'s' if n == 1 else ''} {what if i == 0 else 'it'}"
                    + (" as it was" if verb == "leave" else "") for i, (n, verb) in enumerate(moves)]
            parts.append(f"on {where} {_and(said)}")
    sentence = f"One refinement of V-SKNN taken away at a time: {'; '.join(parts)}."
    recency = [v for v in _RECENCY if v in ratio.index]
    if recency and (ratio.loc[recency, real] < 1).all() and (ratio.loc[recency, preset] > 1).all():
        sentence += (" On the preset, then, a session's older clicks point to its next click about as well as its "
                     "last click does, against what V-SKNN's weights of recent clicks assume")
        if "sknn" in ratio.index:
            sentence += (f"; SKNN, which weighs every click alike, reaches {ratio.loc['sknn', preset]:.2f} of V-SKNN's "
                         f"MRR@20 there, against {ratio.loc['sknn', real]:.2f} on the {noun}")
        sentence += "."
    return out, sentence
