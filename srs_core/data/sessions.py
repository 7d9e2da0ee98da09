"""One-pass batches: a batch of whole sessions instead of a batch of prefixes.

The dissertation's training samples are every prefix of every training
session, each predicting the item that follows it, and a prefix-at-a-time
batch runs the encoder once per prefix: a session of n items costs about
n^2 / 2 item steps. The encoders that allow it (GRU4Rec, NARM with a causal
mask on its attention, STAMP with a running mean; ``SessionEncoder.one_pass``)
give the vector of every prefix in one pass over the session
(``forward_all``), so a ``sessions`` batch holds sessions and a target per
position: the same samples, each session read once.

A session batch is a :class:`~srs_core.data.dataset.Batch` whose
``targets`` are ``[B, W]``: ``targets[b, t]`` is the item after the prefix
``items[b, :t + 1]`` where that prefix is a training sample, 0 elsewhere.
The samples are exactly those of the prefix batchings, under the same
``max_len`` rule: a prefix longer than ``max_len`` keeps its last ``max_len``
items, which one pass from the session's start does not give, so those few
samples (0.28% of the standard Diginetica split's at ``max_len`` 25) go into
ordinary prefix batches of their own, shuffled in among the session batches.

Batches are formed like ``buckets``: the sessions, in one seeded permutation,
are cut into pools, each pool sorted by length and cut greedily into batches
of at most ``batch_size`` samples (so an epoch takes about as many optimizer
steps as with the prefix batchings), and the batches are shuffled.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from .dataset import POOL_BATCHES, Batch, Split, make_batch


def _samples_per_session(split: Split, max_len: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per session: its first sample's prefix length, the last one a single
    pass covers, and the number of samples that pass covers."""
    lengths = split.lengths.astype(np.int64)
    first = np.ones_like(lengths) if split.first is None else np.asarray(split.first, dtype=np.int64)
    last = lengths - 1 if max_len is None else np.minimum(lengths - 1, max_len)
    return first, last, np.maximum(last - first + 1, 0)


def session_batches(split: Split, batch_size: int, generator: np.random.Generator, max_len: int | None = None,
                    *, per_session=None, positions: np.ndarray | None = None) -> list[tuple[str, np.ndarray]]:
    """An epoch's batches: ``("sessions", session ids)`` or ``("samples",
    indices into split.sample_index())`` for the prefixes longer than ``max_len``.
    ``per_session`` (:func:`_samples_per_session`) and ``positions`` (the
    prefix lengths of ``split.sample_index()``) spare recomputing them."""
    _, _, count = per_session or _samples_per_session(split, max_len)
    order = generator.permutation(split.n_sessions)
    order = order[count[order] > 0]
    batches: list[tuple[str, np.ndarray]] = []
    pool_of = (np.cumsum(count[order]) - 1) // (POOL_BATCHES * batch_size)  # pools of POOL_BATCHES batches' samples
    cuts = np.r_[0, np.flatnonzero(np.diff(pool_of)) + 1, len(order)]
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        chunk = order[lo:hi]
        chunk = chunk[np.argsort(count[chunk], kind="stable")]
        ends = np.cumsum(count[chunk])
        start = 0
        while start < len(chunk):  # greedy: sessions while the batch holds at most batch_size samples
            base = ends[start - 1] if start else 0
            stop = max(start + 1, int(np.searchsorted(ends, base + batch_size, side="right")))
            batches.append(("sessions", chunk[start:stop]))
            start = stop
    if max_len is not None:
        pos = split.sample_index()[1] if positions is None else positions
        tail = np.flatnonzero(pos > max_len)
        tail = tail[generator.permutation(len(tail))]
        batches += [("samples", tail[i:i + batch_size]) for i in range(0, len(tail), batch_size)]
    return [batches[i] for i in generator.permutation(len(batches))]


def make_session_batch(split: Split, sessions: np.ndarray, max_len: int | None = None, per_session=None) -> Batch:
    """Sessions ``sessions`` as one right-padded batch with a target per position
    (``per_session``: :func:`_samples_per_session`, computed once an epoch by the caller)."""
    first, last, _ = per_session or _samples_per_session(split, max_len)
    first, last = first[sessions], last[sessions]
    starts = split.offsets[sessions]
    width = int(last.max())  # the inputs: items 0..last-1 predict items 1..last
    col = np.arange(width, dtype=np.int64)
    items_all = np.asarray(split.items)
    inside = col[None, :] < last[:, None]
    items = np.where(inside, items_all[np.where(inside, starts[:, None] + col[None, :], 0)], 0)
    target = (col[None, :] + 1 >= first[:, None]) & inside  # prefix length t + 1 is a sample
    targets = np.where(target, items_all[np.where(target, starts[:, None] + col[None, :] + 1, 0)], 0)
    return Batch(torch.from_numpy(items.astype(np.int64)), torch.from_numpy(last),
                 torch.from_numpy(targets.astype(np.int64)))


def iter_session_batches(split: Split, batch_size: int, generator: np.random.Generator,
                         max_len: int | None = None) -> Iterator[Batch]:
    sess, pos = split.sample_index()
    per = _samples_per_session(split, max_len)  # once an epoch, not once a batch
    for kind, idx in session_batches(split, batch_size, generator, max_len, per_session=per, positions=pos):
        if kind == "sessions":
            yield make_session_batch(split, idx, max_len, per_session=per)
        else:
            yield make_batch(split, sess[idx], pos[idx], max_len=max_len)


def count_session_batches(split: Split, batch_size: int, max_len: int | None = None) -> int:
    """How many batches an epoch of ``sessions`` batching takes (the same for every seed up to the pools' cuts:
    counted on one draw)."""
    return len(session_batches(split, batch_size, np.random.default_rng(0), max_len))
