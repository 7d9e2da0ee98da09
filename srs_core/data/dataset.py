"""Processed datasets on disk and the padded batches the models consume.

A processed dataset directory (written by :mod:`srs_core.data.preprocess`) holds,
for each split ``train``, ``test`` and, when it was made with a validation
period, ``valid``:

``{split}_items.npy``    int32, the item ids (1..N) of every session, concatenated
``{split}_offsets.npy``  int64, ``n_sessions + 1`` offsets into the items array
``{split}_times.npy``    float64, each session's time (its last event, Unix seconds)
``{split}_first.npy``    int32, optional: each session's first sample (see below)

plus ``stats.json`` (the dissertation's Table 3 statistics), ``meta.json``
(source file, its size and sha256, parameters, the command that made it, a
sha256 of the arrays, library version) and
``item_ids.txt`` (the raw id of item 1..N, one per line).

Sessions are stored once; the augmented samples (dissertation Section 4.5.4,
step 8) are derived: sample ``(s, p)`` uses the first ``p`` items of session
``s`` as input and item ``p`` as the target, for ``p = 1 .. len(s) - 1``.
A split imported from a published train/test split
(:mod:`srs_core.data.published`) may hold rows that are not every prefix of
one session; there ``{split}_first.npy`` gives, per session, the shortest
prefix that is a sample, so ``p = first(s) .. len(s) - 1``. Without the file
every prefix is a sample (``first = 1``).
Arrays are memory-mapped, so loading a MeLi-sized dataset is instant.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from .integrity import read_dataset


@dataclass(frozen=True)
class Split:
    """One split: sessions as a flat item array plus offsets."""

    items: np.ndarray
    offsets: np.ndarray
    times: np.ndarray
    first: np.ndarray | None = None  # shortest prefix that is a sample, per session (None: 1 for all)

    @property
    def n_sessions(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def _first(self) -> np.ndarray | int:
        return 1 if self.first is None else np.asarray(self.first, dtype=np.int64)

    @property
    def n_samples(self) -> int:
        return int((self.lengths - self._first()).sum())

    def sample_index(self) -> tuple[np.ndarray, np.ndarray]:
        """All augmented samples as ``(session, prefix_length)`` int64 arrays."""
        lengths = self.lengths.astype(np.int64)
        first = self._first()
        n_per = lengths - first
        sess = np.repeat(np.arange(self.n_sessions, dtype=np.int64), n_per)
        # prefix length runs first..len-1 inside each session (first = 1 unless the split says otherwise)
        starts = np.repeat(np.cumsum(n_per) - n_per, n_per)
        pos = np.arange(len(sess), dtype=np.int64) - starts + (1 if self.first is None else first[sess])
        return sess, pos


@dataclass
class Batch:
    """A right-padded batch: ``items[b, :lengths[b]]`` is the prefix, 0 pads."""

    items: torch.Tensor  # LongTensor [B, L]
    lengths: torch.Tensor  # LongTensor [B]
    targets: torch.Tensor  # LongTensor [B], ids 1..N

    def to(self, device: torch.device | str) -> "Batch":
        return Batch(
            self.items.to(device, non_blocking=True),
            self.lengths.to(device, non_blocking=True),
            self.targets.to(device, non_blocking=True),
        )


def make_batch(
    split: Split,
    sess: np.ndarray,
    pos: np.ndarray,
    max_len: int | None = None,
    pad_to: int | None = None,
) -> Batch:
    """Gather samples ``(sess[i], pos[i])`` into a right-padded :class:`Batch`.

    ``max_len`` keeps only the last ``max_len`` items of each prefix;
    ``pad_to`` fixes the padded width (for CUDA graphs), else the batch's
    longest prefix sets it.
    """
    sess = np.asarray(sess, dtype=np.int64)
    pos = np.asarray(pos, dtype=np.int64)
    starts = split.offsets[sess]
    lengths = pos.copy()
    if max_len is not None:
        lengths = np.minimum(lengths, max_len)
    first = starts + pos - lengths  # first kept item of each prefix
    width = int(pad_to if pad_to is not None else max(int(lengths.max()), 1))
    if lengths.max() > width:
        raise ValueError(f"pad_to={width} is shorter than the longest prefix ({lengths.max()})")
    col = np.arange(width, dtype=np.int64)
    mask = col[None, :] < lengths[:, None]
    idx = np.where(mask, first[:, None] + col[None, :], 0)
    items = np.where(mask, np.asarray(split.items)[idx], 0)
    targets = np.asarray(split.items)[starts + pos]
    return Batch(
        torch.from_numpy(items.astype(np.int64)),
        torch.from_numpy(lengths),
        torch.from_numpy(targets.astype(np.int64)),
    )


#: How an epoch's shuffled samples are grouped into batches. ``samples``
#: takes consecutive runs of one permutation (the dissertation's setting, the
#: default). With ``buckets`` (ours) the permutation is cut into pools of
#: ``POOL_BATCHES`` batches, each pool is sorted by prefix length (as
#: padded, at most ``max_len``) and cut into batches, and the batches are
#: shuffled; a batch then pads to about its own length instead of the longest
#: of 128 random prefixes (21 of at most 25 on Diginetica, whose prefixes
#: average 4), which the recurrent and graph encoders pay for.
BATCHINGS = ("samples", "buckets", "sessions")  # sessions: whole sessions, one pass each (srs_core.data.sessions)
#: Batches per pool of the ``buckets`` batching (each pool sorted by prefix length).
POOL_BATCHES = 64


def batch_order(lengths: np.ndarray, batch_size: int, generator: np.random.Generator, batching: str = "samples",
                max_len: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """An epoch's sample order and its batch boundaries: batch ``i`` is
    ``order[bounds[i]:bounds[i + 1]]``. ``lengths`` are the samples' prefix
    lengths. ``samples`` draws one permutation (the same draw as before
    batchings existed, so old runs keep their batches); ``buckets`` draws it,
    then a permutation of the batches (see :data:`BATCHINGS`)."""
    if batching not in BATCHINGS or batching == "sessions":
        raise ValueError(f"batch_order orders samples: batching must be samples or buckets, got {batching!r} "
                         "(sessions batches come from srs_core.data.sessions)")
    n = len(lengths)
    order = generator.permutation(n)
    if batching == "samples":
        return order, np.r_[np.arange(0, n, batch_size), n]
    width = np.asarray(lengths) if max_len is None else np.minimum(lengths, max_len)
    pool = POOL_BATCHES * batch_size
    batches = []
    for lo in range(0, n, pool):
        chunk = order[lo:lo + pool]
        chunk = chunk[np.argsort(width[chunk], kind="stable")]
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    batches = [batches[i] for i in generator.permutation(len(batches))]
    bounds = np.r_[0, np.cumsum([len(b) for b in batches])]
    return (np.concatenate(batches) if batches else order), bounds


def iter_batches(
    split: Split,
    batch_size: int,
    *,
    shuffle: bool = False,
    generator: np.random.Generator | None = None,
    drop_last: bool = False,
    max_len: int | None = None,
    pad_to: int | None = None,
    batching: str = "samples",
) -> Iterator[Batch]:
    """Yield batches over every augmented sample of ``split``.

    With ``shuffle`` the order comes from ``generator`` (a seeded numpy
    generator), so the same seed gives the same batches; ``batching`` says
    how the shuffled samples form batches (:func:`batch_order`).
    """
    if batching == "sessions":
        from .sessions import iter_session_batches

        if not shuffle or generator is None or drop_last or pad_to is not None:
            raise ValueError("sessions batches are made for training only: shuffle=True with a seeded generator, "
                             "no drop_last, no pad_to")
        yield from iter_session_batches(split, batch_size, generator, max_len)
        return
    sess, pos = split.sample_index()
    if shuffle:
        if generator is None:
            raise ValueError("shuffle=True needs a seeded numpy generator")
        order, bounds = batch_order(pos, batch_size, generator, batching, max_len)
    else:
        order, bounds = np.arange(len(sess)), np.r_[np.arange(0, len(sess), batch_size), len(sess)]
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        if drop_last and hi - lo < batch_size:
            continue
        sel = order[lo:hi]
        yield make_batch(split, sess[sel], pos[sel], max_len=max_len, pad_to=pad_to)


def n_batches(split: Split, batch_size: int, drop_last: bool = False) -> int:
    n = split.n_samples
    return n // batch_size if drop_last else -(-n // batch_size)


@dataclass
class ProcessedDataset:
    """A processed dataset directory, loaded lazily (memory-mapped)."""

    path: Path
    n_items: int
    train: Split
    test: Split
    stats: dict
    meta: dict
    valid: Split | None = None  # the validation split, where there is one

    @classmethod
    def load(cls, path: str | Path) -> "ProcessedDataset":
        """Open a processed dataset directory after checking it (see
        :func:`srs_core.data.integrity.read_dataset`); a damaged one raises
        :class:`~srs_core.data.integrity.DatasetError` naming the file and the fix."""
        path = Path(path)
        stats, meta, arrays = read_dataset(path)
        splits = {name: Split(*a) for name, a in arrays.items()}
        return cls(path, int(stats["n_items"]), splits["train"], splits["test"], stats, meta, splits.get("valid"))

    @property
    def content_sha256(self) -> str:
        """sha256 of the arrays' bytes, checked against meta.json when loaded."""
        return self.meta["content_sha256"]

    def item_counts(self) -> np.ndarray:
        """Training frequency of every id 0..N (index 0, padding, stays 0)."""
        return np.bincount(np.asarray(self.train.items), minlength=self.n_items + 1)
