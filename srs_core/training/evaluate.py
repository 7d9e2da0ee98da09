"""Full-ranking evaluation of a session encoder (P@k, MRR@k over all N items)."""
from __future__ import annotations

import numpy as np
import torch

from srs_core.data.dataset import Split, make_batch, n_batches
from srs_core.data.device import DeviceSplit
from srs_core.metrics import RankAccumulator, count_at_least
from srs_core.scoring import all_items, item_vectors, prepare_session

from . import distributed
from .distributed import SINGLE, Dist
from .runtime import progress


#: Items scored at once when ``item_chunk`` is 0 (auto). On a CPU a chunk of
#: a couple of thousand items keeps a batch's scores (256 x 2048 floats, 2 MiB)
#: in cache while they are compared with the targets': ranking the Diginetica
#: split's test samples then runs within 2x of its matmul floor on one thread
#: and on two, where 8192-item chunks and one chunk of all 43k items were
#: slower (benchmarks/bench_eval_chunks.py, benchmarks/README.md); a GPU wants
#: large chunks. The ranks do not depend on the chunk.
AUTO_ITEM_CHUNK = {"cpu": 2048, "cuda": 131072}


def item_chunk_for(device: torch.device, item_chunk: int) -> int:
    """``item_chunk``, or the device's default (:data:`AUTO_ITEM_CHUNK`) when it is 0."""
    if item_chunk < 0:
        raise ValueError(f"the evaluation item chunk must be 0 (auto) or positive, got {item_chunk}")
    return item_chunk or AUTO_ITEM_CHUNK.get(torch.device(device).type, 131072)


def target_ranks(model, items, lengths, targets, *, l2: bool, item_chunk: int,
                 candidates: torch.Tensor | None = None) -> torch.Tensor:
    """Rank of each target among all N items (tie rule of :mod:`srs_core.metrics`),
    scoring ``item_chunk`` items at a time. ``candidates`` (items 1..N as
    compared with sessions, ``all_items(emb, l2)``) may be given once for
    many batches; the ranks are the same either way."""
    emb = model.item_embedding
    n_items = emb.num_embeddings - 1
    s = prepare_session(model(items, lengths), l2)
    target_scores = (s * item_vectors(emb, targets, l2)).sum(-1)
    above = torch.zeros(len(s), dtype=torch.long, device=s.device)
    for lo in range(1, n_items + 1, item_chunk):
        hi = min(lo + item_chunk, n_items + 1)
        chunk = all_items(emb, l2, lo, hi) if candidates is None else candidates[lo - 1:hi - 1]
        scores = s @ chunk.T
        inside = (targets >= lo) & (targets < hi)
        cols = torch.where(inside, targets - lo, torch.full_like(targets, -1))
        above += count_at_least(scores, target_scores, cols)
    return above + 1


def _by_length(split: Split, batch_size: int, max_len: int | None):
    """The split's samples sorted by padded prefix length (stable), and their
    batches in that order: a recurrent or graph encoder then pads each batch to
    about its own width instead of the longest prefix of 256 neighbours in
    sample order. Each sample's rank does not depend on its batch."""
    sess, pos = split.sample_index()
    order = np.argsort(pos if max_len is None else np.minimum(pos, max_len), kind="stable")
    batches = (make_batch(split, sess[order[lo:lo + batch_size]], pos[order[lo:lo + batch_size]], max_len=max_len)
               for lo in range(0, len(order), batch_size))
    return order, batches


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    split: Split,
    *,
    l2: bool,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
    item_chunk: int = 0,
    max_len: int | None = 25,
    k: int = 20,
    quiet: bool = True,
    on_device: DeviceSplit | None = None,
    dist: Dist = SINGLE,
    return_ranks: bool = False,
):
    """P@k and MRR@k with full ranking over all N items, in bounded memory.

    Scores are computed ``item_chunk`` items at a time (0: the device's
    default, :data:`AUTO_ITEM_CHUNK`), so at most ``batch_size x item_chunk``
    scores exist at once. The tie rule is the one in :mod:`srs_core.metrics`.

    On CUDA (or given ``on_device``, the split already on the device) the
    batches are made on the device and the ranks stay there until one host
    read at the end. Under torchrun (``dist``) each rank ranks its share of
    the samples and the counts are summed.

    With ``return_ranks`` it returns ``(metrics, ranks)``: the rank of every
    target as an int32 numpy array in the split's sample order (``None``
    under torchrun, where each process holds only its share).
    """
    device = torch.device(device)
    model.eval()
    acc = RankAccumulator(k=k)
    if on_device is None and (device.type == "cuda" or dist.active):
        width = max_len if max_len is not None else max(int(split.lengths.max()) - 1, 1)
        on_device = DeviceSplit(split, device, width)
    order = None
    if on_device is None:  # numpy batches of similar prefix length: each pads to about its own width
        order, batches = _by_length(split, batch_size, max_len)
        batches = (b.to(device) for b in batches)
        batches, total = ((b.items, b.lengths, b.targets) for b in batches), n_batches(split, batch_size)
    else:
        lo, hi = distributed.shard_rows(on_device.n_samples, dist)
        batches = on_device.batches(torch.arange(lo, hi, device=on_device.device), batch_size)
        total = -(-(hi - lo) // batch_size)
    ranks, kept = [], []
    item_chunk = item_chunk_for(device, item_chunk)
    candidates = all_items(model.item_embedding, l2)  # normalised once, not once per batch
    for batch in progress(batches, total, desc="evaluate", disable=quiet, leave=False):
        r = target_ranks(model, *batch, l2=l2, item_chunk=item_chunk, candidates=candidates)
        if on_device is None:
            acc.add(r)  # numpy batches: counted batch by batch
            if return_ranks:
                kept.append(r.to(torch.int32))
        else:
            ranks.append(r)
    if ranks:
        ranks = torch.cat(ranks).cpu()  # on a device: the one host read
        acc.add(ranks)
        kept = [ranks.to(torch.int32)]
    elif kept and order is not None:  # back to the split's sample order
        sorted_ranks = torch.cat(kept)
        kept = [torch.empty_like(sorted_ranks)]
        kept[0][torch.from_numpy(order)] = sorted_ranks
    if dist.active:
        n, acc.hits, acc.rr = distributed.all_sum([acc.n, acc.hits, acc.rr], on_device.device)
        acc.n = int(n)
    model.train()
    if not return_ranks:
        return acc.result()
    all_ranks = None if dist.active else (torch.cat(kept).numpy() if kept else np.zeros(0, np.int32))
    return acc.result(), all_ranks
