"""Fit, evaluate, checkpoint and resume one run (dissertation Section 4.6).

``fit(config, run_dir)`` trains one model x loss x optimizer on a processed
dataset for ``epochs`` epochs, evaluates after every epoch with full ranking
over all N items, keeps the best epoch by MRR@20, and writes

* ``run_dir/checkpoint.pt`` after every epoch (model, optimizer, RNG states),
* ``run_dir/result.json``, the run record (see :mod:`srs_core.results`).

A run killed at any moment and started again with the same config resumes
from its last completed epoch; on CPU it ends with the same metrics as an
uninterrupted run. A config whose record is complete is not run again unless
``force=True``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

import srs_core
from srs_core.data.dataset import ProcessedDataset, Split, iter_batches, n_batches
from srs_core.metrics import RankAccumulator, count_at_least
from srs_core.models import MODELS, build_model
from srs_core.results import ResultsStore, atomic_write_bytes, atomic_write_json, config_hash, is_complete, read_record
from srs_core.scoring import all_items, item_vectors, prepare_session

CHECKPOINT = "checkpoint.pt"


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a run. Defaults follow dissertation Section 4.6."""

    data: str
    model: str = "stamp"
    loss: str = "ce"
    optimizer: str = "dense"
    l2: bool = False
    epochs: int = 8
    batch_size: int = 128
    lr: float = 1e-3
    dim: int = 100
    negatives: int = 100
    margin: float = 0.5
    sampling: str = "uniform"
    alpha: float = 0.75
    max_len: int = 25
    seed: int = 0
    # Extensions (not in the dissertation); their defaults are its setting.
    score_scale: float = 1.0  # multiplies L2-normalised scores in every loss (needs l2)
    shared_negatives: bool = False  # ns/triplet: one set of k negatives for the whole batch
    mix: float = 0.5  # sampling="mixed": popularity share of the uniform/popularity mixture
    patience: int = 0  # stop after this many epochs without a better MRR@20 (0: run every epoch)
    # These change where and how fast a run goes, not its result: they are
    # left out of the config hash.
    device: str = "auto"
    eval_batch_size: int = 256
    eval_item_chunk: int = 131072

    RUNTIME_FIELDS = ("data", "device", "eval_batch_size", "eval_item_chunk")

    def __post_init__(self) -> None:
        from srs_core.losses import LOSSES
        from srs_core.optim import OPTIMIZERS, check_combination

        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; choose one of {sorted(MODELS)}")
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; choose one of {sorted(LOSSES)}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose one of {sorted(OPTIMIZERS)}")
        check_combination(self.loss, self.optimizer)
        for name in ("epochs", "batch_size", "dim", "negatives", "max_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.sampling not in ("uniform", "popularity", "mixed"):
            raise ValueError(f"sampling must be 'uniform', 'popularity' or 'mixed', got {self.sampling!r}")
        if not self.score_scale > 0:
            raise ValueError(f"score_scale must be positive, got {self.score_scale}")
        if self.score_scale != 1.0 and not self.l2:
            raise ValueError(f"score_scale={self.score_scale} multiplies L2-normalised scores: add --l2 "
                             "(l2=True) or leave the scale at 1")
        if self.shared_negatives and self.loss not in ("ns", "triplet"):
            raise ValueError(f"shared_negatives applies to the ns and triplet losses, not {self.loss!r} "
                             "(sampled_softmax always shares its negatives; ce uses every item)")
        if not 0.0 <= self.mix <= 1.0:
            raise ValueError(f"mix must be in [0, 1], got {self.mix}")
        if self.patience < 0:
            raise ValueError(f"patience must be 0 (off) or a positive number of epochs, got {self.patience}")
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {self.device!r}")

    def identity(self, dataset_fingerprint: str) -> dict:
        """The fields that define the result, with the dataset by content.
        An extension left at its default is left out, so every run recorded
        before the extension existed keeps its hash."""
        d = {k: v for k, v in dataclasses.asdict(self).items()
             if k not in self.RUNTIME_FIELDS and not (k in _EXTENSION_DEFAULTS and v == _EXTENSION_DEFAULTS[k])}
        if self.sampling != "mixed":
            d.pop("mix", None)
        d["dataset"] = dataset_fingerprint
        return d


_EXTENSION_DEFAULTS = {"score_scale": 1.0, "shared_negatives": False, "mix": 0.5, "patience": 0}


def dataset_fingerprint(ds: ProcessedDataset) -> str:
    """sha256 of the processed arrays: the same data gives the same runs,
    wherever it lies on disk. Hashed once per directory version (a processed
    directory is only ever replaced whole, which renews its stats.json)."""
    key = (str(ds.path.resolve()), (ds.path / "stats.json").stat().st_mtime_ns)
    if key not in _FINGERPRINTS:
        h = hashlib.sha256()
        for split in (ds.train, ds.test):
            for arr in (split.items, split.offsets, split.times):
                h.update(np.ascontiguousarray(arr).tobytes())
        _FINGERPRINTS[key] = h.hexdigest()[:16]
    return _FINGERPRINTS[key]


_FINGERPRINTS: dict[tuple[str, int], str] = {}


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for but CUDA is not available; use --device cpu or auto")
    return dev


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    split: Split,
    *,
    l2: bool,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
    item_chunk: int = 131072,
    max_len: int | None = 25,
    k: int = 20,
    quiet: bool = True,
) -> dict[str, float]:
    """P@k and MRR@k with full ranking over all N items, in bounded memory.

    Scores are computed ``item_chunk`` items at a time, so at most
    ``batch_size x item_chunk`` scores exist at once. The tie rule is the one
    in :mod:`srs_core.metrics`.
    """
    device = torch.device(device)
    model.eval()
    emb = model.item_embedding
    n_items = emb.num_embeddings - 1
    acc = RankAccumulator(k=k)
    total = n_batches(split, batch_size)
    for batch in tqdm(iter_batches(split, batch_size, max_len=max_len), total=total, desc="evaluate", disable=quiet, leave=False):
        batch = batch.to(device)
        s = prepare_session(model(batch.items, batch.lengths), l2)
        target_scores = (s * item_vectors(emb, batch.targets, l2)).sum(-1)
        above = torch.zeros(len(s), dtype=torch.long, device=device)
        for lo in range(1, n_items + 1, item_chunk):
            hi = min(lo + item_chunk, n_items + 1)
            scores = s @ all_items(emb, l2, lo, hi).T
            inside = (batch.targets >= lo) & (batch.targets < hi)
            cols = torch.where(inside, batch.targets - lo, torch.full_like(batch.targets, -1))
            above += count_at_least(scores, target_scores, cols)
        acc.add(above + 1)
    model.train()
    return acc.result()


def _environment(device: torch.device) -> dict:
    env = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "srs_core": srs_core.__version__,
        "threads": torch.get_num_threads(),
    }
    try:
        root = Path(__file__).resolve().parents[1]
        env["git_commit"] = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        ).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        env["git_commit"] = None
    return env


def _peak_memory(device: torch.device) -> dict:
    mem = {"peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    if device.type == "cuda":
        mem["cuda_peak_bytes"] = torch.cuda.max_memory_allocated(device)
    return mem


def stopped_early(epochs: list[dict], patience: int) -> bool:
    """True when the last ``patience`` epochs brought no better MRR@20 than
    the best before them (never when ``patience`` is 0)."""
    if patience < 1 or len(epochs) <= patience:
        return False
    best_before = max(e["mrr_at_20"] for e in epochs[:-patience])
    return all(e["mrr_at_20"] <= best_before for e in epochs[-patience:])


def _best(epochs: list[dict]) -> dict | None:
    """The best epoch by MRR@20, as the dissertation keeps it (first on ties)."""
    if not epochs:
        return None
    top = max(epochs, key=lambda e: (e["mrr_at_20"], -e["epoch"]))
    return {"epoch": top["epoch"], "p_at_20": top["p_at_20"], "mrr_at_20": top["mrr_at_20"]}


def _rng_state(np_gen: np.random.Generator, torch_gen: torch.Generator) -> dict:
    """Every random stream a run draws from: shuffling (numpy), negatives
    (the run's torch generator) and dropout (torch's global generators)."""
    state = {"numpy": np_gen.bit_generator.state, "torch": torch_gen.get_state(), "torch_global": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda_global"] = torch.cuda.get_rng_state_all()
    return state


def _save_checkpoint(path: Path, model, opt, np_gen, torch_gen, epochs: list[dict], key: str) -> None:
    import io

    buf = io.BytesIO()
    torch.save(
        {"config_hash": key, "epoch": epochs[-1]["epoch"], "epochs": epochs, "model": model.state_dict(), "optimizer": opt.state_dict(),
         "rng": _rng_state(np_gen, torch_gen)},
        buf,
    )
    atomic_write_bytes(path, buf.getvalue())


def fit(config: TrainConfig, run_dir: str | Path, *, force: bool = False, quiet: bool = False) -> dict:
    """Train (or resume, or skip) one run; return its complete record."""
    from srs_core.losses import build_loss
    from srs_core.optim import build_optimizer, embedding_is_sparse

    run_dir = Path(run_dir)
    ds = ProcessedDataset.load(config.data)
    identity = config.identity(dataset_fingerprint(ds))
    key = config_hash(identity)
    record = read_record(run_dir)
    if is_complete(record, key) and not force:
        return record

    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    model = build_model(config.model, ds.n_items, dim=config.dim, sparse=embedding_is_sparse(config.optimizer)).to(device)
    opt = build_optimizer(model, config.optimizer, lr=config.lr)
    loss_fn = build_loss(
        config.loss, negatives=config.negatives, margin=config.margin, distribution=config.sampling,
        alpha=config.alpha, counts=ds.item_counts(), score_scale=config.score_scale,
        shared_negatives=config.shared_negatives, mix=config.mix, device=device,
    )
    np_gen = np.random.default_rng(config.seed)
    torch_gen = torch.Generator(device=device)
    torch_gen.manual_seed(config.seed)

    epochs: list[dict] = []
    start_epoch = 0
    ckpt_path = run_dir / CHECKPOINT
    if ckpt_path.is_file() and not force:
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
        if ckpt.get("config_hash") == key:
            model.load_state_dict(ckpt["model"])
            opt.load_state_dict(ckpt["optimizer"])
            np_gen.bit_generator.state = ckpt["rng"]["numpy"]
            # map_location moved the saved RNG states to `device`; the setters want CPU ByteTensors
            torch_gen.set_state(ckpt["rng"]["torch"].cpu())
            torch.set_rng_state(ckpt["rng"]["torch_global"].cpu())
            if "cuda_global" in ckpt["rng"] and torch.cuda.is_available():
                torch.cuda.set_rng_state_all([s.cpu() for s in ckpt["rng"]["cuda_global"]])
            start_epoch = ckpt["epoch"]
            epochs = list(ckpt["epochs"])

    record = {
        "kind": "neural",
        "config": dataclasses.asdict(config),
        "identity": identity,
        "config_hash": key,
        "status": "running",
        "n_items": ds.n_items,
        "dataset_stats": ds.stats,
        "epochs": epochs,
        "best": _best(epochs),
        "environment": _environment(device),
    }
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    atomic_write_json(run_dir / "result.json", record)

    total = n_batches(ds.train, config.batch_size)
    for epoch in tqdm(range(start_epoch + 1, config.epochs + 1), desc=f"{config.model}/{config.loss}/{config.optimizer}",
                      initial=start_epoch, total=config.epochs, disable=quiet):
        if stopped_early(epochs, config.patience):
            break  # a resumed run that had already stopped
        model.train()
        losses = []
        _sync(device)
        t0 = time.perf_counter()
        batches = iter_batches(ds.train, config.batch_size, shuffle=True, generator=np_gen, max_len=config.max_len)
        for batch in tqdm(batches, total=total, desc=f"epoch {epoch}", disable=quiet, leave=False):
            batch = batch.to(device)
            session = model(batch.items, batch.lengths)
            loss = loss_fn(session, batch.targets, model.item_embedding, l2=config.l2, generator=torch_gen)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.detach())
        _sync(device)
        train_seconds = time.perf_counter() - t0
        t1 = time.perf_counter()
        metrics = evaluate(model, ds.test, l2=config.l2, device=device, batch_size=config.eval_batch_size,
                           item_chunk=config.eval_item_chunk, max_len=config.max_len, quiet=quiet)
        eval_seconds = time.perf_counter() - t1
        mean_loss = float(torch.stack(losses).mean()) if losses else float("nan")
        if not np.isfinite(mean_loss):
            raise FloatingPointError(f"training loss became {mean_loss} in epoch {epoch} of {config}; lower --lr")
        epochs.append({"epoch": epoch, "loss": mean_loss, "train_seconds": train_seconds,
                       "eval_seconds": eval_seconds, **metrics})
        # The checkpoint carries the per-epoch metrics too, so a kill between
        # the two writes below loses nothing: resume trusts the checkpoint.
        _save_checkpoint(ckpt_path, model, opt, np_gen, torch_gen, epochs, key)
        record.update(epochs=epochs, best=_best(epochs), **_peak_memory(device))
        atomic_write_json(run_dir / "result.json", record)

    record.update(status="complete", epochs=epochs, best=_best(epochs), stopped_epoch=epochs[-1]["epoch"] if epochs else 0,
                  stopped_early=stopped_early(epochs, config.patience), **_peak_memory(device))
    atomic_write_json(run_dir / "result.json", record)
    return record


def run_in_store(store: ResultsStore | str | Path, config: TrainConfig, *, force: bool = False, quiet: bool = False) -> dict:
    """Run ``config`` in the results store (skipped when already complete)."""
    store = store if isinstance(store, ResultsStore) else ResultsStore(store)
    ds = ProcessedDataset.load(config.data)
    key = config_hash(config.identity(dataset_fingerprint(ds)))
    rec = store.get(key)
    if is_complete(rec, key) and not force:
        return rec
    return fit(config, store.run_dir(key), force=force, quiet=quiet)
