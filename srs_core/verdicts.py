"""The experiment pages' claims, computed from their runs.

Experiments I-III each state their findings on their own page, and the
summary page collects them for the conclusions; both call these functions,
which turn the runs of :func:`srs_core.experiments.summarise` into the inputs
of :mod:`srs_core.claims` (paired intervals against cross-entropy, the
setting chosen on validation, speed-ups) and return the claims.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from srs_core import claims
from srs_core.diagnosis import REFERENCE, chosen_on_validation
from srs_core.experiments import compare_runs, paired_intervals
from srs_core.losses import experiment2_losses

#: The dissertation's scalable losses and our sampled softmax, by variant name (their settings in Experiment II).
SAMPLED = tuple(experiment2_losses())
L2_REFERENCE = "ce, L2"


def compared(work: str | Path, runs: pd.DataFrame) -> pd.DataFrame:
    """Every variant against cross-entropy per dataset and model: means over
    seeds, paired intervals, verdicts (an empty table for no runs)."""
    return compare_runs(work, runs if len(runs) else runs.iloc[0:0], reference=REFERENCE)


def chosen(table: pd.DataFrame) -> pd.DataFrame:
    """Each dataset, model and loss's setting chosen on validation."""
    return chosen_on_validation(table[table.loss != REFERENCE], group=("dataset", "model", "loss"))


def cost_growth(runs: pd.DataFrame) -> claims.Claim:
    """I, from an experiment's cross-entropy runs: how the epoch's cost per
    training sample grows with the catalogue (datasets as the sizes)."""
    per = runs.assign(ms=1e6 * runs.epoch_seconds / runs.n_train_samples).groupby("dataset").agg(
        n_items=("n_items", "max"), median_ms=("ms", "mean")).reset_index()
    return claims.cost_grows(per.assign(loss="ce", optimizer="dense"), what="epoch, per 1,000 training samples,")


def speed(runs: pd.DataFrame, where: str) -> claims.Claim:
    """II-speed on the largest catalogue of ``runs``: cross-entropy's epoch
    time over each sampled loss's, per model."""
    if not len(runs):
        return claims.scalable_faster(pd.DataFrame({"speedup": []}), where)
    largest = runs.loc[runs.n_items.idxmax(), "dataset"]
    big = runs[runs.dataset == largest]
    rows = []
    for model, g in big.groupby("model"):
        ce = g[g.variant == REFERENCE].epoch_seconds.mean()
        rows += [{"model": model, "loss": loss, "speedup": ce / g[g.variant == loss].epoch_seconds.mean()}
                 for loss in SAMPLED if (g.variant == loss).any()]
    return claims.scalable_faster(pd.DataFrame(rows, columns=["model", "loss", "speedup"]),
                                  f"{where} ({int(big.n_items.max()):,} items)")


def accuracy(work: str | Path, runs: pd.DataFrame, where: str) -> dict[str, claims.Claim]:
    """II-acc in the dissertation's setting (``"diss"``) and at the settings
    chosen on validation (``"best"``), against cross-entropy without L2."""
    table = compared(work, runs)
    best = chosen(table) if len(table) else table
    return {"diss": claims.keeps_accuracy(table[table.variant.isin(SAMPLED)], f"{where}, in the dissertation's setting"),
            "best": claims.keeps_accuracy(best, f"{where}, at the settings chosen on validation")}


def l2_alone(work: str | Path, runs: pd.DataFrame, where: str) -> claims.Claim:
    """III: cross-entropy with L2 against without, and each sampled loss against cross-entropy with L2."""
    table = compared(work, runs)
    l2_rows = table[table.variant == L2_REFERENCE]
    pool = runs[runs.variant.isin([*SAMPLED, L2_REFERENCE])]
    vs_l2 = paired_intervals(work, pool, reference=L2_REFERENCE) if len(pool) else table.iloc[0:0]
    return claims.l2_alone(l2_rows, vs_l2[vs_l2.variant.isin(SAMPLED)] if len(vs_l2) else vs_l2, where)


def l2_change(work: str | Path, runs: pd.DataFrame, where: str) -> claims.Claim:
    """III on one page: what L2 normalisation does to cross-entropy's MRR@20
    (and P@20), model by model, against cross-entropy without it. "raises"
    when every interval beats, "lowers" when every one trails, "no change"
    when every one matches, else "mixed" (or "inconclusive" when none is
    settled)."""
    table = compared(work, runs)
    rows = table[(table.variant == L2_REFERENCE) & (table.mrr_verdict != "n/a")] if len(table) else table
    if not len(rows):
        return claims.Claim("III-page", "not measured", f"Cross-entropy with and without L2 was not compared on {where}.")
    c = claims._counts(rows.mrr_verdict)
    n = len(rows)
    word = ("raises" if c["beats"] == n else "lowers" if c["trails"] == n else "no change" if c["matches"] == n else
            "inconclusive" if c["inconclusive"] == n else "mixed")
    text = (f"On {where}, L2 normalisation changed cross-entropy's MRR@20 by a ratio of {claims._range(rows.mrr_ratio)} "
            f"over {claims.count(n, 'model x dataset pair')} ({claims._count_text(c)}{claims._on_p(rows)}).")
    return claims.Claim("III-page", word, text, {"n": n, **c})
