"""The study's claims, each computed from the numbers of one build of the book.

Every claim takes the measured numbers and returns a :class:`Claim`: a
verdict word, one sentence stating it, and the numbers it rests on. The
conclusions, the summary of Chapter 5, the notebooks' closing cells and the
README glue those sentences, so no hand-written sentence states a result.
Each rule is stated in the function's text and in the book, and
``tests/test_claims.py`` feeds every rule numbers on both sides of it.

==========  ================================================================
key         claim
==========  ================================================================
I           cross-entropy's cost per step grows with the catalogue
II-speed    the scalable losses train faster than cross-entropy on the
            largest catalogue of the build
II-acc      at their settings chosen on validation, they keep
            cross-entropy's accuracy on the test day
III         L2 normalisation alone does not explain Experiment II
vsknn       where the neural models stand against V-SKNN (ours)
frontier    which loss keeps cross-entropy's accuracy at the least cost
            per step on a MeLi2020-sized catalogue (ours)
gbce        whether gBCE keeps cross-entropy's accuracy at its authors'
            setting, and with our constant logit offset (ours)
==========  ================================================================

Accuracy verdicts come from paired bootstrap intervals
(:mod:`srs_core.stats`); speed verdicts from ratios of measured times.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from srs_core.losses import LOSSES, GeneralisedBCE
from srs_core.stats import loglog_slope

# Claim I reads a slope only from at least MIN_SIZES catalogue sizes spanning MIN_SPAN x.
MIN_SIZES = 3
MIN_SPAN = 100.0
# Log-log slopes of step time over catalogue size: from GROWS "grows", from
# LINEAR "grows about linearly", below FLAT "does not grow".
FLAT = 0.1
GROWS = 0.3
LINEAR = 0.7
# Speed-ups: every one at least FASTER is "faster", every one at most SLOWER is "slower".
FASTER = 1.1
SLOWER = 0.9


@dataclass(frozen=True)
class Claim:
    """A claim's verdict, the sentence that states it, and the numbers behind it."""

    key: str
    verdict: str
    sentence: str
    numbers: dict = field(default_factory=dict)


#: The sign between a mean and its spread in the tables, with no-break spaces
#: around it, so that "0.1234 ± 0.0012" stays on one line in a narrow column.
PLUS_MINUS = "\u00a0±\u00a0"


def _fmt(x: float, spec: str = ".2f") -> str:
    return "–" if x is None or not math.isfinite(x) else format(x, spec)


def _range(values) -> str:
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return "–"
    lo, hi = min(values), max(values)
    return _fmt(lo) if round(lo, 2) == round(hi, 2) else f"{_fmt(lo)}-{_fmt(hi)}"


def _loss_name(loss: str) -> str:
    """A loss as the book names it (its class's label), or the name itself if no loss has it."""
    return LOSSES[loss].label if loss in LOSSES else loss


def _ratios(values) -> str:
    """``"ratio 1.13"`` for one value (or several equal to two decimals), else ``"ratios 0.60-0.92"``."""
    text = _range(values)
    return f"ratio {text}" if "-" not in text.lstrip("-") else f"ratios {text}"


# -- I ---------------------------------------------------------------------------


def cost_grows(scaling: pd.DataFrame, loss: str = "ce", optimizer: str = "dense", what: str = "step") -> Claim:
    """I. From the scaling benchmark (``n_items``, ``loss``, ``optimizer``,
    ``median_ms``): the log-log slope of ``loss``'s step time over the
    catalogue size, read only from at least ``MIN_SIZES`` sizes spanning
    ``MIN_SPAN`` x (else "too small to tell"). ``what`` names the timed unit
    (a training step, or an epoch's cost per 1,000 samples)."""
    rows = scaling[(scaling.loss == loss) & (scaling.optimizer == optimizer)].sort_values("n_items")
    n, t = rows.n_items.to_numpy(float), rows.median_ms.to_numpy(float)
    name = _loss_name(loss)
    lead = "" if loss == "ce" and optimizer == "dense" else f"With {optimizer}, "
    numbers = {"sizes": len(n), "n_min": float(n.min()) if len(n) else math.nan,
               "n_max": float(n.max()) if len(n) else math.nan}
    if len(n) < MIN_SIZES or n.max() / n.min() < MIN_SPAN:
        return Claim("I", "too small to tell",
                     f"This build timed {name}'s {what}" + (f" with {optimizer}" if lead else "") + f" at {count(len(n), 'catalogue size')}"
                     + (f" ({int(n.min()):,} to {int(n.max()):,} items)" if len(n) else "")
                     + f"; a growth rate needs at least {MIN_SIZES} sizes spanning {MIN_SPAN:g}x, so it is too small "
                       "to tell how the cost grows.", numbers)
    slope = loglog_slope(n, t)
    numbers.update(slope=slope, ms_min=float(t[0]), ms_max=float(t[-1]))
    word = ("grows about linearly" if slope >= LINEAR else "grows" if slope >= GROWS else
            "grows slowly" if slope >= FLAT else "does not grow")
    subject = f"{lead}{name}" if lead else name[0].upper() + name[1:]
    return Claim("I", word,
                 f"{subject}'s training {what} {word} with the catalogue: from {t[0]:.1f} ms at {int(n[0]):,} items "
                 f"to {t[-1]:.1f} ms at {int(n[-1]):,}, a log-log slope of {slope:.2f} over {len(n)} sizes "
                 "(1 would be linear).", numbers)


# -- II-speed ----------------------------------------------------------------------


def scalable_faster(speedups: pd.DataFrame, where: str) -> Claim:
    """II-speed. ``speedups`` has one row per model x loss with ``speedup``
    (cross-entropy's time over the loss's, on the largest catalogue
    ``where``): "faster" when every speed-up is at least ``FASTER``,
    "slower" when every one is at most ``SLOWER``, else "mixed"."""
    s = speedups.speedup.to_numpy(float)
    s = s[np.isfinite(s)]
    numbers = {"n": len(s), "min": float(s.min()) if len(s) else math.nan, "max": float(s.max()) if len(s) else math.nan}
    if not len(s):
        return Claim("II-speed", "not measured", f"No scalable loss was timed against cross-entropy on {where}.", numbers)
    word = "faster" if (s >= FASTER).all() else "slower" if (s <= SLOWER).all() else "mixed"
    head = {"faster": "the scalable losses trained faster than cross-entropy",
            "slower": "the scalable losses trained slower than cross-entropy",
            "mixed": "the scalable losses were not uniformly faster than cross-entropy"}[word]
    return Claim("II-speed", word,
                 f"On {where}, {head}: speed-ups of {_range(s)} over {len(s)} model x loss pairs "
                 f"(faster means at least {FASTER:g}x).", numbers)


# -- accuracy from intervals -----------------------------------------------------------


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``"1 model"``, ``"3 models"``: a number and its noun, in the plural where it needs one."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def _counts(verdicts) -> dict:
    verdicts = list(verdicts)
    return {w: verdicts.count(w) for w in ("beats", "matches", "trails", "inconclusive")}


def _count_text(c: dict) -> str:
    return ", ".join(f"{c[w]} {w}" for w in ("beats", "matches", "trails", "inconclusive") if c[w]) or "none"


def keeps_accuracy(intervals: pd.DataFrame, where: str) -> Claim:
    """II-acc. ``intervals`` has one row per model x loss (its setting chosen
    on validation against cross-entropy chosen the same way) with
    ``mrr_ratio``, ``mrr_lo``, ``mrr_hi`` and ``mrr_verdict`` (and, where
    present, ``p_ratio`` and ``p_verdict``: the sentence then also counts the
    P@20 verdicts; the word is MRR@20's): "holds" when every comparison beats
    or matches, "fails" when every one trails, "partly"
    when some trail, "mostly" when none trails, some beat or match and the
    rest are inconclusive, and "inconclusive" when every one is."""
    rows = intervals[intervals.mrr_verdict != "n/a"]
    if not len(rows):
        return Claim("II-acc", "not measured", f"No scalable loss was compared with cross-entropy on {where}.", {"n": 0})
    c = _counts(rows.mrr_verdict)
    n = len(rows)
    kept = c["beats"] + c["matches"]
    word = ("holds" if kept == n else "fails" if c["trails"] == n else
            "partly" if c["trails"] else "mostly" if kept else "inconclusive")
    lead = {"holds": "the scalable losses kept cross-entropy's accuracy",
            "fails": "the scalable losses fell short of cross-entropy's accuracy",
            "partly": "the scalable losses kept cross-entropy's accuracy only in part",
            "mostly": ("none of the scalable losses fell short of cross-entropy's accuracy, though some "
                       "comparisons were too close to tell"),
            "inconclusive": "the test set was too small to tell whether the scalable losses keep cross-entropy's accuracy"}[word]
    return Claim("II-acc", word,
                 f"On {where}, {lead}: of {count(n, 'comparison')} of MRR@20, {_count_text(c)} "
                 f"({_ratios(rows.mrr_ratio)}){_on_p(rows)}.", {"n": n, **c, "min": float(rows.mrr_ratio.min()),
                                                                    "max": float(rows.mrr_ratio.max())})


def _on_p(rows: pd.DataFrame) -> str:
    """The same comparisons read on P@20, where the table has them (the verdict word is MRR@20's)."""
    if "p_verdict" not in rows or not (rows.p_verdict != "n/a").any():
        return ""
    p = rows[rows.p_verdict != "n/a"]
    return f"; on P@20, {_count_text(_counts(p.p_verdict))} ({_ratios(p.p_ratio)})"


def l2_alone(l2_vs_ce: pd.DataFrame, losses_vs_l2: pd.DataFrame, where: str) -> Claim:
    """III. ``l2_vs_ce``: cross-entropy with L2 against without, per model;
    ``losses_vs_l2``: each scalable loss against cross-entropy with L2. The
    claim "L2 alone does not explain Experiment II" *holds* where L2 does not
    raise cross-entropy (no model's interval beats 1), *fails* where L2 raises
    it and no scalable loss beats cross-entropy with L2, *holds in part* where
    L2 raises it and some loss still beats it, and is *inconclusive* else."""
    a = l2_vs_ce[l2_vs_ce.mrr_verdict != "n/a"]
    b = losses_vs_l2[losses_vs_l2.mrr_verdict != "n/a"]
    if not len(a):
        return Claim("III", "not measured", f"Cross-entropy with and without L2 was not compared on {where}.", {})
    ca, cb = _counts(a.mrr_verdict), _counts(b.mrr_verdict)
    numbers = {"l2_min": float(a.mrr_ratio.min()), "l2_max": float(a.mrr_ratio.max()), **{f"l2_{k}": v for k, v in ca.items()},
               **{f"loss_{k}": v for k, v in cb.items()}}
    l2_text = (f"L2 alone changed cross-entropy's MRR@20 by a ratio of {_range(a.mrr_ratio)} ({_count_text(ca)}"
               f"{_on_p(a)})")
    if ca["beats"] == 0 and ca["inconclusive"] == 0:
        return Claim("III", "holds", f"On {where}, {l2_text}: L2 alone does not raise cross-entropy, so it does not "
                     "explain what the scalable losses reach.", numbers)
    if ca["beats"] and len(b) and cb["beats"] == 0 and cb["inconclusive"] == 0:
        return Claim("III", "fails", f"On {where}, {l2_text}, and no scalable loss beat cross-entropy with L2 "
                     f"({_count_text(cb)}): here L2 alone accounts for what they reach.", numbers)
    if ca["beats"] and cb["beats"]:
        return Claim("III", "holds in part", f"On {where}, {l2_text}, and {cb['beats']} of {len(b)} scalable-loss "
                     "comparisons still beat cross-entropy with L2: L2 explains part of Experiment II, not all.", numbers)
    return Claim("III", "inconclusive", f"On {where}, {l2_text}; the intervals are too wide to say whether L2 alone "
                 "explains Experiment II.", numbers)


def against_vsknn(intervals: pd.DataFrame, where: str) -> Claim:
    """Ours. ``intervals``: per model, its best setting chosen on validation
    against V-SKNN tuned on validation. The verdict counts the models that
    beat V-SKNN: "all beat", "none beat" (with how many trail) or "some beat"."""
    rows = intervals[intervals.mrr_verdict != "n/a"]
    if not len(rows):
        return Claim("vsknn", "not measured", f"The neural models were not compared with V-SKNN on {where}.", {"n": 0})
    c = _counts(rows.mrr_verdict)
    n = len(rows)
    word = "all beat" if c["beats"] == n else "none beat" if c["beats"] == 0 else "some beat"
    lead = {"all beat": "every neural model beat V-SKNN", "none beat": "no neural model beat V-SKNN",
            "some beat": f"{c['beats']} of {n} neural models beat V-SKNN"}[word]
    return Claim("vsknn", word, f"On {where}, {lead} on MRR@20 ({_count_text(c)}; {_ratios(rows.mrr_ratio)}).",
                 {"n": n, **c})


# -- frontier (ours): accuracy against cost ------------------------------------------

#: The cost budget of the frontier claim, as a multiple of the step time of negative
#: sampling with sparse_fast (the dissertation's recipe) at the same catalogue size.
COST_BUDGET = 1.5
KEEPS = ("beats", "matches")


def pareto_front(points: pd.DataFrame, cost: str = "step_ms", value: str = "mrr_ratio") -> pd.Series:
    """Whether each row is on the accuracy-cost frontier: no other row costs
    at most as much and reaches at least as much, better in one of the two."""
    c, v = points[cost].to_numpy(float), points[value].to_numpy(float)
    on = [not any((c[j] <= c[i] and v[j] >= v[i]) and (c[j] < c[i] or v[j] > v[i]) for j in range(len(c)) if j != i)
          and math.isfinite(c[i]) and math.isfinite(v[i]) for i in range(len(c))]
    return pd.Series(on, index=points.index, name="on_frontier")


def frontier(points: pd.DataFrame, reference_ms: float, where: str, budget: float = COST_BUDGET) -> Claim:
    """Ours. ``points``: one row per loss (at its setting chosen on
    validation) and model, with ``loss``, ``model``, ``step_ms`` (the loss's
    training step at a MeLi2020-sized catalogue), and its test-day MRR@20
    against cross-entropy: ``mrr_ratio``, ``mrr_lo``, ``mrr_hi``,
    ``mrr_verdict``. ``reference_ms``: negative sampling with sparse_fast at
    the same size. A loss *qualifies* when it beats or matches
    cross-entropy for every model and its step costs at most ``budget`` x
    ``reference_ms``, the step of its dearest chosen setting; the verdict
    names the cheapest qualifying loss ("recommend LOSS"), with the setting
    each model chose where ``points`` has a ``variant`` column, else "none
    within budget"."""
    rows = points[points.mrr_verdict != "n/a"].dropna(subset=["step_ms"])
    if not len(rows) or not math.isfinite(reference_ms):
        return Claim("frontier", "not measured", f"No loss was both timed and compared with cross-entropy on {where}.",
                     {"n": 0})
    # a loss's cost is its dearest chosen setting: the models may choose different ones
    per_loss = rows.groupby("loss").agg(step_ms=("step_ms", "max"), keeps=("mrr_verdict", lambda v: all(w in KEEPS for w in v)),
                                        low=("mrr_lo", "min"), high=("mrr_hi", "max"), models=("model", "nunique"))
    per_loss["cost"] = per_loss.step_ms / reference_ms
    good = per_loss[per_loss.keeps & (per_loss.cost <= budget)].sort_values("cost")
    numbers = {"n": len(per_loss), "qualifying": list(good.index), "budget": budget}
    if not len(good):
        kept = per_loss[per_loss.keeps]
        why = (f"the {len(kept)} that kept it cost {_range(kept.cost)} x" if len(kept) else "none kept it")
        return Claim("frontier", "none within budget",
                     f"On {where}, no loss kept cross-entropy's MRR@20 for every model at no more than {budget:g} x the "
                     f"step time of negative sampling with sparse_fast ({len(per_loss)} losses; {why}).", numbers)
    best = good.iloc[0]
    name = _loss_name(good.index[0])
    n_models = int(best.models)
    models = "the one model" if n_models == 1 else "both models" if n_models == 2 else f"all {n_models} models"
    settings = ""
    if "variant" in rows:  # the setting each model chose on validation
        chosen = rows[rows.loss == good.index[0]].sort_values("model")
        settings = " (chosen on validation: " + "; ".join(f"{m}: {v}" for m, v in zip(chosen.model, chosen.variant)) + ")"
    return Claim("frontier", f"recommend {name}",
                 f"On {where}, {name}{settings} kept cross-entropy's MRR@20 for {models} "
                 f"(intervals {_fmt(best.low)}-{_fmt(best.high)}) at {_fmt(best.cost)} x the step time of negative "
                 f"sampling with sparse_fast ({_fmt(best.step_ms, '.1f')} ms); it is "
                 + (f"the only loss that did so within {budget:g} x." if len(good) == 1 else
                    f"the cheapest of the {len(good)} losses that did so within {budget:g} x."),
                 {**numbers, "cost": float(best.cost)})


# -- gBCE (ours): the authors' setting against the constant offset -------------------



def gbce(rows: pd.DataFrame, where: str) -> Claim:
    """Ours. ``rows``: the gBCE runs against cross-entropy, one row per model
    and setting, with ``negatives``, ``gbce_t``, ``gbce_offset`` and
    ``mrr_ratio``, ``mrr_lo``, ``mrr_hi``, ``mrr_verdict``. At the authors'
    setting (``GeneralisedBCE.authors_setting``) without the offset, and with it: "holds"
    when the authors' setting beats or matches cross-entropy for every model;
    "holds with the offset" when it does not but the offset does; else "falls
    short". Plain BCE (t = 0, no offset), where measured, is named too."""
    r = rows[rows.mrr_verdict != "n/a"]
    k, t = GeneralisedBCE.authors_setting["negatives"], GeneralisedBCE.authors_setting["gbce_t"]
    offset = r.gbce_offset.astype(bool)
    at = (r.negatives == k) & (r.gbce_t == t)
    plain, shifted = r[at & ~offset], r[at & offset]
    if not len(plain):
        return Claim("gbce", "not measured", f"gBCE was not trained at its authors' setting (k={k}, t={t:g}) on {where}.",
                     {"n": 0})

    def part(x: pd.DataFrame) -> str:
        return f"{_range(x.mrr_ratio)} x cross-entropy's MRR@20 ({count(len(x), 'model')}: {_count_text(_counts(x.mrr_verdict))})"

    def keeps(x: pd.DataFrame) -> bool:
        return len(x) > 0 and all(w in KEEPS for w in x.mrr_verdict)

    word = "holds" if keeps(plain) else "holds with the offset" if keeps(shifted) else "falls short"
    text = f"On {where}, gBCE at its authors' setting (k={k}, t={t:g}) reached {part(plain)}"
    bce = r[(r.gbce_t == 0) & ~offset]
    if len(bce):
        text += f"; plain BCE (t=0) reached {part(bce)}"
    text += (f"; with the constant logit offset log(beta/k) it reached {part(shifted)}." if len(shifted)
             else "; the offset was not tried.")
    numbers = {"n": len(plain), "authors_min": float(plain.mrr_ratio.min()), "authors_max": float(plain.mrr_ratio.max()),
               "offset_min": float(shifted.mrr_ratio.min()) if len(shifted) else float("nan")}
    return Claim("gbce", word, text, numbers)
