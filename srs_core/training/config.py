"""What defines a run: :class:`TrainConfig`, its key in the results store,
and its ``srs train`` flags (each field owns its default and its help).

The fields of training itself are declared here (:class:`RunFields`); every
loss's options are declared beside the loss (:mod:`srs_core.losses`) and
become fields of ``TrainConfig`` under the same flat names, with their
flags, checks and identity rules."""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from srs_core.data.dataset import BATCHINGS, ProcessedDataset
from srs_core.losses import LOSSES, check_settings, identity_options, loss_class
from srs_core.losses.registry import with_options
from srs_core.losses.options import spec_of
from srs_core.models import MODELS
from srs_core.optim import OPTIMIZERS, check_combination
from srs_core.results import config_hash

GRAPH_MODES = ("auto", "on", "off")
SELECT_MODES = ("valid", "test")
EXTENSIONS_GROUP = "extensions (not in the dissertation; the defaults are its setting)"


def _flag(default, help: str, *, group: str | None = None, **argparse_kw):
    """A field that is also an ``srs train`` flag (``--name-with-dashes``)."""
    return field(default=default, metadata={"cli": {"help": help, "group": group, **argparse_kw}})


@dataclass(frozen=True)
class RunFields:
    """The fields of a run that belong to training itself. Defaults follow dissertation Section 4.6."""

    data: str = field(metadata={"cli": {"help": "processed dataset directory", "required": True, "type": Path}})
    model: str = _flag("stamp", "session encoder", required=True, choices=sorted(MODELS))
    loss: str = _flag("ce", "the training loss: " + "; ".join(f"{n}: {cls.label}" for n, cls in LOSSES.items()),
                      choices=sorted(LOSSES))
    optimizer: str = _flag("dense", "dense: Adam everywhere; sparse: torch SparseAdam on item embeddings; sparse_fast: "
                           "our faster lazy Adam with SparseAdam's semantics", choices=sorted(OPTIMIZERS))
    l2: bool = _flag(False, "L2-normalise session and item embeddings when comparing them (Section 4.2)",
                     action=argparse.BooleanOptionalAction)
    epochs: int = _flag(8, "epochs to train (dissertation: 8)")
    batch_size: int = _flag(128, "sessions per step; under torchrun the global batch")
    lr: float = _flag(1e-3, "Adam learning rate")
    dim: int = _flag(100, "embedding size d")
    max_len: int = 25
    seed: int = _flag(0, "seed of the weights, the shuffle and the negatives")
    patience: int = _flag(0, "stop after this many epochs without a better MRR@20 on the selection split (0: off)",
                          group=EXTENSIONS_GROUP)
    select: str = _flag("valid", "where the reported epoch is chosen (and --patience watches): valid, the validation "
                        "split, then the test metrics of that epoch are reported (default; a dataset without a "
                        "validation split falls back to test); test: the best test epoch, the dissertation's protocol",
                        group=EXTENSIONS_GROUP, choices=list(SELECT_MODES))
    batching: str = _flag("samples", "how an epoch's shuffled samples form batches: samples, runs of one permutation "
                          "(the dissertation's setting, default); buckets, samples of similar prefix length batched "
                          "together within pools of 64 batches, the batches then shuffled, so a batch pads to about "
                          "its own length (3.9-4.6x faster steps for GRU4Rec, NARM and SR-GNN on Diginetica); sessions, whole sessions "
                          "of similar length, each read once by the encoder, with a target at every position "
                          "(GRU4Rec, NARM, STAMP: the same samples in one pass per session)",
                          group=EXTENSIONS_GROUP, choices=list(BATCHINGS))
    # These change where and how fast a run goes, not its result: they are
    # left out of the config hash.
    device: str = _flag("auto", "auto (CUDA when present), cpu, or cuda[:N]")
    eval_batch_size: int = 256
    eval_item_chunk: int = 0  # items scored at once in evaluation; 0: the device's default (evaluate.AUTO_ITEM_CHUNK)
    graph: str = _flag("auto", "replay each training step from a CUDA graph: auto (default) where the device is CUDA "
                       "and the pairing allows it (a sampled loss with sparse_fast, or dense Adam), on (on CPU: the "
                       "same static-shape step run eagerly), off; never changes the run's config hash. Under torchrun "
                       "(`torchrun --nproc_per_node K -m srs_core.cli train ...`) the run is data-parallel and "
                       "--batch-size is the global batch", choices=list(GRAPH_MODES))

    RUNTIME_FIELDS = ("data", "device", "eval_batch_size", "eval_item_chunk", "graph")
    #: Training fields left out of the identity at these values (an extension at its default).
    EXTENSION_DEFAULTS = {"patience": 0, "batching": "samples"}

    def __post_init__(self) -> None:
        check_config(self)

    def selects_on(self, ds: ProcessedDataset) -> str:
        """The split that chooses the epoch: ``valid`` where asked and the
        dataset has one, else ``test``."""
        return "valid" if self.select == "valid" and ds.valid is not None else "test"

    def identity(self, dataset_fingerprint: str, selects_on: str = "test") -> dict:
        """The fields that define the result, with the dataset by content and
        the split that chooses the epoch. An extension left at its default is
        left out (selection on test, the dissertation's, counts as one), so
        every run recorded before the extension existed keeps its hash; each
        loss option enters by its own rule (:mod:`srs_core.losses.options`)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(RunFields)
             if f.name not in self.RUNTIME_FIELDS and f.name != "select"
             and not (f.name in self.EXTENSION_DEFAULTS and getattr(self, f.name) == self.EXTENSION_DEFAULTS[f.name])}
        d.update(identity_options(self))
        if selects_on != "test":
            d["select"] = selects_on
        d["dataset"] = dataset_fingerprint
        return d

    # -- the command line ------------------------------------------------
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add one ``--flag`` per field that has a ``cli`` entry, with its
        default and help, to ``parser`` (``srs train``)."""
        groups: dict[str, argparse._ArgumentGroup] = {}
        for f in dataclasses.fields(cls):
            spec = dict(_cli(f))
            if not spec:
                continue
            group = spec.pop("group", None)
            target = groups.setdefault(group, parser.add_argument_group(group)) if group else parser
            if "action" not in spec and "type" not in spec:
                spec["type"] = type(f.default)
            if f.default is not dataclasses.MISSING and not spec.get("required"):
                spec["default"] = f.default
            target.add_argument("--" + f.name.replace("_", "-"), dest=f.name, **spec)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "TrainConfig":
        """The config of parsed ``srs train`` flags (the others keep their defaults)."""
        given = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if _cli(f)}
        given["data"] = str(given["data"])
        return cls(**given)


def _cli(f: dataclasses.Field) -> dict:
    """A field's flag spec: a training field's own, or a loss option's (an
    option that enters the identity only when changed is an extension)."""
    if "cli" in f.metadata:
        return f.metadata["cli"]
    if "option" in f.metadata:
        spec = spec_of(f)
        group = None if spec.identity == "always" else EXTENSIONS_GROUP
        return {"help": spec.help, "group": group, **spec.cli}
    return {}


#: Everything that defines a run: :class:`RunFields` and every loss's options.
TrainConfig = with_options("TrainConfig", RunFields, "Everything that defines a run: training's fields "
                           "(:class:`RunFields`) and every loss's options, declared beside each loss. Defaults follow "
                           "dissertation Section 4.6.")


def check_config(config: "TrainConfig") -> None:
    """Refuse a config that cannot run, with a message naming the field or
    flag and the fix (called by every :class:`TrainConfig` on creation)."""
    if config.model not in MODELS:
        raise ValueError(f"unknown model {config.model!r}; choose one of {sorted(MODELS)}")
    cls = loss_class(config.loss)
    if config.optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {config.optimizer!r}; choose one of {sorted(OPTIMIZERS)}")
    check_combination(config.loss, config.optimizer, dense_gradient=cls.dense_gradient)
    for name in ("epochs", "batch_size", "dim", "max_len"):
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be at least 1, got {getattr(config, name)}")
    check_settings(config.loss, config)
    if config.score_scale != 1.0 and not config.l2:
        raise ValueError(f"score_scale={config.score_scale} multiplies L2-normalised scores: add --l2 "
                         "(l2=True) or leave the scale at 1")
    if config.batching not in BATCHINGS:
        raise ValueError(f"batching must be one of {', '.join(BATCHINGS)}, got {config.batching!r}")
    if config.batching == "sessions":
        model = MODELS[config.model]
        if not model.one_pass:
            raise ValueError(f"--batching sessions needs an encoder with a one-pass form, and {model.label} has none: "
                             f"{model.no_one_pass_reason}. Use --batching buckets for it")
        if config.graph == "on":
            raise ValueError("--batching sessions makes batches of varying shape, which a CUDA graph cannot replay: "
                             "use --graph auto or off with it")
    if config.select not in SELECT_MODES:
        raise ValueError(f"select must be 'valid' or 'test', got {config.select!r}")
    if config.patience < 0:
        raise ValueError(f"patience must be 0 (off) or a positive number of epochs, got {config.patience}")
    if config.device not in ("auto", "cpu") and not config.device.startswith("cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {config.device!r}")
    if config.device != "auto":  # auto is resolved, and checked, when the run starts
        cls.check_device(config, config.device)
    if config.graph not in GRAPH_MODES:
        raise ValueError(f"graph must be 'auto', 'on' or 'off', got {config.graph!r}")
    if config.graph == "on":
        from .graph import graph_support

        reason = graph_support(config)
        if reason is not None:
            raise ValueError(f"--graph on: {reason}; use --graph auto (graphs where it can) or off")


def dataset_fingerprint(ds: ProcessedDataset) -> str:
    """The first 16 hex digits of the arrays' sha256 (checked when the dataset
    loaded): the same data gives the same runs, wherever it lies on disk."""
    return ds.content_sha256[:16]


def run_key(config: TrainConfig, ds: ProcessedDataset | None = None) -> tuple[dict, str]:
    """``(identity, key)`` of ``config``: what defines its result, and its
    hash, the run's name in the results store."""
    ds = ds if ds is not None else ProcessedDataset.load(config.data)
    identity = config.identity(dataset_fingerprint(ds), config.selects_on(ds))
    return identity, config_hash(identity)
