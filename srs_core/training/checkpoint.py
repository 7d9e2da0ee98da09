"""A run's checkpoint: model, optimizer and every random stream, after each epoch.

The checkpoint also carries the per-epoch records, so a run killed between
writing it and writing ``result.json`` loses nothing: resuming trusts the
checkpoint. It is written atomically (temporary file, then rename).
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from srs_core.results import atomic_write_bytes

CHECKPOINT = "checkpoint.pt"
#: The model's weights at the run's chosen epoch (what its test metrics were read
#: from, and what :mod:`srs_core.recommend` serves), beside the checkpoint.
CHOSEN_WEIGHTS = "model.pt"


def rng_state(np_gen: np.random.Generator, torch_gen: torch.Generator) -> dict:
    """Every random stream a run draws from: shuffling (numpy), negatives
    (the run's torch generator) and dropout (torch's global generators)."""
    state = {"numpy": np_gen.bit_generator.state, "torch": torch_gen.get_state(), "torch_global": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda_global"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict, np_gen: np.random.Generator, torch_gen: torch.Generator) -> None:
    np_gen.bit_generator.state = state["numpy"]
    # map_location moved the saved RNG states to the run's device; the setters want CPU ByteTensors
    torch_gen.set_state(state["torch"].cpu())
    torch.set_rng_state(state["torch_global"].cpu())
    if "cuda_global" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_global"]])


def save_checkpoint(path: Path, model, opt, np_gen, torch_gen, epochs: list[dict], key: str) -> None:
    buf = io.BytesIO()
    torch.save({"config_hash": key, "epoch": epochs[-1]["epoch"], "epochs": epochs, "model": model.state_dict(),
                "optimizer": opt.state_dict(), "rng": rng_state(np_gen, torch_gen)}, buf)
    atomic_write_bytes(path, buf.getvalue())


def save_weights(path: Path, model, epoch: int, key: str) -> None:
    """The model's weights as they are after ``epoch``, written atomically."""
    buf = io.BytesIO()
    torch.save({"config_hash": key, "epoch": epoch, "model": model.state_dict()}, buf)
    atomic_write_bytes(path, buf.getvalue())


def read_checkpoint(path: Path, key: str, device: torch.device) -> dict | None:
    """The checkpoint at ``path`` (None if there is none). An unreadable one,
    or one of another run, raises a ``ValueError`` that says how to restart."""
    if not path.is_file():
        return None
    try:
        ckpt = torch.load(path, map_location=device, weights_only=False)
    except Exception as exc:  # torch raises RuntimeError, EOFError, pickle errors... for a damaged file
        raise ValueError(f"{path}: the checkpoint cannot be read ({type(exc).__name__}: {str(exc)[:120]}); delete it "
                         "to restart this run from epoch 0, or pass --force") from None
    if not isinstance(ckpt, dict) or "epochs" not in ckpt:
        raise ValueError(f"{path}: not a checkpoint of `srs train`; delete it to restart this run from epoch 0, or "
                         "pass --force")
    if ckpt.get("config_hash") != key:
        raise ValueError(f"{path} belongs to another configuration (run {ckpt.get('config_hash')}, this one is {key}); "
                         "delete it to restart this run from epoch 0, or pass --force")
    return ckpt


def load_optimizer_state(opt, state: dict) -> None:
    """Load a checkpoint's optimizer state, keeping this run's Adam kind
    (fused, or capturable for a CUDA graph): the graph mode is a runtime
    choice, so a run checkpointed in one mode may resume in the other."""
    kinds = {name: [{k: g[k] for k in ("capturable", "fused", "foreach") if k in g} for g in part.param_groups]
             for name, part in opt.optimizers.items() if isinstance(part, torch.optim.Optimizer)}
    opt.load_state_dict(state)
    for name, groups in kinds.items():
        for group, kind in zip(opt.optimizers[name].param_groups, groups):
            group.update(kind)
