"""What defines a run: :class:`TrainConfig`, its key in the results store,
and its ``srs train`` flags (each field owns its default and its help)."""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from srs_core.data.dataset import BATCHINGS, ProcessedDataset
from srs_core.losses import CCE_KERNELS, LOGQ_MODES, LOSSES, ChunkedCrossEntropy
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
class TrainConfig:
    """Everything that defines a run. Defaults follow dissertation Section 4.6."""

    data: str = field(metadata={"cli": {"help": "processed dataset directory", "required": True, "type": Path}})
    model: str = _flag("stamp", "session encoder", required=True, choices=sorted(MODELS))
    loss: str = _flag("ce", "ce: full cross-entropy; ns: negative sampling with mean noise term (Eq. 4.1); triplet: "
                      "triplet against item embeddings (Eq. 4.2); sampled_softmax: shared negatives with logQ correction; "
                      "gbce: gSASRec's generalised BCE (--gbce-t); cce: exact cross-entropy in item chunks, without the "
                      "N-wide logits (dense optimizer); sce: scalable cross-entropy over random-projection buckets of "
                      "hard negatives (--sce-buckets, --sce-bucket-size)",
                      choices=sorted(LOSSES))
    optimizer: str = _flag("dense", "dense: Adam everywhere; sparse: torch SparseAdam on item embeddings; sparse_fast: "
                           "our faster lazy Adam with SparseAdam's semantics", choices=sorted(OPTIMIZERS))
    l2: bool = _flag(False, "L2-normalise session and item embeddings when comparing them (Section 4.2)",
                     action=argparse.BooleanOptionalAction)
    epochs: int = _flag(8, "epochs to train (dissertation: 8)")
    batch_size: int = _flag(128, "sessions per step; under torchrun the global batch")
    lr: float = _flag(1e-3, "Adam learning rate")
    dim: int = _flag(100, "embedding size d")
    negatives: int = _flag(100, "negatives per sample (k)")
    margin: float = _flag(0.5, "triplet margin m")
    sampling: str = _flag("uniform", "negative distribution: uniform, popularity^alpha, or mixed (extension: "
                          "(1-mix) uniform + mix popularity^alpha)", choices=["uniform", "popularity", "mixed"])
    alpha: float = _flag(0.75, "exponent for popularity sampling")
    max_len: int = 25
    seed: int = _flag(0, "seed of the weights, the shuffle and the negatives")
    # Extensions (not in the dissertation); their defaults are its setting.
    score_scale: float = _flag(1.0, "multiply the L2-normalised scores by S in every loss (needs --l2; default 1)",
                               group=EXTENSIONS_GROUP, metavar="S")
    shared_negatives: bool = _flag(False, "ns/triplet: one set of k negatives shared by the whole batch (more "
                                   "negatives, same cost)", group=EXTENSIONS_GROUP, action="store_true")
    mix: float = _flag(0.5, "popularity share of --sampling mixed (default 0.5)", group=EXTENSIONS_GROUP)
    gbce_t: float = _flag(0.75, "gbce: the calibration t in [0, 1] (0: plain BCE; default 0.75, the authors' "
                          "recommendation)", group=EXTENSIONS_GROUP, metavar="T")
    gbce_offset: bool = _flag(False, "gbce: add log(beta / k), the best constant score, to every logit, so that the k "
                              "negatives do not pull all scores down together (ours; the ranking is unchanged)",
                              group=EXTENSIONS_GROUP, action="store_true")
    cce_kernel: str = _flag("chunked", "cce: chunked, our exact float32 implementation in item chunks (any device; "
                            "default); cut, the Triton kernel of the cut-cross-entropy package (CUDA, where the "
                            "package is installed), which takes bf16 session vectors, so its loss and gradients are "
                            "cross-entropy's rounded to bf16; never graphed", group=EXTENSIONS_GROUP,
                            choices=list(CCE_KERNELS))
    sce_buckets: int = _flag(8, "sce: the number of random bucket vectors per batch (default 8)",
                             group=EXTENSIONS_GROUP, metavar="NB")
    sce_bucket_size: int = _flag(256, "sce: sessions and items per bucket, clamped to the batch and the catalogue "
                                 "(default 256)", group=EXTENSIONS_GROUP, metavar="BS")
    logq: str = _flag("single", "sampled_softmax's logQ correction: single, the sampler's q for every candidate "
                      "(default); mixed, in-batch targets by their training popularity and sampled negatives by q "
                      "(mixed negative sampling); corrected, as mixed with the positive uncorrected and out of the "
                      "denominator, weighted by 1 - its estimated probability (Khrylchenko et al. 2025)",
                      group=EXTENSIONS_GROUP, choices=list(LOGQ_MODES))
    patience: int = _flag(0, "stop after this many epochs without a better MRR@20 on the selection split (0: off)",
                          group=EXTENSIONS_GROUP)
    select: str = _flag("valid", "where the reported epoch is chosen (and --patience watches): valid, the validation "
                        "split, then the test metrics of that epoch are reported (default; a dataset without a "
                        "validation split falls back to test); test: the best test epoch, the dissertation's protocol",
                        group=EXTENSIONS_GROUP, choices=list(SELECT_MODES))
    batching: str = _flag("samples", "how an epoch's shuffled samples form batches: samples, runs of one permutation "
                          "(the dissertation's setting, default); buckets, samples of similar prefix length batched "
                          "together within pools of 64 batches, the batches then shuffled, so a batch pads to about "
                          "its own length (3.9-4.6x faster steps for GRU4Rec, NARM and SR-GNN on Diginetica)",
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
        every run recorded before the extension existed keeps its hash. The
        sce loss's bucketing is in the identity of every sce run and of no
        other."""
        d = {k: v for k, v in dataclasses.asdict(self).items()
             if k not in self.RUNTIME_FIELDS and not (k in _EXTENSION_DEFAULTS and v == _EXTENSION_DEFAULTS[k])}
        d.pop("select")
        if selects_on != "test":
            d["select"] = selects_on
        if self.sampling == "mixed":
            d["mix"] = self.mix  # part of the result whenever the mixture is used
        else:
            d.pop("mix", None)
        for k in _SCE_DEFAULTS:  # sce's bucketing is part of every sce run and of no other
            if self.loss == "sce":
                d[k] = getattr(self, k)
            else:
                d.pop(k, None)
        d["dataset"] = dataset_fingerprint
        return d

    # -- the command line ------------------------------------------------
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add one ``--flag`` per field that has a ``cli`` entry, with its
        default and help, to ``parser`` (``srs train``)."""
        groups: dict[str, argparse._ArgumentGroup] = {}
        for f in dataclasses.fields(cls):
            spec = dict(f.metadata.get("cli") or {})
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
        given = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if f.metadata.get("cli")}
        given["data"] = str(given["data"])
        return cls(**given)


def check_config(config: "TrainConfig") -> None:
    """Refuse a config that cannot run, with a message naming the field or
    flag and the fix (called by every :class:`TrainConfig` on creation)."""
    if config.model not in MODELS:
        raise ValueError(f"unknown model {config.model!r}; choose one of {sorted(MODELS)}")
    if config.loss not in LOSSES:
        raise ValueError(f"unknown loss {config.loss!r}; choose one of {sorted(LOSSES)}")
    if config.optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {config.optimizer!r}; choose one of {sorted(OPTIMIZERS)}")
    check_combination(config.loss, config.optimizer)
    for name in ("epochs", "batch_size", "dim", "negatives", "max_len"):
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be at least 1, got {getattr(config, name)}")
    if config.sampling not in ("uniform", "popularity", "mixed"):
        raise ValueError(f"sampling must be 'uniform', 'popularity' or 'mixed', got {config.sampling!r}")
    if not config.score_scale > 0:
        raise ValueError(f"score_scale must be positive, got {config.score_scale}")
    if config.score_scale != 1.0 and not config.l2:
        raise ValueError(f"score_scale={config.score_scale} multiplies L2-normalised scores: add --l2 "
                         "(l2=True) or leave the scale at 1")
    if config.shared_negatives and config.loss not in ("ns", "triplet"):
        raise ValueError(f"shared_negatives applies to the ns and triplet losses, not {config.loss!r} "
                         "(sampled_softmax always shares its negatives; ce uses every item)")
    for name in ("sce_buckets", "sce_bucket_size"):
        if getattr(config, name) < 1:
            raise ValueError(f"{name} (--{name.replace('_', '-')}) must be at least 1, got {getattr(config, name)}")
    if config.loss != "sce" and any(getattr(config, k) != v for k, v in _SCE_DEFAULTS.items()):
        raise ValueError(f"--sce-buckets and --sce-bucket-size configure --loss sce, not {config.loss!r}: "
                         "leave them at their defaults")
    if config.gbce_offset and config.loss != "gbce":
        raise ValueError(f"--gbce-offset shifts gbce's logits, not {config.loss!r}'s: use --loss gbce or drop it")
    if config.cce_kernel not in CCE_KERNELS:
        raise ValueError(f"cce_kernel must be one of {', '.join(CCE_KERNELS)}, got {config.cce_kernel!r}")
    if config.cce_kernel != "chunked" and config.loss != "cce":
        raise ValueError(f"--cce-kernel {config.cce_kernel} chooses how cce runs, not {config.loss!r}: "
                         "use --loss cce or leave --cce-kernel chunked")
    if config.logq not in LOGQ_MODES:
        raise ValueError(f"logq must be one of {', '.join(LOGQ_MODES)}, got {config.logq!r}")
    if config.logq != "single" and config.loss != "sampled_softmax":
        raise ValueError(f"--logq {config.logq} corrects sampled_softmax's logits, not {config.loss!r}'s: "
                         "use --loss sampled_softmax or leave --logq single")
    if not 0.0 <= config.mix <= 1.0:
        raise ValueError(f"mix must be in [0, 1], got {config.mix}")
    if config.batching not in BATCHINGS:
        raise ValueError(f"batching must be one of {', '.join(BATCHINGS)}, got {config.batching!r}")
    if config.select not in SELECT_MODES:
        raise ValueError(f"select must be 'valid' or 'test', got {config.select!r}")
    if config.patience < 0:
        raise ValueError(f"patience must be 0 (off) or a positive number of epochs, got {config.patience}")
    if config.device not in ("auto", "cpu") and not config.device.startswith("cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {config.device!r}")
    if config.device != "auto":  # auto is resolved, and checked, when the run starts
        ChunkedCrossEntropy.check_device(config.cce_kernel, config.device)
    if config.graph not in GRAPH_MODES:
        raise ValueError(f"graph must be 'auto', 'on' or 'off', got {config.graph!r}")
    if config.graph == "on":
        from .graph import graph_support

        reason = graph_support(config.loss, config.optimizer, config.cce_kernel)
        if reason is not None:
            raise ValueError(f"--graph on: {reason}; use --graph auto (graphs where it can) or off")


_EXTENSION_DEFAULTS = {"score_scale": 1.0, "shared_negatives": False, "mix": 0.5, "patience": 0, "gbce_t": 0.75,
                       "gbce_offset": False, "cce_kernel": "chunked",
                       "logq": "single", "batching": "samples"}
#: Fields of the sce loss only: in the identity of every sce run, of no other.
_SCE_DEFAULTS = {"sce_buckets": 8, "sce_bucket_size": 256}


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
