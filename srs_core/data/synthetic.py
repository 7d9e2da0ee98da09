"""Synthetic session data that mimics the dissertation's datasets (its Table 3).

The real datasets cannot be downloaded everywhere, so the default workload is
synthetic. The generator draws click streams from a small, explicit model:

- **popularity**: item ``i`` (in a random rank order) gets the probability
  mass of the relative-rank interval ``[i/N, (i+1)/N)`` under the density
  ``(u + u0)^-zipf``: a power law of exponent ``zipf`` (0.5-0.85) whose head is
  capped by ``u0``. Because it is defined on *relative* ranks, the share of
  items that survive the ``min_item_support`` filter, like every other
  statistic, does not drift with ``scale``;
- **latent topics**: items are spread over topics of about ``topic_size``
  items; a session starts in a topic drawn by popularity mass;
- **transitions**: each item has a few fixed *successors* drawn from its topic
  by popularity. Each next click repeats the current item (``p_repeat``),
  follows a successor (``p_follow``), picks a popular item of the session's
  topic (``p_topic``), or jumps to any item by popularity (and to its topic).
  So the next item is learnable: a first-order transition baseline beats
  popularity several times over, and a sequence model can also use the topic;
- **intent** (off unless ``p_near`` > 0): items also sit on a circular line
  whose consecutive blocks are the topics, and each session carries an intent,
  a point on that line that drifts towards every click (``intent_memory``).
  A share ``p_near`` of the topic draws lands a few items from the intent
  instead, and ``p_recall`` follows a successor of an earlier click rather
  than the last one. Both make the next item depend on several earlier
  clicks, which a sequence model and session k-NN can use and a first-order
  rule cannot;
- **revisits** (off unless ``p_revisit`` > 0): a click returns to an earlier
  click of the session other than the last, ``k`` clicks before it with ``k``
  geometric (``revisit_recency``), as shoppers go back to a product they saw;
- **lengths**: a share ``single_share`` of one-click sessions (dropped by
  step 1), the rest ``2 + NegativeBinomial`` with mean ``length_mean``;
- **time**: sessions start uniformly over ``span_days`` days with a daily
  cycle; clicks are a log-normal 45 s apart (median), at millisecond
  resolution. The last ``test_days`` days form the test split.

The presets (Table 3's sizes and the behaviour knobs fitted to the real data
we have) live in :mod:`srs_core.data.presets`.

The Yoochoose presets generate the 1/4 and 1/64 subsets directly (the train
span of the preset, no ``fraction``); the fraction step itself is exercised by
the tests and by ``benchmarks/bench_preprocess.py``.

Everything is vectorised numpy driven by one seeded generator, so the same
``(preset, scale, seed)`` gives the same bytes. ``meli2020`` at scale 1
(18.5M raw clicks) generates in about 35 s on 2 cores.
"""
from __future__ import annotations

import math
import numbers
import shlex
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from srs_core.progress import tqdm

from .presets import PRESETS, Preset, aim, get_preset  # noqa: F401 (the presets' home; re-exported)
from .preprocess import default_valid_days, preprocess_events, write_processed
from .readers import make_events

MS_PER_DAY = 86_400_000
# relative click intensity per hour of the day (UTC), low at night, peak in the evening
_HOURLY = np.array([3, 2, 1.5, 1, 1, 1.5, 3, 5, 7, 8, 8, 8, 8, 8, 8, 8, 8.5, 9, 10, 10.5, 10, 9, 7, 5], float)


# --------------------------------------------------------------------------
# the generator


class _Catalog:
    """Items, their popularity, topics and successors; samplers by popularity."""

    def __init__(self, rng: np.random.Generator, n_items: int, p: Preset):
        n = n_items
        # popularity mass of relative-rank bins [i/N, (i+1)/N) under the density (u + u0)^-zipf
        u = np.arange(n + 1) / n + p.head  # the density's antiderivative at the bins' edges (log at zipf 1)
        edges = np.log(u) if math.isclose(p.zipf, 1.0) else u ** (1.0 - p.zipf)
        mass = np.diff(edges) / (edges[-1] - edges[0])
        self.weight = mass[rng.permutation(n)]  # item i has rank perm^-1(i)
        self.cum = np.cumsum(self.weight)
        self.cum /= self.cum[-1]
        n_topics = max(1, round(n / p.topic_size))
        if p.p_near > 0:  # items on a circular line; topics are its consecutive blocks
            self.line = rng.permutation(n)
            self.pos = np.empty(n, dtype=np.int64)
            self.pos[self.line] = np.arange(n)
            self.topic = np.minimum(self.pos * n_topics // n, n_topics - 1)
            self.log_weight = np.log(self.weight)
        else:
            self.topic = rng.integers(0, n_topics, size=n)
        self.by_topic = np.argsort(self.topic, kind="stable")
        sorted_topic = self.topic[self.by_topic]
        self.topic_lo = np.searchsorted(sorted_topic, np.arange(n_topics), side="left")
        self.topic_hi = np.searchsorted(sorted_topic, np.arange(n_topics), side="right")
        cw = np.cumsum(self.weight[self.by_topic])
        self.topic_cum = cw
        self.topic_base = np.where(self.topic_lo > 0, cw[np.maximum(self.topic_lo - 1, 0)], 0.0)
        self.topic_top = cw[np.maximum(self.topic_hi - 1, 0)]
        # successors: n_successors popular items of the same topic
        src_topic = np.repeat(self.topic, p.n_successors)
        self.successors = self.in_topic(rng, src_topic).reshape(n, p.n_successors)
        w = p.succ_decay ** np.arange(p.n_successors)
        self.succ_cum = np.cumsum(w / w.sum())

    def near(self, rng: np.random.Generator, centre: np.ndarray, width: float, k: int) -> np.ndarray:
        """One item per centre (a position on the line): ``k`` candidates at
        Gaussian offsets of sd ``width`` items, one kept by popularity."""
        n = len(self.line)
        at = np.rint(centre[:, None] + width * rng.standard_normal((len(centre), k))).astype(np.int64) % n
        cand = self.line[at]
        keep = np.argmax(self.log_weight[cand] + rng.gumbel(size=cand.shape), axis=1)
        return cand[np.arange(len(cand)), keep]

    def global_sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        idx = np.searchsorted(self.cum, rng.random(size), side="right")
        return np.minimum(idx, len(self.cum) - 1)

    def in_topic(self, rng: np.random.Generator, topics: np.ndarray) -> np.ndarray:
        lo, hi = self.topic_base[topics], self.topic_top[topics]
        x = lo + rng.random(len(topics)) * (hi - lo)
        pos = np.searchsorted(self.topic_cum, x, side="right")
        pos = np.clip(pos, self.topic_lo[topics], self.topic_hi[topics] - 1)
        return self.by_topic[pos]


def _lengths(rng: np.random.Generator, n_multi: int, n_single: int, p: Preset) -> np.ndarray:
    extra = p.length_mean - 2
    # numpy's negative_binomial(n, q) has mean n (1 - q) / q
    q = p.length_shape / (p.length_shape + extra)
    multi = 2 + rng.negative_binomial(p.length_shape, q, size=n_multi)
    lengths = np.concatenate([multi, np.ones(n_single, dtype=multi.dtype)])
    return lengths[rng.permutation(len(lengths))].astype(np.int64)


def _walk(rng: np.random.Generator, cat: _Catalog, lengths: np.ndarray, p: Preset) -> np.ndarray:
    """Item of every click, sessions laid out one after the other."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    items = np.empty(offsets[-1], dtype=np.int64)
    topic = cat.topic[cat.global_sample(rng, len(lengths))]  # topic drawn by popularity mass
    cur = cat.in_topic(rng, topic)
    items[offsets[:-1]] = cur
    order = np.argsort(-lengths, kind="stable")  # active sessions are a prefix of this order
    lengths_sorted = lengths[order]
    cur, topic, starts = cur[order], topic[order], offsets[:-1][order]
    n = len(cat.weight)
    intent = cat.pos[cur].astype(float) if p.p_near > 0 else None
    t1 = p.p_repeat
    t2 = t1 + p.p_follow
    t3 = t2 + p.p_topic
    t4 = t3 + p.p_recall
    t5 = t4 + p.p_revisit
    for t in range(1, int(lengths.max(initial=0))):
        n_active = int(np.searchsorted(-lengths_sorted, -t, side="left"))  # sessions with length > t
        cur, topic, starts = cur[:n_active], topic[:n_active], starts[:n_active]
        if intent is not None:
            intent = intent[:n_active]
        r = rng.random(n_active)
        nxt = cur.copy()  # r < t1: repeat
        f = (r >= t1) & (r < t2)
        pick = np.searchsorted(cat.succ_cum, rng.random(int(f.sum())), side="right")
        nxt[f] = cat.successors[cur[f], np.minimum(pick, len(cat.succ_cum) - 1)]
        k = (r >= t2) & (r < t3)
        if intent is not None:  # a share p_near of the topic draws lands near the intent instead
            near = k & (rng.random(n_active) < p.p_near / p.p_topic)
            k &= ~near
            nxt[near] = cat.near(rng, intent[near], p.near_width, p.near_candidates)
        nxt[k] = cat.in_topic(rng, topic[k])
        back = (r >= t3) & (r < t4)
        if back.any():  # an earlier click of the session (uniform over 0..t-1) and one of its successors
            earlier = items[starts[back] + (rng.random(int(back.sum())) * t).astype(np.int64)]
            pick = np.searchsorted(cat.succ_cum, rng.random(len(earlier)), side="right")
            nxt[back] = cat.successors[earlier, np.minimum(pick, len(cat.succ_cum) - 1)]
        again = (r >= t4) & (r < t5) & (t > 1)
        if again.any():  # an earlier click other than the last: k clicks before it, k geometric (recent ones likelier)
            back_by = np.minimum(rng.geometric(p.revisit_recency, int(again.sum())), t - 1)
            nxt[again] = items[starts[again] + (t - 1) - back_by]
        j = (r >= t5) | ((r >= t4) & (t == 1))
        jumped = cat.global_sample(rng, int(j.sum()))
        nxt[j] = jumped
        topic = topic.copy()
        topic[j] = cat.topic[jumped]
        items[starts + t] = nxt
        if intent is not None:  # the intent moves towards the click, along the shorter way round the circle
            step = (cat.pos[nxt] - intent + n / 2) % n - n / 2
            intent = (intent + (1 - p.intent_memory) * step) % n
        cur = nxt
    return items


def _times(rng: np.random.Generator, lengths: np.ndarray, p: Preset) -> np.ndarray:
    """Millisecond time stamps: session starts over ``span_days`` with a daily cycle, log-normal gaps."""
    n = len(lengths)
    day = rng.integers(0, p.span_days, size=n)
    hour = rng.choice(24, size=n, p=_HOURLY / _HOURLY.sum())
    start = np.datetime64(p.start, "ms").astype(np.int64)
    start = start + day * MS_PER_DAY + hour * 3_600_000 + rng.integers(0, 3_600_000, size=n)
    gaps = np.maximum(np.rint(rng.lognormal(np.log(45_000.0), 1.0, size=int(lengths.sum()))), 1).astype(np.int64)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    gaps[offsets[:-1]] = 0  # a session's first click is at its start
    elapsed = np.cumsum(gaps)
    elapsed -= np.repeat(elapsed[offsets[:-1]], lengths)
    return np.repeat(start, lengths) + elapsed


def _valid_days(p: Preset) -> float:
    return default_valid_days(p.test_days) if p.valid_days is None else float(p.valid_days)


def catalogue_size(preset: str | Preset, scale: float) -> int:
    """Items the generator draws from for ``preset`` at ``scale`` (before
    preprocessing, which drops the few that no kept session uses)."""
    p = get_preset(preset)
    return max(20, round(p.n_items * p.catalog * float(scale)))


def generate_events(preset: str | Preset, scale: float = 1.0, seed: int = 0) -> pd.DataFrame:
    """Raw click events (the readers' events table) for ``preset`` at ``scale``.

    ``scale`` multiplies the number of items and of sessions; session ids
    follow session start time, rows are grouped by session in time order.
    """
    p = get_preset(preset)
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not 0 < scale < math.inf:
        raise ValueError(f"scale must be a positive number (got {scale!r}); 1.0 is the dissertation's size.")
    scale = float(scale)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5E55]))
    n_items = catalogue_size(p, scale)
    n_multi = max(50, round(p.n_train_sessions * p.sessions * scale))
    n_single = round(n_multi * p.single_share / (1 - p.single_share))
    cat = _Catalog(rng, n_items, p)
    lengths = _lengths(rng, n_multi, n_single, p)
    items = _walk(rng, cat, lengths, p)
    ms = _times(rng, lengths, p)
    # number sessions by start time, like a click log
    starts = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    by_start = np.argsort(ms[starts], kind="stable")
    new_len = lengths[by_start]
    new_off = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(new_len, out=new_off[1:])
    gather = np.repeat(starts[by_start] - new_off[:-1], new_len) + np.arange(new_off[-1], dtype=np.int64)
    session = np.repeat(np.arange(1, len(lengths) + 1, dtype=np.int64), new_len)
    return make_events(session, items[gather] + p.item_id_base, ms[gather] / 1000.0)


# --------------------------------------------------------------------------
# writing raw files and processed datasets


RAW_FORMATS = ("tsv", "yoochoose", "diginetica")


def write_raw(events: pd.DataFrame, path: str | Path, fmt: str = "tsv", *, chunk: int = 2_000_000) -> Path:
    """Write an events table as a raw file that the matching reader reads back exactly.

    ``fmt``: ``"tsv"`` (``SessionId\\tItemId\\tTime`` with a header, Time in
    seconds), ``"yoochoose"`` (``SessionId,Timestamp,ItemId,Category``, no
    header) or ``"diginetica"`` (``sessionId;userId;itemId;timeframe;eventdate``).
    Times are written at millisecond resolution. Rows are written in the
    table's order, in chunks, to a temporary file renamed at the end.
    """
    if fmt not in RAW_FORMATS:
        raise ValueError(f"unknown raw format {fmt!r}: choose one of {', '.join(RAW_FORMATS)}.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    session = events["session"].to_numpy(dtype=np.int64)
    item = events["item"].to_numpy(dtype=np.int64)
    ms = np.rint(events["time"].to_numpy(dtype=np.float64) * 1000.0).astype(np.int64)
    try:
        with open(tmp, "wb") as fh:
            header = {"tsv": "SessionId\tItemId\tTime\n", "diginetica": "sessionId;userId;itemId;timeframe;eventdate\n"}
            fh.write(header.get(fmt, "").encode())
            for lo in range(0, len(session), chunk):
                s, i, m = session[lo:lo + chunk], item[lo:lo + chunk], ms[lo:lo + chunk]
                if fmt == "tsv":
                    table = pa.table({"s": s, "i": i, "t": m / 1000.0})
                    delim = "\t"
                elif fmt == "yoochoose":
                    text = pa.array(m, pa.timestamp("ms")).cast(pa.string())
                    text = pc.binary_join_element_wise(pc.replace_substring(text, " ", "T"), "Z", "")
                    table = pa.table({"s": s, "t": text, "i": i, "c": pa.array(np.zeros(len(s), np.int8))})
                    delim = ","
                else:
                    day = m // MS_PER_DAY
                    date = pa.array(day.astype(np.int32), pa.date32()).cast(pa.string())
                    table = pa.table({"s": s, "u": pa.array(["NA"] * len(s)), "i": i,
                                      "f": m - day * MS_PER_DAY, "d": date})
                    delim = ";"
                pacsv.write_csv(table, fh, pacsv.WriteOptions(include_header=False, quoting_style="none",
                                                             delimiter=delim))
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def synthesize(
    preset: str | Preset,
    scale: float,
    seed: int,
    output_dir: str | Path,
    quiet: bool = False,
    valid_days: float | None = None,
) -> Path:
    """Generate ``preset`` at ``scale`` and write it as a processed dataset (steps 1-8).

    ``valid_days`` defaults to the preset's own (its test days unless it
    sets ``valid_days``; 0: no validation split)."""
    p = get_preset(preset)
    bar = tqdm(total=2, desc=f"synthesizing {p.name}", disable=quiet, leave=False)
    events = generate_events(p, scale, seed)
    bar.update(1)
    result = preprocess_events(events, test_days=p.test_days, source=f"synthetic {p.name}", quiet=True,
                               valid_days=_valid_days(p) if valid_days is None else valid_days)
    bar.update(1)
    bar.close()
    meta = {"dataset": "synthetic",
            "source": {"generator": "srs_core.data.synthetic", "preset": p.name, "scale": scale, "seed": seed,
                       "raw_events": int(len(events)), "knobs": asdict(p)},
            "command": shlex.join(["srs", "synth", "--preset", p.name, "--scale", f"{scale:g}", "--seed", str(seed),
                                   "--valid-days", f"{result.params.get('valid_days', 0):g}"])}
    return write_processed(result, output_dir, meta)
