"""The four session encoders of the dissertation's Chapter 3, behind one interface.

Every model is a :class:`~srs_core.models.base.SessionEncoder`: it owns the
item embedding table and maps a padded batch to one vector per session; the
loss, L2 normalisation and evaluation are chosen outside the model.
"""
from __future__ import annotations

import inspect

from .base import SessionEncoder
from .gru4rec import GRU4Rec
from .narm import NARM
from .srgnn import SRGNN
from .stamp import STAMP

MODELS: dict[str, type[SessionEncoder]] = {
    "gru4rec": GRU4Rec,
    "narm": NARM,
    "stamp": STAMP,
    "srgnn": SRGNN,
}


def build_model(
    name: str, n_items: int, *, dim: int = 100, sparse: bool = False, **hyper
) -> SessionEncoder:
    """Build model ``name`` with its paper defaults, overridden by ``hyper``.

    ``hyper`` holds the model's own keyword arguments (``hidden_size`` for
    GRU4Rec and NARM, ``step`` for SR-GNN, ...); an unknown one raises.
    """
    try:
        cls = MODELS[name]
    except KeyError:
        raise ValueError(
            f"unknown model {name!r}; choose one of {', '.join(sorted(MODELS))}"
        ) from None
    params = inspect.signature(cls.__init__).parameters
    allowed = sorted(k for k, p in params.items() if p.kind is p.KEYWORD_ONLY)
    unknown = sorted(set(hyper) - set(allowed))
    if unknown:
        raise ValueError(
            f"model {name!r} has no hyperparameter {', '.join(unknown)}; "
            f"its hyperparameters are: {', '.join(allowed) or 'none'}"
        )
    return cls(n_items, dim, sparse, **hyper)


__all__ = ["MODELS", "SessionEncoder", "build_model", "GRU4Rec", "NARM", "STAMP", "SRGNN"]
