"""Which optimizers exist, which pairings work, and building them for a model."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .rowadam import FastSparseAdam
from .routing import RowGradSink, route_lookups

OPTIMIZERS: dict[str, str] = {
    "dense": "Adam over every parameter (Algorithm 1)",
    "sparse": "torch.optim.SparseAdam on the item embedding + Adam on the rest (Algorithm 2)",
    "sparse_fast": "SparseAdam's update done with dense index ops (same numbers, faster) + Adam on the rest",
}

SPARSE_KINDS = ("sparse", "sparse_fast")


def _check_kind(kind: str) -> None:
    if kind not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {kind!r}; choose one of {', '.join(OPTIMIZERS)}")


def embedding_is_sparse(kind: str) -> bool:
    """The ``sparse=`` flag a model's item embedding needs for optimizer ``kind``."""
    _check_kind(kind)
    return kind in SPARSE_KINDS


def check_combination(loss_name: str, optimizer_kind: str, *, dense_gradient: bool) -> None:
    """Raise a clear ``ValueError`` for a loss x optimizer pairing that cannot work.

    A loss whose item-table gradient is dense (``dense_gradient``, as the loss
    declares it: full cross-entropy) needs ``dense``. Every other loss, whose
    gradient reaches only the rows it looked up, works with all three."""
    _check_kind(optimizer_kind)
    if dense_gradient and optimizer_kind in SPARSE_KINDS:
        raise ValueError(
            f"full cross-entropy (--loss {loss_name}) cannot use --optimizer {optimizer_kind}: "
            "its gradient touches every item row; use --optimizer dense or a loss that samples its candidates"
        )


class OptimizerSet:
    """One or two optimizers stepped together (item embedding + the rest)."""

    def __init__(self, kind: str, optimizers: dict[str, Any]) -> None:
        self.kind = kind
        self.optimizers = optimizers

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for opt in self.optimizers.values():
            opt.step()

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("kind") != self.kind:
            raise ValueError(
                f"the checkpoint's optimizer is {state.get('kind')!r} but this run uses {self.kind!r}; "
                "resume with the same --optimizer"
            )
        missing = set(self.optimizers) ^ set(state["optimizers"])
        if missing:
            raise ValueError(f"optimizer state does not match this model (parts {sorted(missing)})")
        for k, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][k])

    def __repr__(self) -> str:
        return f"OptimizerSet({self.kind!r}, parts={list(self.optimizers)})"


def build_optimizer(
    model: nn.Module,
    kind: str,
    lr: float = 1e-3,
    *,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    static_shapes: bool = False,
    capturable: bool = False,
    route: bool = True,
) -> OptimizerSet:
    """The optimizers of ``model`` (which owns ``item_embedding``) for ``kind``.

    ``static_shapes`` (``sparse_fast`` only) selects the sort-free,
    shape-static step usable inside a CUDA graph; ``capturable`` makes the
    dense Adam capturable (CUDA graphs). ``route=False`` leaves the
    embedding's lookups alone so ``sparse_fast`` reads the COO gradient of a
    ``sparse=True`` table (only for benchmarking the two routes).
    """
    _check_kind(kind)
    emb = getattr(model, "item_embedding", None)
    if not isinstance(emb, nn.Embedding):
        raise TypeError("build_optimizer needs a model with an nn.Embedding `item_embedding` (a SessionEncoder)")
    if static_shapes and kind != "sparse_fast":
        raise ValueError("static_shapes only applies to --optimizer sparse_fast")
    # Adam's fused kernel (CPU and CUDA) does the same arithmetic in one pass;
    # CUDA graphs use the capturable multi-tensor version instead.
    adam_kw = dict(lr=lr, betas=betas, eps=eps)
    if capturable:
        adam_kw["capturable"] = True
    else:
        adam_kw["fused"] = True
    if kind == "dense":
        if emb.sparse:
            raise ValueError(
                "the dense optimizer needs a dense item embedding: build the model with "
                "sparse=embedding_is_sparse('dense') (False)"
            )
        return OptimizerSet(kind, {"all": torch.optim.Adam(model.parameters(), **adam_kw)})
    rest = [p for p in model.parameters() if p is not emb.weight and p.requires_grad]
    parts: dict[str, Any] = {}
    if kind == "sparse":
        if not emb.sparse:
            raise ValueError(
                "SparseAdam needs sparse gradients: build the model with sparse=embedding_is_sparse('sparse') (True)"
            )
        parts["embedding"] = torch.optim.SparseAdam([emb.weight], lr=lr, betas=betas, eps=eps)
    else:
        sink = None
        if route or static_shapes:
            sink = RowGradSink(emb.weight, emb.padding_idx, static_shapes)
            route_lookups(emb, sink)
        elif not emb.sparse:
            raise ValueError("sparse_fast with route=False reads COO gradients: build the model with sparse=True")
        parts["embedding"] = FastSparseAdam(
            emb.weight, lr=lr, betas=betas, eps=eps, static_shapes=static_shapes, sink=sink
        )
    if rest:
        parts["rest"] = torch.optim.Adam(rest, **adam_kw)
    return OptimizerSet(kind, parts)
