"""A split on the training device, and its padded batches made there.

:func:`srs_core.data.dataset.iter_batches` gathers and pads every batch in
numpy and copies it to the device: a host round trip per step, which on a GPU
costs more than a CUDA-graph step itself. :class:`DeviceSplit` puts the
processed split on the device once (the flat item array plus, for every
augmented sample, the position of its target and its prefix length) and makes
each batch there with a few gathers, at the fixed width ``max_len`` (what a
CUDA graph needs; padding never changes a session's embedding).

The shuffle stays the numpy generator's ``permutation``, drawn once per epoch
and copied over in one transfer, so a run's batches, and its checkpointed RNG
state, are the same whichever batcher made them:
``DeviceSplit(split, ...).batches(order, B)`` yields exactly the batches of
``iter_batches(split, B, shuffle=True, generator=g, max_len=L, pad_to=L)``
when ``order`` is ``g.permutation(split.n_samples)`` (tests/test_graph_wiring.py).
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from .dataset import Split


class DeviceSplit:
    """``split``'s augmented samples on ``device``, batched there without a host sync per batch."""

    def __init__(self, split: Split, device: torch.device | str, max_len: int) -> None:
        if max_len < 1:
            raise ValueError(f"max_len must be at least 1, got {max_len}")
        self.device = torch.device(device)
        self.max_len = int(max_len)
        sess, pos = split.sample_index()
        self.prefix_lengths = pos  # each sample's full prefix length (batch_order sorts by it)
        offsets = np.asarray(split.offsets, dtype=np.int64)
        target = offsets[sess] + pos  # index of each sample's target in the flat item array
        items = np.array(split.items)  # a writable copy of the memory-mapped file
        self.items = torch.from_numpy(items.astype(np.int32 if items.dtype.itemsize <= 4 else np.int64)).to(self.device)
        self.target = torch.as_tensor(target).to(self.device)
        self.length = torch.as_tensor(np.minimum(pos, self.max_len)).to(self.device)
        self.n_samples = int(len(target))
        self._col = torch.arange(self.max_len, device=self.device)

    def batch(self, sel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(items [b, max_len], lengths [b], targets [b])`` of samples ``sel``
        (a LongTensor on the device): the last ``max_len`` items of each
        prefix, right-padded with 0, as :func:`~srs_core.data.dataset.make_batch` makes them."""
        target = self.target[sel]
        length = self.length[sel]
        mask = self._col < length.unsqueeze(1)
        idx = (target - length).unsqueeze(1) + self._col
        items = self.items[idx.masked_fill_(~mask, 0)].long().masked_fill_(~mask, 0)
        return items, length, self.items[target].long()

    def order(self, permutation: np.ndarray | None = None) -> torch.Tensor:
        """Sample order on the device: ``permutation`` (from the run's numpy
        generator) in one transfer, or ``0..n-1``."""
        if permutation is None:
            return torch.arange(self.n_samples, device=self.device)
        if len(permutation) != self.n_samples:
            raise ValueError(f"the permutation has {len(permutation)} entries but the split {self.n_samples} samples")
        host = torch.from_numpy(np.ascontiguousarray(permutation, dtype=np.int64))
        if self.device.type == "cuda":
            host = host.pin_memory()
        return host.to(self.device, non_blocking=True)

    def batches(self, order: torch.Tensor, batch_size: int,
                bounds: np.ndarray | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Batches of ``batch_size`` samples in ``order`` (the last one may be
        smaller), or ``order[bounds[i]:bounds[i + 1]]`` where ``bounds`` is given
        (:func:`~srs_core.data.dataset.batch_order`)."""
        if bounds is None:
            bounds = np.r_[np.arange(0, len(order), batch_size), len(order)]
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            yield self.batch(order[int(lo):int(hi)])

    def __len__(self) -> int:
        return self.n_samples
