"""Why a scalable loss trails cross-entropy (book Chapter 5-6).

The pieces the notebooks share:

* :func:`diagnosis_grid`: the runs that take each sampled loss apart one
  factor at a time around the dissertation's setting (L2 on, uniform
  negatives, k = 100): without L2, with popularity negatives, with
  k = 1000; plus cross-entropy with and without L2, and the extensions
  (score scale, popularity or mixed sampling) given by the caller.
* :func:`variant` names a run by what differs from that setting.
* :func:`compare` sets each variant's means over seeds beside the
  reference's (the verdicts come from paired intervals,
  :func:`srs_core.experiments.paired_intervals`);
* :func:`chosen_on_validation` picks each loss's setting on the validation
  split, the protocol of the book.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from srs_core.losses import LOSSES, is_extension as _is_extension, loss_class, option_fields
from srs_core.losses.registry import owners, settings_of
from srs_core.training import TrainConfig

#: The loss every comparison is made against, full cross-entropy (the dissertation's traditional method).
REFERENCE = "ce"
#: The dissertation's setting for a sampled loss (Sections 4.1-4.2, Experiment II).
DISSERTATION = {"l2": True, "sampling": "uniform", "negatives": 100, "score_scale": 1.0, "shared_negatives": False}
#: k above which ns and triplet draw negatives shared by the batch in the grid:
#: per-sample k = 1000 looks up ten times the rows of k = 100.
PER_SAMPLE_MAX_K = 100


def dissertation_setting(base: list[TrainConfig], losses: list[str], optimizer: str) -> list[TrainConfig]:
    """Each sampled loss in the dissertation's setting (Experiment II)."""
    return [replace(c, loss=loss, optimizer=optimizer, **DISSERTATION) for loss in losses for c in base]


def extension_setting(base: list[TrainConfig], extensions: list[dict], optimizer: str) -> list[TrainConfig]:
    """Each extension (a dict of TrainConfig fields with its ``loss``) on top
    of the dissertation's setting; ``ce`` and ``cce`` keep the dense
    optimizer (their item-table gradient is dense), and an ``optimizer`` key
    overrides ``optimizer``."""
    out = []
    for ext in extensions:
        fields = dict(ext)
        loss = fields.pop("loss")
        opt = fields.pop("optimizer", "dense" if loss_class(loss).dense_gradient else optimizer)
        out += [replace(c, loss=loss, optimizer=opt, **{**DISSERTATION, **fields}) for c in base]
    return out


def diagnosis_grid(base: list[TrainConfig], losses: list[str], *, optimizer: str = "sparse_fast",
                   k_large: int = 1000, extensions: list[dict] | None = None,
                   one_factor: list[str] | None = None,
                   one_factor_models: list[str] | None = None) -> list[TrainConfig]:
    """Every run of the diagnosis for each config in ``base`` (one per model,
    dataset and seed). ``extensions`` are dicts of TrainConfig fields, each
    with its ``loss``, applied on top of the dissertation's setting.
    ``one_factor`` names the losses taken apart one factor at a time (default:
    every loss in ``losses``) for the models in ``one_factor_models`` (default:
    every model of ``base``); the others run in the dissertation's setting only."""
    unknown = sorted(set(one_factor or []) - set(losses))
    if unknown:
        raise ValueError(f"one_factor {unknown}: each must also be in losses {losses}")
    apart = losses if one_factor is None else one_factor
    out = []
    for cfg in base:
        out.append(replace(cfg, loss=REFERENCE, optimizer="dense", l2=False))
        out.append(replace(cfg, loss=REFERENCE, optimizer="dense", l2=True))
        for home in dissertation_setting([cfg], losses, optimizer):
            out.append(home)
            if home.loss not in apart or (one_factor_models is not None and home.model not in one_factor_models):
                continue
            shared = home.loss in owners("shared_negatives") and k_large > PER_SAMPLE_MAX_K
            out += [replace(home, l2=False), replace(home, sampling="popularity"),
                    replace(home, negatives=k_large, shared_negatives=shared)]
        out += extension_setting([cfg], extensions or [], optimizer)
    return list(dict.fromkeys(out))  # an extension equal to a grid run is kept once, in first place


def _settings(config: dict):
    """A run's config (a dict, as records store it) as every loss option's value."""
    options = option_fields()
    return settings_of(**{k: v for k, v in config.items() if k in options or k in ("loss", "l2")})


def variant(config: dict) -> str:
    """A short name for a run: its loss, then what differs from the
    dissertation's setting (``"ns"``, ``"ns, no L2"``, ``"ns, S=10, popularity"``;
    for the losses published since: ``"sampled_softmax, S=10, popularity, logQ mixed"``,
    ``"gbce, no L2, k=256, t=0.9"``, ``"sce, 16x256 buckets"``); each loss
    names its own options (:meth:`srs_core.losses.base.Loss.describe`), and a
    batching other than the dissertation's is named last (``"ce, buckets batching"``)."""
    loss = config.get("loss", "-")
    if loss not in LOSSES:
        return loss
    cls, s = LOSSES[loss], _settings({**config, "loss": loss})
    parts = []
    l2 = bool(config.get("l2", cls.dissertation_l2))
    if l2 != cls.dissertation_l2:
        parts.append("L2" if l2 else "no L2")
    if float(s.score_scale) != 1.0:
        parts.append(f"S={float(s.score_scale):g}")
    parts += cls.describe(s)
    if config.get("batching", "samples") != "samples":
        parts.append(f"{config['batching']} batching")
    return loss if not parts else f"{loss}, {', '.join(parts)}"


def is_recent(config: dict) -> bool:
    """Whether a run uses a loss published since the dissertation (gBCE, CCE,
    SCE, or sampled softmax with a per-source logQ: :meth:`srs_core.losses.base.Loss.is_recent`).
    The dissertation's claims rest on its own losses; these are compared in 07-beyond."""
    loss = config.get("loss")
    return loss in LOSSES and LOSSES[loss].is_recent(_settings(config))


def is_extension(config: dict) -> bool:
    """Whether a run uses an option that is ours, not the dissertation's."""
    return config.get("loss") in LOSSES and _is_extension(_settings(config))


def compare(runs: pd.DataFrame, reference: str = REFERENCE,
            metrics: tuple[str, ...] = ("mrr_at_20", "p_at_20", "valid_mrr_at_20"),
            group: tuple[str, ...] = ("dataset", "model")) -> pd.DataFrame:
    """One row per ``group`` x ``variant``: for each metric its mean and sd
    over seeds (``NaN`` sd for one seed: a spread needs two) and the ratio of its
    mean to the ``reference`` variant's mean in the same group; plus the
    number of seeds."""
    group = list(group)
    rows = []
    for keys, g in runs.groupby(group + ["variant"], sort=False):
        keys = dict(zip(group + ["variant"], keys))
        ref = runs.loc[(runs[group] == pd.Series({k: keys[k] for k in group})).all(axis=1)
                       & (runs.variant == reference)]
        row = {**keys, "seeds": len(g)}
        for m in metrics:
            row[f"{m}_mean"], row[f"{m}_sd"] = g[m].mean(), g[m].std(ddof=1) if len(g) > 1 else float("nan")
            row[f"{m}_ratio"] = g[m].mean() / ref[m].mean() if len(ref) else float("nan")
        rows.append(row)
    columns = group + ["variant", "seeds"] + [f"{m}_{part}" for m in metrics for part in ("mean", "sd", "ratio")]
    return pd.DataFrame(rows, columns=columns)  # the same columns when there is no run at all


def chosen_on_validation(table: pd.DataFrame, group: tuple[str, ...] = ("dataset", "model", "loss")) -> pd.DataFrame:
    """The row of :func:`compare`'s ``table`` (with a ``loss`` column) that
    has the best mean validation MRR@20 in each ``group``: each loss's
    setting chosen on the validation split. Its test columns are then what the
    book reports; rows without a validation metric are never chosen."""
    rows = table[table.valid_mrr_at_20_mean.notna()]
    if not len(rows):
        return rows.iloc[0:0]
    top = rows.sort_values("valid_mrr_at_20_mean", ascending=False, kind="stable")
    return top.groupby(list(group), sort=True).head(1).sort_values(list(group)).reset_index(drop=True)


def ns_loss_floor(score_scale: float) -> float:
    """The least value Eq. 4.1 can reach when every score is a cosine times
    ``score_scale``: positive at +S, every negative at -S, so
    ``2 log(1 + e^-S)`` (0.63 at S = 1: the loss cannot approach 0)."""
    return float(2.0 * np.log1p(np.exp(-score_scale)))


def ns_loss_orthogonal(score_scale: float) -> float:
    """Eq. 4.1 when the positive sits at +``score_scale`` and every negative
    is orthogonal to the session (cosine 0), which is where random vectors in
    d = 100 dimensions lie: ``log(1 + e^-S) + log 2`` (1.01 at S = 1). A loss
    that stays near this value has not pushed its negatives away at all."""
    return float(np.log1p(np.exp(-score_scale)) + np.log(2.0))
