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

How a step runs is a runtime choice, left out of the config hash (issue 10):

* on CUDA the split lives on the GPU and batches are made there
  (:class:`~srs_core.data.device.DeviceSplit`), and the whole step is
  replayed from a CUDA graph where the pairing allows it
  (:mod:`srs_core.cuda_graph`; ``graph="auto"``). The last, partial batch
  of an epoch runs the same step eagerly. Evaluation runs in chunks on the
  device with one host read per evaluation;
* on CPU, by default, batches come from numpy and the step runs eagerly,
  exactly as before; ``graph="on"`` runs the graph's static-shape step
  eagerly on device-made batches (how the CUDA path is tested on CPU);
* under ``torchrun`` the run is data-parallel (:mod:`srs_core.distributed`):
  every rank takes its share of the same global batches, rank 0 writes.
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
from srs_core import distributed
from srs_core.data.dataset import ProcessedDataset, Split, iter_batches, n_batches
from srs_core.data.device import DeviceSplit
from srs_core.distributed import SINGLE, Dist
from srs_core.metrics import RankAccumulator, count_at_least
from srs_core.models import MODELS, build_model
from srs_core.results import ResultsStore, atomic_write_bytes, atomic_write_json, config_hash, is_complete, read_record
from srs_core.scoring import all_items, item_vectors, prepare_session

CHECKPOINT = "checkpoint.pt"
PROGRESS_EVERY = 50  # steps between progress-bar updates
GRAPH_MODES = ("auto", "on", "off")


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
    graph: str = "auto"  # CUDA-graph training step: auto (on CUDA where the pairing allows), on, off

    RUNTIME_FIELDS = ("data", "device", "eval_batch_size", "eval_item_chunk", "graph")

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
        if self.graph not in GRAPH_MODES:
            raise ValueError(f"graph must be 'auto', 'on' or 'off', got {self.graph!r}")
        if self.graph == "on":
            from srs_core.cuda_graph import graph_support

            reason = graph_support(self.loss, self.optimizer)
            if reason is not None:
                raise ValueError(f"--graph on: {reason}; use --graph auto (graphs where it can) or off")

    def identity(self, dataset_fingerprint: str) -> dict:
        """The fields that define the result, with the dataset by content.
        An extension left at its default is left out, so every run recorded
        before the extension existed keeps its hash."""
        d = {k: v for k, v in dataclasses.asdict(self).items()
             if k not in self.RUNTIME_FIELDS and not (k in _EXTENSION_DEFAULTS and v == _EXTENSION_DEFAULTS[k])}
        if self.sampling == "mixed":
            d["mix"] = self.mix  # part of the result whenever the mixture is used
        else:
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


def _progress(iterable, total: int, *, every: int = PROGRESS_EVERY, **tqdm_kw):
    """Yield from ``iterable`` under a tqdm bar advanced every ``every`` items
    (not on every step)."""
    with tqdm(total=total, **tqdm_kw) as bar:
        i = shown = 0
        for i, x in enumerate(iterable, 1):
            yield x
            if i - shown >= every:
                bar.update(i - shown)
                shown = i
        bar.update(i - shown)


def _target_ranks(model, items, lengths, targets, *, l2: bool, item_chunk: int) -> torch.Tensor:
    """Rank of each target among all N items (tie rule of :mod:`srs_core.metrics`),
    scoring ``item_chunk`` items at a time."""
    emb = model.item_embedding
    n_items = emb.num_embeddings - 1
    s = prepare_session(model(items, lengths), l2)
    target_scores = (s * item_vectors(emb, targets, l2)).sum(-1)
    above = torch.zeros(len(s), dtype=torch.long, device=s.device)
    for lo in range(1, n_items + 1, item_chunk):
        hi = min(lo + item_chunk, n_items + 1)
        scores = s @ all_items(emb, l2, lo, hi).T
        inside = (targets >= lo) & (targets < hi)
        cols = torch.where(inside, targets - lo, torch.full_like(targets, -1))
        above += count_at_least(scores, target_scores, cols)
    return above + 1


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
    on_device: DeviceSplit | None = None,
    dist: Dist = SINGLE,
) -> dict[str, float]:
    """P@k and MRR@k with full ranking over all N items, in bounded memory.

    Scores are computed ``item_chunk`` items at a time, so at most
    ``batch_size x item_chunk`` scores exist at once. The tie rule is the one
    in :mod:`srs_core.metrics`.

    On CUDA (or given ``on_device``, the split already on the device) the
    batches are made on the device and the ranks stay there until one host
    read at the end. Under torchrun (``dist``) each rank ranks its share of
    the samples and the counts are summed.
    """
    device = torch.device(device)
    model.eval()
    acc = RankAccumulator(k=k)
    if on_device is None and (device.type == "cuda" or dist.active):
        width = max_len if max_len is not None else max(int(split.lengths.max()) - 1, 1)
        on_device = DeviceSplit(split, device, width)
    if on_device is None:
        total = n_batches(split, batch_size)
        for batch in _progress(iter_batches(split, batch_size, max_len=max_len), total, desc="evaluate",
                               disable=quiet, leave=False):
            batch = batch.to(device)
            acc.add(_target_ranks(model, batch.items, batch.lengths, batch.targets, l2=l2, item_chunk=item_chunk))
    else:
        lo, hi = distributed.shard_rows(on_device.n_samples, dist)
        order = torch.arange(lo, hi, device=on_device.device)
        ranks = [_target_ranks(model, *batch, l2=l2, item_chunk=item_chunk)
                 for batch in _progress(on_device.batches(order, batch_size), -(-(hi - lo) // batch_size),
                                        desc="evaluate", disable=quiet, leave=False)]
        if ranks:
            acc.add(torch.cat(ranks))  # the one host read
        if dist.active:
            n, acc.hits, acc.rr = distributed.all_sum([acc.n, acc.hits, acc.rr], on_device.device)
            acc.n = int(n)
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


def _load_optimizer_state(opt, state: dict) -> None:
    """Load a checkpoint's optimizer state, keeping this run's Adam kind
    (fused, or capturable for a CUDA graph): the graph mode is a runtime
    choice, so a run checkpointed in one mode may resume in the other."""
    kinds = {name: [{k: g[k] for k in ("capturable", "fused", "foreach") if k in g} for g in part.param_groups]
             for name, part in opt.optimizers.items() if isinstance(part, torch.optim.Optimizer)}
    opt.load_state_dict(state)
    for name, groups in kinds.items():
        for group, kind in zip(opt.optimizers[name].param_groups, groups):
            group.update(kind)


def use_graph(config: TrainConfig, device: torch.device, dist: Dist = SINGLE) -> bool:
    """Whether ``fit`` trains with the graphed step: ``graph="on"`` always
    (on CPU its static step runs eagerly); ``"auto"`` on one CUDA device for
    a pairing a graph can capture and an encoder a GPU has captured
    (:data:`srs_core.cuda_graph.VERIFIED_MODELS`). Under torchrun ``auto``
    stays eager until a multi-GPU run has checked NCCL collectives inside a
    graph (``benchmarks/gpu.sh`` checks one process); ``on`` forces it."""
    from srs_core.cuda_graph import VERIFIED_MODELS, graph_support

    if config.graph != "auto":
        return config.graph == "on"
    return (device.type == "cuda" and not dist.active and config.model in VERIFIED_MODELS
            and graph_support(config.loss, config.optimizer) is None)


def _rank_seed(seed: int, epoch: int, rank: int) -> int:
    """Seed of rank ``rank``'s dropout stream in ``epoch`` under torchrun:
    ranks draw different masks, and a resumed run draws the same ones."""
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])


def fit(config: TrainConfig, run_dir: str | Path, *, force: bool = False, quiet: bool = False) -> dict:
    """Train (or resume, or skip) one run; return its complete record.
    Under torchrun every process calls it (:mod:`srs_core.distributed`)."""
    with distributed.session(config.device) as (dist, device):
        return _fit(config, Path(run_dir), force=force, quiet=quiet or not dist.main, dist=dist,
                    device=device or resolve_device(config.device))


def _fit(config: TrainConfig, run_dir: Path, *, force: bool, quiet: bool, dist: Dist, device: torch.device) -> dict:
    from srs_core.cuda_graph import GraphedTrainStep, TrainStep
    from srs_core.losses import build_loss
    from srs_core.optim import build_optimizer, embedding_is_sparse

    ds = ProcessedDataset.load(config.data)
    identity = config.identity(dataset_fingerprint(ds))
    key = config_hash(identity)
    record = read_record(run_dir)
    if distributed.broadcast(is_complete(record, key) and not force, dist):  # rank 0 decides for all
        return distributed.broadcast(record, dist)
    if dist.active and config.batch_size < dist.world:
        raise ValueError(f"--batch-size {config.batch_size} is the global batch: it must be at least the number "
                         f"of processes ({dist.world})")

    graphed = use_graph(config, device, dist)
    on_device = graphed or dist.active or device.type == "cuda"  # batches made on the device
    torch.manual_seed(config.seed)
    model = build_model(config.model, ds.n_items, dim=config.dim, sparse=embedding_is_sparse(config.optimizer)).to(device)
    if not graphed:
        opt = build_optimizer(model, config.optimizer, lr=config.lr)
    loss_fn = build_loss(
        config.loss, negatives=config.negatives, margin=config.margin, distribution=config.sampling,
        alpha=config.alpha, counts=ds.item_counts(), score_scale=config.score_scale,
        shared_negatives=config.shared_negatives, mix=config.mix, device=device,
    )
    np_gen = np.random.default_rng(config.seed)
    torch_gen = torch.Generator(device=device)
    torch_gen.manual_seed(config.seed)
    if graphed:
        step = GraphedTrainStep(model, loss_fn, batch_size=config.batch_size, max_len=config.max_len, l2=config.l2,
                                optimizer=config.optimizer, lr=config.lr, generator=torch_gen, dist=dist)
        opt = step.opt
    else:
        step = TrainStep(model, loss_fn, opt, l2=config.l2, generator=torch_gen, dist=dist)

    epochs: list[dict] = []
    start_epoch = 0
    ckpt_path = run_dir / CHECKPOINT
    if ckpt_path.is_file() and not force:
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
        if ckpt.get("config_hash") == key:
            model.load_state_dict(ckpt["model"])
            _load_optimizer_state(opt, ckpt["optimizer"])
            np_gen.bit_generator.state = ckpt["rng"]["numpy"]
            # map_location moved the saved RNG states to `device`; the setters want CPU ByteTensors
            torch_gen.set_state(ckpt["rng"]["torch"].cpu())
            torch.set_rng_state(ckpt["rng"]["torch_global"].cpu())
            if "cuda_global" in ckpt["rng"] and torch.cuda.is_available():
                torch.cuda.set_rng_state_all([s.cpu() for s in ckpt["rng"]["cuda_global"]])
            start_epoch = ckpt["epoch"]
            epochs = list(ckpt["epochs"])
    if dist.active and distributed.all_sum([float(start_epoch != distributed.broadcast(start_epoch, dist))], device)[0]:
        raise RuntimeError(f"the processes found different checkpoints in {run_dir}: under torchrun --nnodes, "
                           "--output must be a folder that every machine sees")

    environment = _environment(device)
    environment.update(train_step="cuda-graph" if graphed and device.type == "cuda" else
                       "static-eager" if graphed else "eager", batches="device" if on_device else "numpy",
                       world_size=dist.world, distributed_backend=dist.backend)
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
        "environment": environment,
    }
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    if dist.main:
        atomic_write_json(run_dir / "result.json", record)

    train_split = DeviceSplit(ds.train, device, config.max_len) if on_device else None
    test_split = DeviceSplit(ds.test, device, config.max_len) if on_device else None
    total = n_batches(ds.train, config.batch_size)
    for epoch in tqdm(range(start_epoch + 1, config.epochs + 1), desc=f"{config.model}/{config.loss}/{config.optimizer}",
                      initial=start_epoch, total=config.epochs, disable=quiet):
        if stopped_early(epochs, config.patience):
            break  # a resumed run that had already stopped
        model.train()
        if dist.active:
            torch.manual_seed(_rank_seed(config.seed, epoch, dist.rank))
        _sync(device)
        t0 = time.perf_counter()
        if on_device:
            order = train_split.order(np_gen.permutation(train_split.n_samples))  # numpy's shuffle, one transfer
            batches = train_split.batches(order, config.batch_size)
        else:
            batches = ((b.items, b.lengths, b.targets) for b in (
                b.to(device) for b in iter_batches(ds.train, config.batch_size, shuffle=True, generator=np_gen,
                                                   max_len=config.max_len)))
        losses = []
        for items, lengths, targets in _progress(batches, total, desc=f"epoch {epoch}", disable=quiet, leave=False):
            if not graphed:
                losses.append(step(items, lengths, targets))
            elif len(targets) == config.batch_size:
                losses.append(step(items, lengths, targets).clone())  # the graph overwrites its loss
            else:
                losses.append(step.eager(items, lengths, targets))  # the last, partial batch
        mean_loss = torch.stack(losses).mean() if losses else torch.tensor(float("nan"))
        if dist.active:
            mean_loss = torch.tensor(distributed.all_sum([float(mean_loss)], device)[0])
        mean_loss = float(mean_loss)
        _sync(device)
        train_seconds = time.perf_counter() - t0
        t1 = time.perf_counter()
        metrics = evaluate(model, ds.test, l2=config.l2, device=device, batch_size=config.eval_batch_size,
                           item_chunk=config.eval_item_chunk, max_len=config.max_len, quiet=quiet,
                           on_device=test_split, dist=dist)
        eval_seconds = time.perf_counter() - t1
        if not np.isfinite(mean_loss):
            raise FloatingPointError(f"training loss became {mean_loss} in epoch {epoch} of {config}; lower --lr")
        # every rank keeps rank 0's record of the epoch, so all stop together
        epochs.append(distributed.broadcast({"epoch": epoch, "loss": mean_loss, "train_seconds": train_seconds,
                                             "eval_seconds": eval_seconds, **metrics}, dist))
        if dist.main:
            # The checkpoint carries the per-epoch metrics too, so a kill between
            # the two writes below loses nothing: resume trusts the checkpoint.
            _save_checkpoint(ckpt_path, model, opt, np_gen, torch_gen, epochs, key)
            record.update(epochs=epochs, best=_best(epochs), **_peak_memory(device))
            atomic_write_json(run_dir / "result.json", record)

    record.update(status="complete", epochs=epochs, best=_best(epochs), stopped_epoch=epochs[-1]["epoch"] if epochs else 0,
                  stopped_early=stopped_early(epochs, config.patience), **_peak_memory(device))
    if dist.main:
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
