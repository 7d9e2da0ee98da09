"""Fit, evaluate, checkpoint and resume one run (dissertation Section 4.6).

``fit(config, run_dir)`` trains one model x loss x optimizer on a processed
dataset for ``epochs`` epochs and evaluates after every epoch with full ranking
over all N items, on the validation split (where the dataset has one) and on
the test split. The reported epoch is chosen by MRR@20 on the validation split
(``select="valid"``, the default; early stopping watches the same split) and
its *test* metrics are reported; ``select="test"`` chooses on the test split
itself, as the dissertation did. It writes

* ``run_dir/checkpoint.pt`` after every epoch (model, optimizer, RNG states),
* ``run_dir/result.json``, the run record (see :mod:`srs_core.results`),
* ``run_dir/ranks.npy``, the rank of every test target at the chosen epoch
  (int32, in the order of the test split's samples), for paired statistics;
* ``run_dir/model.pt``, the model's weights at the chosen epoch (what
  :mod:`srs_core.recommend` serves).

A run killed at any moment and started again with the same config resumes
from its last completed epoch; on CPU it ends with the same metrics as an
uninterrupted run. A config whose record is complete is not run again unless
``force=True``.

How a step runs is a runtime choice, left out of the config hash, and
settled once in :meth:`~srs_core.training.loop.Run.setup`, so that the epoch loop reads the same in
every mode:

* on CUDA the split lives on the GPU and batches are made there
  (:class:`~srs_core.data.device.DeviceSplit`), and the whole step is
  replayed from a CUDA graph where the pairing allows it
  (:mod:`srs_core.training.graph`; ``graph="auto"``). Evaluation runs in
  chunks on the device with one host read per evaluation;
* on CPU, by default, batches come from numpy and the step runs eagerly;
  ``graph="on"`` runs the graph's static-shape step eagerly on device-made
  batches (how the CUDA path is tested on CPU);
* under ``torchrun`` the run is data-parallel
  (:mod:`srs_core.training.distributed`): every rank takes its share of the
  same global batches, rank 0 writes.
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch
from srs_core.progress import tqdm

from srs_core.data.dataset import ProcessedDataset, batch_order, iter_batches, n_batches
from srs_core.data.sessions import count_session_batches
from srs_core.data.device import DeviceSplit
from srs_core.losses import build_loss, loss_class
from srs_core.models import build_model
from srs_core.optim import build_optimizer, embedding_is_sparse
from srs_core.results import RANKS, ResultsStore, atomic_write_json, atomic_write_ranks, is_complete, read_record

from . import distributed
from .checkpoint import (CHECKPOINT, CHOSEN_WEIGHTS, load_optimizer_state, read_checkpoint, restore_rng,
                         save_checkpoint, save_weights)
from .config import SELECT_MODES, TrainConfig, run_key
from .distributed import Dist
from .evaluate import evaluate
from .graph import GraphedTrainStep, use_graph
from .rundir import RunLock, claim
from .runtime import bound_heap, environment, peak_memory, progress, resolve_device, sync
from .step import TrainStep


def _selection_key(on: str) -> str:
    if on not in SELECT_MODES:
        raise ValueError(f"the epoch is selected on 'valid' or 'test', not {on!r}")
    return "valid_mrr_at_20" if on == "valid" else "mrr_at_20"


def stopped_early(epochs: list[dict], patience: int, on: str = "test") -> bool:
    """True when the last ``patience`` epochs brought no better MRR@20 on the
    split ``on`` than the best before them (never when ``patience`` is 0)."""
    if patience < 1 or len(epochs) <= patience:
        return False
    key = _selection_key(on)
    best_before = max(e[key] for e in epochs[:-patience])
    return all(e[key] <= best_before for e in epochs[-patience:])


def best_epoch(epochs: list[dict], on: str = "test") -> dict | None:
    """The epoch with the best MRR@20 on the split ``on`` (first on ties),
    with its test metrics (and, when chosen on validation, its validation
    ones). ``on="test"`` is how the dissertation kept its best epoch."""
    if not epochs:
        return None
    key = _selection_key(on)
    top = max(epochs, key=lambda e: (e[key], -e["epoch"]))
    best = {"epoch": top["epoch"], "p_at_20": top["p_at_20"], "mrr_at_20": top["mrr_at_20"]}
    if on == "valid":
        best.update(valid_p_at_20=top["valid_p_at_20"], valid_mrr_at_20=top["valid_mrr_at_20"])
    return best


def _rank_seed(seed: int, epoch: int, rank: int) -> int:
    """Seed of rank ``rank``'s dropout stream in ``epoch`` under torchrun:
    ranks draw different masks, and a resumed run draws the same ones."""
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])


class Run:
    """One run being trained: built by :meth:`~srs_core.training.loop.Run.setup`, then one call per
    epoch of :meth:`train_epoch` and :meth:`evaluate`. Every runtime choice
    (device, graph, data parallel, where batches are made) is settled here."""

    def __init__(self, config: TrainConfig, run_dir: Path, dist: Dist, device: torch.device, quiet: bool) -> None:
        self.config, self.run_dir, self.dist, self.device, self.quiet = config, run_dir, dist, device, quiet
        bound_heap()  # before the first large block: a step's big transient buffers never fragment the heap
        loss_class(config.loss).check_device(config, device)  # before the run directory is made
        self.ds = ProcessedDataset.load(config.data)
        self.identity, self.key = run_key(config, self.ds)
        self.selects_on = config.selects_on(self.ds)

    def setup(self) -> "Run":
        """Settle the runtime choices, then build the model, the step (loss,
        optimizer, random streams) and the data."""
        if self.dist.active and self.config.batch_size < self.dist.world:
            raise ValueError(f"--batch-size {self.config.batch_size} is the global batch: it must be at least the "
                             f"number of processes ({self.dist.world})")
        if self.dist.active and self.config.batching == "sessions":  # refused before any data or model is made
            raise ValueError("--batching sessions does not train under torchrun (a session's prefixes would be split "
                             "across ranks); use --batching buckets there")
        self.graphed = use_graph(self.config, self.device, self.dist)
        # batches made on the device (sessions batches are made by numpy and moved, like on a CPU)
        self.on_device = (self.graphed or self.dist.active or self.device.type == "cuda") and self.config.batching != "sessions"
        self._setup_model()
        self._setup_step()
        self._setup_data()
        return self

    def _setup_model(self) -> None:
        c = self.config
        torch.manual_seed(c.seed)
        self.model = build_model(c.model, self.ds.n_items, dim=c.dim, sparse=embedding_is_sparse(c.optimizer)).to(self.device)

    def _setup_step(self) -> None:
        """The loss, the optimizer and the step that uses them (the graphed step owns its optimizer)."""
        c, dev = self.config, self.device
        opt = None if self.graphed else build_optimizer(self.model, c.optimizer, lr=c.lr)
        loss_fn = build_loss(c.loss, counts=self.ds.item_counts(), device=dev, settings=c)  # the loss reads its own options
        self.loss_kernel = getattr(loss_fn, "kernel", None)
        self.np_gen = np.random.default_rng(c.seed)
        self.torch_gen = torch.Generator(device=dev)
        self.torch_gen.manual_seed(c.seed)
        if self.graphed:
            self.step = GraphedTrainStep(self.model, loss_fn, batch_size=c.batch_size, max_len=c.max_len, l2=c.l2,
                                         optimizer=c.optimizer, lr=c.lr, generator=self.torch_gen, dist=self.dist)
        else:
            self.step = TrainStep(self.model, loss_fn, opt, l2=c.l2, generator=self.torch_gen, dist=self.dist)
        self.opt = self.step.opt

    def _setup_data(self) -> None:
        c = self.config
        self.train_split = DeviceSplit(self.ds.train, self.device, c.max_len) if self.on_device else None
        self.test_split = DeviceSplit(self.ds.test, self.device, c.max_len) if self.on_device else None
        self.valid_split = (DeviceSplit(self.ds.valid, self.device, c.max_len)
                            if self.on_device and self.ds.valid is not None else None)
        self.n_batches = (count_session_batches(self.ds.train, c.batch_size, c.max_len) if c.batching == "sessions"
                          else n_batches(self.ds.train, c.batch_size))  # the same for both prefix batchings

    def resume(self, force: bool) -> tuple[int, list[dict]]:
        """The last epoch trained and the epochs' records, restored from the
        checkpoint (``(0, [])`` with ``force`` or without one)."""
        ckpt = None if force else read_checkpoint(self.run_dir / CHECKPOINT, self.key, self.device)
        if ckpt is not None:
            self.model.load_state_dict(ckpt["model"])
            load_optimizer_state(self.opt, ckpt["optimizer"])
            restore_rng(ckpt["rng"], self.np_gen, self.torch_gen)
        start = ckpt["epoch"] if ckpt is not None else 0
        if self.dist.active and distributed.all_sum([float(start != distributed.broadcast(start, self.dist))],
                                                    self.device)[0]:
            raise RuntimeError(f"the processes found different checkpoints in {self.run_dir}: under torchrun "
                               "--nnodes, --output must be a folder that every machine sees")
        return start, list(ckpt["epochs"]) if ckpt is not None else []

    def batches(self):
        """This epoch's shuffled training batches ``(items, lengths, targets)``."""
        c = self.config
        if self.on_device:
            order, bounds = batch_order(self.train_split.prefix_lengths, c.batch_size, self.np_gen, c.batching, c.max_len)
            return self.train_split.batches(self.train_split.order(order), c.batch_size, bounds)  # one transfer
        batches = iter_batches(self.ds.train, c.batch_size, shuffle=True, generator=self.np_gen, max_len=c.max_len,
                               batching=c.batching)
        return ((b.items, b.lengths, b.targets) for b in (b.to(self.device) for b in batches))

    def train_epoch(self, epoch: int) -> tuple[float, float]:
        """One pass over the training split: ``(mean loss, seconds)``."""
        self.model.train()
        if self.dist.active:
            torch.manual_seed(_rank_seed(self.config.seed, epoch, self.dist.rank))
        sync(self.device)
        t0 = time.perf_counter()
        # the loss is summed as the epoch goes (on the device, no host sync): nothing a step makes outlives it
        total, steps = torch.zeros((), dtype=torch.float64, device=self.device), 0
        for batch in progress(self.batches(), self.n_batches, desc=f"epoch {epoch}", disable=self.quiet, leave=False):
            total += self.step(*batch)
            steps += 1
        mean_loss = total / steps if steps else torch.tensor(float("nan"))
        if self.dist.active:
            mean_loss = torch.tensor(distributed.all_sum([float(mean_loss)], self.device)[0])
        mean_loss = float(mean_loss)
        sync(self.device)
        seconds = time.perf_counter() - t0
        if not np.isfinite(mean_loss):
            raise FloatingPointError(f"training loss became {mean_loss} in epoch {epoch} of {self.config}; lower --lr")
        return mean_loss, seconds

    def evaluate(self) -> tuple[dict, float, "np.ndarray | None"]:
        """P@20 and MRR@20 on the test split and, where there is one, on the
        validation split (``valid_*`` keys): ``(metrics, seconds, test ranks)``.
        The ranks are ``None`` under torchrun (each process ranks its share)."""
        c, t0 = self.config, time.perf_counter()
        kw = dict(l2=c.l2, device=self.device, batch_size=c.eval_batch_size, item_chunk=c.eval_item_chunk,
                  max_len=c.max_len, quiet=self.quiet, dist=self.dist)
        metrics = {}
        if self.ds.valid is not None:
            valid = evaluate(self.model, self.ds.valid, on_device=self.valid_split, **kw)
            metrics.update({f"valid_{k}": v for k, v in valid.items()})
        test, ranks = evaluate(self.model, self.ds.test, on_device=self.test_split, return_ranks=True, **kw)
        return {**test, **metrics}, time.perf_counter() - t0, ranks

    def record(self, epochs: list[dict]) -> dict:
        """The run record (status ``running``) with the environment it runs in."""
        env = environment(self.device)
        env.update(train_step="cuda-graph" if self.graphed and self.device.type == "cuda" else
                   "static-eager" if self.graphed else "eager", batches="device" if self.on_device else "numpy",
                   world_size=self.dist.world, distributed_backend=self.dist.backend,
                   **({"loss_kernel": self.loss_kernel} if self.loss_kernel else {}))
        return {"kind": "neural", "config": dataclasses.asdict(self.config), "identity": self.identity,
                "config_hash": self.key, "status": "running", "n_items": self.ds.n_items,
                "dataset_stats": self.ds.stats, "selected_on": self.selects_on, "epochs": epochs,
                "best": best_epoch(epochs, self.selects_on), "environment": env}

    def save_checkpoint(self, epochs: list[dict]) -> None:
        save_checkpoint(self.run_dir / CHECKPOINT, self.model, self.opt, self.np_gen, self.torch_gen, epochs, self.key)


def fit(config: TrainConfig, run_dir: str | Path, *, force: bool = False, quiet: bool = False) -> dict:
    """Train (or resume, or skip) one run; return its complete record.
    Under torchrun every process calls it (:mod:`srs_core.training.distributed`)."""
    with distributed.session(config.device) as (dist, device):
        return _fit(config, Path(run_dir), force=force, quiet=quiet or not dist.main, dist=dist,
                    device=device or resolve_device(config.device))


def _fit(config: TrainConfig, run_dir: Path, *, force: bool, quiet: bool, dist: Dist, device: torch.device) -> dict:
    run = Run(config, run_dir, dist, device, quiet)
    if dist.main:
        claim(run_dir, run.key, run.identity, force)  # another configuration's run is refused, or moved aside
    done = read_record(run_dir)
    if distributed.broadcast(is_complete(done, run.key) and not force, dist):  # rank 0 decides for all
        return distributed.broadcast(done, dist)
    with RunLock(run_dir) if dist.main else contextlib.nullcontext():
        return _train(run, force)


def _train(run: Run, force: bool) -> dict:
    config, run_dir, dist, device, quiet = run.config, run.run_dir, run.dist, run.device, run.quiet
    run.setup()
    start, epochs = run.resume(force)
    record = run.record(epochs)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    if dist.main:
        atomic_write_json(run_dir / "result.json", record)

    on = run.selects_on
    for epoch in tqdm(range(start + 1, config.epochs + 1), desc=f"{config.model}/{config.loss}/{config.optimizer}",
                      initial=start, total=config.epochs, disable=quiet):
        if stopped_early(epochs, config.patience, on):
            break  # a resumed run that had already stopped
        # forward, backward and update over the epoch; then evaluate (validation and test splits)
        loss, train_seconds = run.train_epoch(epoch)
        metrics, eval_seconds, ranks = run.evaluate()
        # every rank keeps rank 0's record of the epoch, so all stop together
        epochs.append(distributed.broadcast({"epoch": epoch, "loss": loss, "train_seconds": train_seconds,
                                             "eval_seconds": eval_seconds, **metrics}, dist))
        # ranks and weights of a newly chosen epoch, then the checkpoint, then the record: a kill between
        # any two loses nothing (resume trusts the checkpoint, and a retrained epoch ranks the same)
        if dist.main:
            if best_epoch(epochs, on)["epoch"] == epoch:
                if ranks is not None:
                    atomic_write_ranks(run_dir / RANKS, ranks)
                save_weights(run_dir / CHOSEN_WEIGHTS, run.model, epoch, run.key)
            run.save_checkpoint(epochs)
            record.update(epochs=epochs, best=best_epoch(epochs, on), **peak_memory(device))
            atomic_write_json(run_dir / "result.json", record)

    record.update(status="complete", epochs=epochs, best=best_epoch(epochs, on), stopped_epoch=epochs[-1]["epoch"] if
                  epochs else 0, stopped_early=stopped_early(epochs, config.patience, on),
                  ranks=RANKS if (run_dir / RANKS).is_file() else None,
                  weights=CHOSEN_WEIGHTS if (run_dir / CHOSEN_WEIGHTS).is_file() else None, **peak_memory(device))
    if dist.main:
        atomic_write_json(run_dir / "result.json", record)
    return record


def run_in_store(store: ResultsStore | str | Path, config: TrainConfig, *, force: bool = False, quiet: bool = False) -> dict:
    """Run ``config`` in the results store (skipped when already complete)."""
    store = store if isinstance(store, ResultsStore) else ResultsStore(store)
    _, key = run_key(config)
    rec = store.get(key)
    if is_complete(rec, key) and not force:
        return rec
    return fit(config, store.run_dir(key), force=force, quiet=quiet)
