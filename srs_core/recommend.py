"""A trained run as a recommender: sessions of raw item ids in, the top-k items out.

``Recommender.from_run(run_dir, data_dir)`` loads a complete run of
``srs train`` (its configuration, and its weights at the chosen epoch,
``model.pt``) over the processed dataset it was trained on (checked by the
content hash the run recorded), and ``.recommend(sessions, k)`` ranks every
item for each session:

* sessions and results are in the dataset's **raw** item ids
  (``item_ids.txt``); items the model does not know are dropped from a
  session, and each answer counts them;
* a session with no known item gets the most popular training items, and
  its answer says so (``fallback``);
* the ranking is exact, over all N items, ``item_chunk`` at a time (bounded
  memory), with the sessions batched; equal scores are ordered by item id,
  so the position of an item is never better than the rank
  :mod:`srs_core.metrics` gives it (equal, where there is no tie);
* scores are the ones evaluation ranks by: the inner product of the session
  and item vectors, L2-normalised where the run was trained with ``--l2``;
* ``index="ivf"`` or ``"hnsw"`` answers from an approximate inner-product
  index instead (:mod:`srs_core.ann`, with faiss installed).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from srs_core.ann import ItemIndex
from srs_core.data.dataset import ProcessedDataset
from srs_core.models import build_model
from srs_core.optim import embedding_is_sparse
from srs_core.results import is_complete, read_record
from srs_core.scoring import all_items, prepare_session
from srs_core.serving import pad_sessions, top_items
from srs_core.training.checkpoint import CHECKPOINT, CHOSEN_WEIGHTS
from srs_core.training.config import TrainConfig, dataset_fingerprint


class RecommendError(ValueError):
    """A run, a dataset or an input that cannot give recommendations (the message names the fix)."""


@dataclass
class Recommendation:
    """The top-k of one session: raw item ids, their scores, and what was left out."""

    items: list
    scores: list[float]
    dropped: int = 0  # items of the session the model does not know
    fallback: bool = False  # no known item: the most popular training items instead
    known: list = field(default_factory=list)  # the session's items the model used, as raw ids


def load_weights(run_dir: Path, record: dict) -> dict:
    """The model's state dict at the run's chosen epoch."""
    best = (record.get("best") or {}).get("epoch")
    for name in (CHOSEN_WEIGHTS, CHECKPOINT):
        path = run_dir / name
        if not path.is_file():
            continue
        saved = torch.load(path, map_location="cpu", weights_only=False)
        if saved.get("config_hash") != record["config_hash"]:
            raise RecommendError(f"{path} belongs to another run ({saved.get('config_hash')}); train this one again "
                                 "with `srs train ... --force`")
        if name == CHOSEN_WEIGHTS or saved.get("epoch") == best:  # a checkpoint is the chosen epoch's only if last
            return saved["model"]
    raise RecommendError(f"{run_dir} holds no weights of its chosen epoch ({CHOSEN_WEIGHTS}): train it again with "
                         "this version of `srs train ... --force`, which keeps them")


class Recommender:
    """A trained session encoder and its catalogue, ready to rank (module text)."""

    def __init__(self, model: torch.nn.Module, config: TrainConfig, ds: ProcessedDataset, *,
                 device: torch.device | str = "cpu", item_chunk: int = 65536, index: str = "exact") -> None:
        self.model, self.config, self.ds = model.to(device).eval(), config, ds
        self.device, self.item_chunk = torch.device(device), int(item_chunk)
        raw = (Path(ds.path) / "item_ids.txt").read_text(encoding="utf-8").split("\n")
        self.raw_ids = np.array([r for r in raw if r != ""], dtype=object)
        self.numeric = all(r.lstrip("-").isdigit() for r in self.raw_ids[:1000])
        self.index = {r: i + 1 for i, r in enumerate(self.raw_ids)}
        counts = ds.item_counts()
        self.popular = np.argsort(-counts[1:], kind="stable") + 1  # internal ids, most popular first
        with torch.no_grad():
            self.candidates = all_items(self.model.item_embedding, config.l2).detach()  # rows of items 1..N
        self.ann = None if index == "exact" else ItemIndex(self.candidates.cpu().numpy(), index)

    @classmethod
    def from_run(cls, run_dir: str | Path, data_dir: str | Path, *, device: str = "cpu",
                 index: str = "exact") -> "Recommender":
        """The recommender of a complete ``srs train`` run over its processed dataset."""
        run_dir, data_dir = Path(run_dir), Path(data_dir)
        record = read_record(run_dir) if run_dir.is_dir() else None
        if record is None:
            raise RecommendError(f"{run_dir}: no run here (no result.json); give the --output folder of `srs train`")
        if not is_complete(record) or record.get("kind", "neural") != "neural":
            raise RecommendError(f"{run_dir}: the run is not finished (status {record.get('status')!r}); run the same "
                                 "`srs train` command again to complete it")
        ds = ProcessedDataset.load(data_dir)
        want = record["identity"]["dataset"]
        if dataset_fingerprint(ds) != want:
            raise RecommendError(f"{data_dir} is not the dataset {run_dir} was trained on (content {dataset_fingerprint(ds)}, "
                                 f"the run's {want}); give the processed dataset the run was trained on")
        fields = {k: v for k, v in record["config"].items() if k in TrainConfig.__dataclass_fields__}
        config = TrainConfig(**{**fields, "data": str(data_dir), "device": "cpu"})
        model = build_model(config.model, ds.n_items, dim=config.dim, sparse=embedding_is_sparse(config.optimizer))
        model.load_state_dict(load_weights(run_dir, record))
        return cls(model, config, ds, device=device, index=index)

    # -- input --------------------------------------------------------------------
    def encode(self, session) -> tuple[list[int], int]:
        """A session's known items as internal ids, and how many were dropped."""
        ids, dropped = [], 0
        for raw in session:
            key = str(raw).strip()
            if self.numeric and not key.lstrip("-").isdigit():
                raise RecommendError(f"item id {raw!r} is not a number, and this dataset's item ids are numbers")
            i = self.index.get(key)
            if i is None:
                dropped += 1
            else:
                ids.append(i)
        return ids, dropped

    # -- ranking ------------------------------------------------------------------
    @torch.no_grad()
    def top_k(self, sessions: list[list[int]], k: int, exclude_seen: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Internal ids ``[B, k]`` and scores of the best items for sessions of
        internal ids (each non-empty), exact over all items (:func:`srs_core.serving.top_items`)."""
        items, lengths = pad_sessions(sessions, self.config.max_len)
        s = prepare_session(self.model(items.to(self.device), lengths.to(self.device)), self.config.l2)
        if self.ann is None:
            return top_items(s, self.candidates, k, seen=sessions if exclude_seen else None, chunk=self.item_chunk)
        extra = max(len(x) for x in sessions) if exclude_seen else 0  # room for the session's own items
        ids, scores = self.ann.search(s.cpu().numpy(), k + extra)
        if exclude_seen:
            keep = [[j for j, i in enumerate(row) if i not in set(sess)][:k] for row, sess in zip(ids, sessions)]
            ids = np.array([row[kept] for row, kept in zip(ids, keep)])
            scores = np.array([row[kept] for row, kept in zip(scores, keep)])
        return ids, scores

    def recommend(self, sessions, k: int = 20, exclude_seen: bool = False,
                  batch_size: int = 256) -> list[Recommendation]:
        """The top-``k`` items of every session (lists of raw item ids), in raw ids."""
        if k < 1:
            raise RecommendError(f"k must be at least 1, got {k}")
        encoded = [self.encode(s) for s in sessions]
        out: list[Recommendation | None] = [None] * len(encoded)
        live = [i for i, (ids, _) in enumerate(encoded) if ids]
        for lo in range(0, len(live), batch_size):
            part = live[lo:lo + batch_size]
            ids, scores = self.top_k([encoded[i][0] for i in part], k, exclude_seen)
            for j, i in enumerate(part):
                out[i] = Recommendation(self.raw_ids[ids[j] - 1].tolist(), scores[j].astype(float).tolist(),
                                        dropped=encoded[i][1], known=self.raw_ids[np.array(encoded[i][0]) - 1].tolist())
        top = self.popular[:k]
        for i, (ids, dropped) in enumerate(encoded):
            if out[i] is None:
                out[i] = Recommendation(self.raw_ids[top - 1].tolist(), [float("nan")] * len(top), dropped=dropped,
                                        fallback=True)
        return out

    def describe(self) -> dict:
        """What the recommender serves: the run's model, loss and dataset."""
        return {"model": self.config.model, "loss": self.config.loss, "l2": self.config.l2,
                "n_items": self.ds.n_items, "dataset": dataset_fingerprint(self.ds)}


def read_sessions(path: str | Path) -> tuple[list[str], list[list[str]]]:
    """Sessions from a file: one session a line (item ids separated by spaces
    or commas; the session's name is its line number), or a CSV whose header
    names a session column, an item column and optionally a time column
    (``session_id,item_id,time``, the form a user's logs are likely in),
    sessions then ordered by time within each session."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecommendError(f"{path}: no such file; give a file of sessions") from None
    except UnicodeDecodeError:
        raise RecommendError(f"{path}: not UTF-8 text; give one session a line, or a CSV of session, item, time") from None
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise RecommendError(f"{path}: empty; give one session a line, or a CSV of session, item, time")
    head = [h.strip().lower() for h in lines[0].split(",")]
    if len(head) >= 2 and any("session" in h for h in head) and any("item" in h for h in head):
        return _read_csv(path, lines, head)
    return [str(i + 1) for i in range(len(lines))], [ln.replace(",", " ").split() for ln in lines]


def _read_csv(path: Path, lines: list[str], head: list[str]) -> tuple[list[str], list[list[str]]]:
    s_col = next(i for i, h in enumerate(head) if "session" in h)
    i_col = next(i for i, h in enumerate(head) if "item" in h)
    t_col = next((i for i, h in enumerate(head) if "time" in h or "date" in h), None)
    rows = {}
    for n, line in enumerate(lines[1:], 2):
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != len(head):
            raise RecommendError(f"{path}, line {n}: {len(cells)} fields where the header has {len(head)}")
        key = (cells[t_col], n) if t_col is not None else (n,)
        rows.setdefault(cells[s_col], []).append((key, cells[i_col]))
    names = list(rows)
    return names, [[item for _, item in sorted(rows[s], key=lambda r: r[0])] for s in names]


def write_recommendations(path: str | Path, names: list[str], recs: list[Recommendation]) -> None:
    """One CSV row per session and rank (``session,rank,item,score,dropped,fallback``), written atomically."""
    from srs_core.results import atomic_write_bytes

    out = ["session,rank,item,score,dropped,fallback"]
    for name, r in zip(names, recs):
        for rank, (item, score) in enumerate(zip(r.items, r.scores), 1):
            out.append(f"{name},{rank},{item},{'' if np.isnan(score) else f'{score:.6g}'},{r.dropped},"
                       f"{str(r.fallback).lower()}")
    atomic_write_bytes(path, ("\n".join(out) + "\n").encode())


def summary(recs: list[Recommendation]) -> dict:
    """Counts for the command's last line."""
    return {"sessions": len(recs), "fallback": sum(r.fallback for r in recs),
            "dropped_items": sum(r.dropped for r in recs)}

