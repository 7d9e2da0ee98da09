"""Paired intervals, the verdict rule, and every claim on both sides of its rule."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from srs_core import claims
from srs_core.stats import interval_verdict, paired_ratio, per_session, session_of_sample

# -- the verdict rule and the paired bootstrap ---------------------------------------


@pytest.mark.parametrize("lo, hi, word", [(1.01, 1.2, "beats"), (0.8, 0.99, "trails"), (0.98, 1.02, "matches"),
                                          (0.9, 1.1, "inconclusive"), (0.96, 1.02, "inconclusive"),
                                          (1.0, 1.04, "inconclusive"), (float("nan"), 1.0, "n/a")])
def test_interval_verdict(lo, hi, word):
    assert interval_verdict(lo, hi) == word


def _split(n_sessions=400, per=3):
    return np.arange(0, n_sessions * (per + 1) + 1, per + 1)  # every session has `per` samples


def test_session_of_sample_and_per_session_sums():
    offsets = np.array([0, 3, 5, 9])  # 2, 1 and 3 samples
    assert session_of_sample(offsets).tolist() == [0, 0, 1, 2, 2, 2]
    # a published split's lone row is a session with one sample (first = its prefix length)
    assert session_of_sample(np.array([0, 3, 5, 9]), np.array([2, 1, 3])).tolist() == [0, 1, 2]
    ranks = np.array([1, 2, 30, 4, 1, 21])
    np.testing.assert_allclose(per_session(ranks, session_of_sample(offsets), 3, "mrr"), [1.5, 0.0, 1.25])
    np.testing.assert_allclose(per_session(ranks, session_of_sample(offsets), 3, "p"), [2, 0, 2])
    with pytest.raises(ValueError, match="test split"):
        per_session(ranks[:4], session_of_sample(offsets), 3, "mrr")


def test_identical_runs_match_and_a_better_run_beats():
    rng = np.random.default_rng(0)
    offsets = _split()
    n = offsets[-1] - len(offsets) + 1
    ref = [rng.integers(1, 40, n) for _ in range(2)]
    same = paired_ratio(ref, ref, offsets)
    assert same.ratio == 1.0 and same.lo == 1.0 and same.hi == 1.0 and same.verdict == "matches"
    better = [np.maximum(r // 2, 1) for r in ref]  # every rank halved
    iv = paired_ratio(better, ref, offsets)
    assert iv.lo > 1 and iv.verdict == "beats" and iv.lo < iv.ratio < iv.hi
    worse = paired_ratio(ref, better, offsets)
    assert worse.verdict == "trails"
    # the same mean, but each session either gains or loses a lot: too spread out to tell
    two = np.full(n, 2)
    half = np.where(session_of_sample(offsets) % 2 == 0, 1, 100)
    noisy = paired_ratio([half], [two], offsets)
    assert noisy.ratio == pytest.approx(1.0) and noisy.verdict == "inconclusive" and noisy.lo < 0.97 < 1.03 < noisy.hi
    with pytest.raises(ValueError, match="seeds must match"):
        paired_ratio(ref, ref[:1] * 3, offsets)
    one = paired_ratio(better, ref[:1], offsets)  # a one-run reference (a baseline) pairs with every seed
    assert one.seeds == 2


def test_sessions_not_predictions_are_resampled():
    # one session holds every hit: resampling sessions gives a wide interval, which it would not if each
    # prediction were an independent draw
    offsets = np.array([0, 101] + list(range(103, 103 + 2 * 99, 2)))
    n = offsets[-1] - len(offsets) + 1
    ref = np.full(n, 50)
    var = ref.copy()
    var[:100] = 1  # session 0's 100 predictions
    ref[100:] = 1
    iv = paired_ratio([var], [ref], offsets)
    assert iv.ratio == pytest.approx(100 / 99)
    assert iv.lo < 0.2 and iv.hi > 1.5  # the replicates that miss session 0, or draw it twice


# -- claims: each rule from both sides --------------------------------------------------


def _scaling(ms_by_n):
    return pd.DataFrame([{"n_items": n, "loss": "ce", "optimizer": "dense", "median_ms": t} for n, t in ms_by_n])


def test_claim_I_flips_with_the_slope_and_refuses_two_points():
    linear = claims.cost_grows(_scaling([(1e3, 1.0), (1e4, 10.0), (1e5, 100.0)]))
    flat = claims.cost_grows(_scaling([(1e3, 5.0), (1e4, 5.1), (1e5, 5.0)]))
    two = claims.cost_grows(_scaling([(1e3, 1.0), (1e4, 10.0)]))
    assert linear.verdict == "grows about linearly" and "grows about linearly" in linear.sentence and "1.00" in linear.sentence
    assert flat.verdict == "does not grow" and "does not grow" in flat.sentence
    assert two.verdict == "too small to tell" and "too small to tell" in two.sentence
    assert linear.sentence != flat.sentence


def test_claim_II_speed_flips():
    fast = claims.scalable_faster(pd.DataFrame({"speedup": [1.5, 3.0]}), "the MeLi-like data")
    slow = claims.scalable_faster(pd.DataFrame({"speedup": [0.2, 0.8]}), "the MeLi-like data")
    mixed = claims.scalable_faster(pd.DataFrame({"speedup": [0.5, 2.0]}), "the MeLi-like data")
    assert (fast.verdict, slow.verdict, mixed.verdict) == ("faster", "slower", "mixed")
    assert "faster than" in fast.sentence and "slower than" in slow.sentence and "not uniformly" in mixed.sentence
    assert "1.50-3.00" in fast.sentence
    assert claims.scalable_faster(pd.DataFrame({"speedup": []}), "x").verdict == "not measured"


def _iv(*verdicts, ratio=1.0):
    return pd.DataFrame({"mrr_verdict": list(verdicts), "mrr_ratio": [ratio] * len(verdicts),
                         "mrr_lo": [ratio] * len(verdicts), "mrr_hi": [ratio] * len(verdicts)})


def test_claim_II_accuracy_flips():
    assert claims.keeps_accuracy(_iv("beats", "matches"), "real data").verdict == "holds"
    assert claims.keeps_accuracy(_iv("trails", "trails"), "real data").verdict == "fails"
    part = claims.keeps_accuracy(_iv("beats", "trails"), "real data")
    assert part.verdict == "partly" and "1 beats, 1 trails" in part.sentence
    mostly = claims.keeps_accuracy(_iv("inconclusive", "matches"), "real data")
    assert mostly.verdict == "mostly" and "none of the scalable losses fell short" in mostly.sentence
    assert "too close to tell: of 2 comparisons of MRR@20, 1 matches, 1 inconclusive" in mostly.sentence
    assert claims.keeps_accuracy(_iv("inconclusive", "inconclusive"), "real data").verdict == "inconclusive"
    assert claims.keeps_accuracy(_iv("inconclusive", "trails"), "real data").verdict == "partly"
    assert claims.keeps_accuracy(_iv(), "real data").verdict == "not measured"
    assert "kept" in claims.keeps_accuracy(_iv("matches"), "x").sentence
    assert "fell short" in claims.keeps_accuracy(_iv("trails"), "x").sentence


def test_claim_III_flips():
    assert claims.l2_alone(_iv("matches"), _iv("beats"), "x").verdict == "holds"
    fails = claims.l2_alone(_iv("beats", ratio=1.3), _iv("matches", "trails"), "x")
    assert fails.verdict == "fails" and "L2 alone accounts" in fails.sentence
    part = claims.l2_alone(_iv("beats"), _iv("beats", "trails"), "x")
    assert part.verdict == "holds in part" and "1 of 2" in part.sentence
    assert claims.l2_alone(_iv("inconclusive"), _iv("trails"), "x").verdict == "inconclusive"
    assert claims.l2_alone(_iv(), _iv(), "x").verdict == "not measured"


def test_claim_vsknn_flips():
    assert claims.against_vsknn(_iv("beats", "beats"), "x").verdict == "all beat"
    none = claims.against_vsknn(_iv("trails", "inconclusive"), "x")
    assert none.verdict == "none beat" and "no neural model" in none.sentence
    some = claims.against_vsknn(_iv("beats", "trails"), "x")
    assert some.verdict == "some beat" and "1 of 2" in some.sentence


def test_the_readme_block_is_glued_from_the_figures_notebook(tmp_path):
    """The README's results block is the claims module's sentences, copied
    from an executed figures notebook, never hand-written."""
    from srs_core.publish import readme

    nb = readme.Path(__file__).resolve().parents[1] / "notebooks" / "05-figures.ipynb"
    values = {k: v for name in ("05-figures", "07-beyond", "models-table1", "08-real-diginetica")
              for k, v in readme.glued(nb.with_name(f"{name}.ipynb")).items()}
    block = readme.render(values, "test build")
    for key, _ in readme.ORDER:
        assert values[f"claim-{key}-sentence"] in block
    doc = tmp_path / "README.md"
    doc.write_text(f"intro\n{readme.START}\nold text\n{readme.END}\nrest\n")
    readme.update(doc, block)
    assert doc.read_text() == f"intro\n{block}\nrest\n"
    committed = (nb.parents[1] / "README.md").read_text()
    shown = committed.split(readme.START)[1].split(readme.END)[0]
    assert committed.count(readme.START) == 1 and all(f"**{heading}: " in shown for _, heading in readme.ORDER)
    with pytest.raises(ValueError, match="glue no sentence for claim"):
        readme.render({}, "nothing")


def _points(rows):
    return pd.DataFrame(rows, columns=["loss", "model", "step_ms", "mrr_ratio", "mrr_lo", "mrr_hi", "mrr_verdict"])


def test_pareto_front_keeps_only_undominated_points():
    pts = _points([("a", "m", 10.0, 1.0, 0.9, 1.1, "matches"), ("b", "m", 20.0, 0.9, 0.8, 1.0, "trails"),
                   ("c", "m", 5.0, 0.8, 0.7, 0.9, "trails"), ("d", "m", 30.0, 1.2, 1.1, 1.3, "beats")])
    assert claims.pareto_front(pts).tolist() == [True, False, True, True]  # b costs more than a and reaches less


def test_frontier_claim_flips():
    keep = _points([("cheap", "stamp", 12.0, 1.02, 1.01, 1.03, "beats"), ("cheap", "srgnn", 12.0, 1.0, 0.98, 1.02, "matches"),
                    ("dear", "stamp", 40.0, 1.1, 1.05, 1.15, "beats"), ("dear", "srgnn", 40.0, 1.1, 1.05, 1.15, "beats")])
    c = claims.frontier(keep, reference_ms=10.0, where="x")
    assert c.verdict == "recommend cheap" and "1.20 x" in c.sentence and c.numbers["qualifying"] == ["cheap"]
    # the cheap loss trails for one model: nothing within 1.5 x qualifies
    trail = keep.assign(mrr_verdict=["beats", "trails", "beats", "beats"])
    none = claims.frontier(trail, reference_ms=10.0, where="x")
    assert none.verdict == "none within budget" and "4.00 x" in none.sentence
    # a larger budget admits the dearer loss
    assert claims.frontier(trail, reference_ms=10.0, where="x", budget=5).verdict == "recommend dear"
    assert claims.frontier(keep.iloc[0:0], reference_ms=10.0, where="x").verdict == "not measured"


def test_frontier_figure_has_a_panel_per_model():
    from srs_core import plots

    pts = _points([("ns", "stamp", 10.0, 0.9, 0.85, 0.95, "trails"), ("ce", "stamp", 100.0, 1.0, 1.0, 1.0, "matches"),
                   ("ns", "srgnn", 10.0, 1.0, 0.95, 1.05, "inconclusive")])
    fig = plots.frontier(pts, claims.pareto_front(pts))
    assert len(fig.axes) == 2 and [a.get_title() for a in fig.axes] == ["STAMP", "SR-GNN"]


def test_frontier_figure_without_step_times_says_so():
    """Where no loss was benchmarked (a fresh checkout before bench_losses.py
    ran), the figure still draws, and says what is missing."""
    from srs_core import plots

    pts = _points([("ns", "stamp", float("nan"), 0.9, 0.85, 0.95, "trails"),
                   ("gbce", "stamp", float("nan"), 1.0, 0.95, 1.05, "inconclusive")])
    fig = plots.frontier(pts, claims.pareto_front(pts))
    fig.canvas.draw()  # log scale with no positive value raised here before
    assert "no step time measured" in fig.axes[0].texts[0].get_text()


def _gbce_rows(verdicts, ratios):
    # per model: the authors' setting, plain BCE, and the authors' setting with the offset
    rows = []
    for model in ("stamp", "srgnn"):
        for (t, off), v, r in zip([(0.75, False), (0.0, False), (0.75, True)], verdicts, ratios):
            rows.append(dict(model=model, negatives=256, gbce_t=t, gbce_offset=off, mrr_ratio=r, mrr_lo=r - 0.02,
                             mrr_hi=r + 0.02, mrr_verdict=v))
    return pd.DataFrame(rows)


def test_gbce_claim_flips():
    collapsed = claims.gbce(_gbce_rows(["trails", "trails", "matches"], [0.05, 0.06, 1.0]), "x")
    assert collapsed.verdict == "holds with the offset"
    assert "0.05 x" in collapsed.sentence and "plain BCE (t=0) reached 0.06 x" in collapsed.sentence
    assert claims.gbce(_gbce_rows(["beats", "trails", "beats"], [1.05, 0.06, 1.1]), "x").verdict == "holds"
    short = claims.gbce(_gbce_rows(["trails", "trails", "trails"], [0.05, 0.06, 0.9]), "x")
    assert short.verdict == "falls short" and "0.90 x" in short.sentence
    only = _gbce_rows(["trails", "trails", "trails"], [0.05, 0.06, 0.9])
    assert "not tried" in claims.gbce(only[~only.gbce_offset], "x").sentence
    assert claims.gbce(only[only.gbce_t == 0], "x").verdict == "not measured"


def test_frontier_sentence_counts_one_model_in_words():
    one = _points([("cheap", "stamp", 12.0, 1.02, 1.01, 1.03, "beats")])
    assert "for the one model" in claims.frontier(one, reference_ms=10.0, where="x").sentence


def test_frontier_costs_a_loss_at_its_dearest_chosen_setting_and_names_the_settings():
    pts = _points([("ss", "stamp", 9.0, 1.1, 1.05, 1.15, "beats"), ("ss", "srgnn", 5.0, 1.1, 1.05, 1.15, "beats")])
    pts["variant"] = ["ss, corrected", "ss, mixed"]
    c = claims.frontier(pts, reference_ms=10.0, where="x")
    assert c.numbers["cost"] == pytest.approx(0.9) and "(9.0 ms)" in c.sentence and "for both models" in c.sentence
    assert "srgnn: ss, mixed; stamp: ss, corrected" in c.sentence


def test_frontier_sentence_says_only_or_cheapest():
    keep = _points([("cheap", "stamp", 12.0, 1.02, 1.01, 1.03, "beats"), ("dear", "stamp", 40.0, 1.1, 1.05, 1.15, "beats")])
    assert "the only loss that did so within 1.5 x" in claims.frontier(keep, reference_ms=10.0, where="x").sentence
    assert "the cheapest of the 2 losses" in claims.frontier(keep, reference_ms=10.0, where="x", budget=5).sentence


def test_a_partial_build_keeps_the_other_claims_word_for_word(tmp_path):
    from srs_core.publish import readme

    keys = [k for k, _ in readme.ORDER]
    old_lines = {k: f"- **{h}: old.** old sentence {k}." for k, h in readme.ORDER}
    doc = tmp_path / "README.md"
    doc.write_text(f"intro\n{readme.START}\n*Computed by `srs_core.claims` from the runs of one book build (build A); "
                   "regenerate.*\n\n" + "\n".join(old_lines.values()) + f"\n{readme.END}\n")
    new = {f"claim-{k}-{part}": f"new {part} {k}" for k in keys[-2:] for part in ("verdict", "sentence")}
    with pytest.raises(ValueError, match="glue no sentence"):
        readme.render(new, "build B")
    block = readme.render(new, "build B", readme.kept_lines(doc))
    assert "two book builds: the last 2 claims from build B" in block and "from the runs of build A" in block
    for k in keys[:-2]:
        assert old_lines[k] in block
    assert f"new sentence {keys[-1]}" in block and f"old sentence {keys[-1]}" not in block
    first = {f"claim-{k}-{part}": f"new {part} {k}" for k in keys[:3] for part in ("verdict", "sentence")}
    assert "two book builds: the first 3 claims from build C" in readme.render(first, "build C", readme.kept_lines(doc))
    # a block from two builds cannot say which the kept lines come from: the caller must
    doc.write_text(readme.render(first, "build C", readme.kept_lines(doc)) + "\n")
    assert readme.kept_lines(doc)[1] is None
    nb = tmp_path / "empty.ipynb"
    nb.write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    with pytest.raises(SystemExit):
        readme.main([str(nb), "--built", "build D", "--readme", str(doc), "--keep-missing"])
    readme.main([str(nb), "--built", "build D", "--readme", str(doc), "--keep-missing", "--kept-built", "builds A and C"])
    assert "one book build (builds A and C)" in doc.read_text() and old_lines[keys[-1]] in doc.read_text()
