"""Recommendations from an exported model, with torch and numpy only.

This file imports nothing from ``srs_core``: ``srs export`` copies it into
every export as ``recommend.py``, where it serves without the study's code.
:mod:`srs_core.recommend` ranks with the same two functions, so a run and
its export give the same top-k.

    python EXPORT/recommend.py --session "214 87 3301" --k 20
    python EXPORT/recommend.py --input sessions.txt --k 20 > top20.csv

Ties: equal scores are ordered by item id, so an item's position is never
better than the rank the study's metrics give it (the pessimistic tie rule).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch


def pad_sessions(sessions: list[list[int]], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``[B, L]`` item ids (the last ``max_len`` items of each
    session; 0 pads) and lengths ``[B]``; every session holds one item or more."""
    width = min(max(len(s) for s in sessions), max_len)
    items = torch.zeros((len(sessions), width), dtype=torch.long)
    for b, s in enumerate(sessions):
        kept = s[-width:]
        items[b, :len(kept)] = torch.as_tensor(kept)
    return items, torch.as_tensor([min(len(s), width) for s in sessions])


@torch.no_grad()
def top_items(vectors: torch.Tensor, candidates: torch.Tensor, k: int, *, seen: list[list[int]] | None = None,
              chunk: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best items (ids 1..N) and their scores for each session vector,
    exact over ``candidates`` (rows of items 1..N), ``chunk`` items at a
    time; ``seen`` (ids per session) are left out. Ties go to the lower id."""
    n, k = candidates.shape[0], min(k, candidates.shape[0])
    best_s = torch.full((len(vectors), 0), -torch.inf, device=vectors.device)
    best_i = torch.zeros((len(vectors), 0), dtype=torch.long, device=vectors.device)
    if seen is not None:  # (row, column) of every item a session holds
        rows = torch.tensor([b for b, s in enumerate(seen) for _ in s], dtype=torch.long, device=vectors.device)
        cols = torch.tensor([i - 1 for s in seen for i in s], dtype=torch.long, device=vectors.device)
    for lo in range(0, n, chunk):
        scores = vectors @ candidates[lo:lo + chunk].T
        if seen is not None:
            inside = (cols >= lo) & (cols < lo + scores.shape[1])
            scores[rows[inside], cols[inside] - lo] = -torch.inf
        top = torch.topk(scores, min(k, scores.shape[1]), dim=1)
        best_s, best_i = torch.cat([best_s, top.values], 1), torch.cat([best_i, top.indices + lo + 1], 1)
        by_id = torch.argsort(best_i, dim=1, stable=True)  # then a stable sort by score: ties by id
        best_s, best_i = best_s.gather(1, by_id), best_i.gather(1, by_id)
        order = torch.argsort(best_s, dim=1, descending=True, stable=True)[:, :k]
        best_s, best_i = best_s.gather(1, order), best_i.gather(1, order)
    return best_i.cpu().numpy(), best_s.cpu().numpy()


class ExportedRecommender:
    """An export of ``srs export``: ``recommend(sessions, k)`` in raw item ids."""

    def __init__(self, folder: str | Path) -> None:
        folder = Path(folder)
        self.meta = json.loads((folder / "meta.json").read_text())
        self.encoder = torch.jit.load(str(folder / "encoder.pt")).eval()
        self.items = torch.from_numpy(np.load(folder / "items.npy"))
        self.popular = np.load(folder / "popular.npy")
        self.raw_ids = [r for r in (folder / "item_ids.txt").read_text(encoding="utf-8").split("\n") if r != ""]
        self.index = {r: i + 1 for i, r in enumerate(self.raw_ids)}

    def recommend(self, sessions: list[list], k: int = 20, exclude_seen: bool = False) -> list[dict]:
        """Per session: ``items`` and ``scores`` (best first), ``dropped`` (unknown
        items left out) and ``fallback`` (no known item: the most popular)."""
        known = [[self.index[str(x).strip()] for x in s if str(x).strip() in self.index] for s in sessions]
        out = [{"items": [self.raw_ids[i - 1] for i in self.popular[:k]], "scores": [None] * min(k, len(self.popular)),
                "dropped": len(s) - len(ids), "fallback": True} for s, ids in zip(sessions, known)]
        live = [b for b, ids in enumerate(known) if ids]
        if live:
            items, lengths = pad_sessions([known[b] for b in live], self.meta["max_len"])
            with torch.no_grad():
                v = self.encoder(items, lengths)
            if self.meta["l2"]:
                v = torch.nn.functional.normalize(v, dim=-1)
            ids, scores = top_items(v, self.items, k, seen=[known[b] for b in live] if exclude_seen else None)
            for j, b in enumerate(live):
                out[b].update(items=[self.raw_ids[i - 1] for i in ids[j]], scores=scores[j].tolist(), fallback=False)
        return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="top-k items for sessions, from this export")
    ap.add_argument("--session", help="one session: item ids separated by spaces")
    ap.add_argument("--input", type=Path, help="a file of sessions, one a line (item ids separated by spaces)")
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--exclude-seen", action="store_true", help="leave out the session's own items")
    args = ap.parse_args(argv)
    if (args.session is None) == (args.input is None):
        ap.error("give --session or --input")
    lines = [args.session] if args.session is not None else args.input.read_text().splitlines()
    sessions = [ln.replace(",", " ").split() for ln in lines if ln.strip()]
    rec = ExportedRecommender(Path(__file__).resolve().parent)
    print("session,rank,item,score")
    for n, r in enumerate(rec.recommend(sessions, args.k, args.exclude_seen), 1):
        for rank, (item, score) in enumerate(zip(r["items"], r["scores"]), 1):
            print(f"{n},{rank},{item},{'' if score is None else f'{score:.6g}'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
