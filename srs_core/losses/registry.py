"""The one table of losses (``srs train --loss``), and what it knows of their options.

Adding a loss means writing its file (the class, its options dataclass, its
facts) and adding it to :data:`LOSSES`. Everything else reads this table:
:class:`~srs_core.training.config.TrainConfig` takes :func:`option_fields` as
its own fields and checks a configuration with :func:`check_settings`;
:func:`build_loss` builds any loss from any object that carries the options as
attributes (a ``TrainConfig``, a benchmark's spec) or from keywords.
"""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from .base import Loss
from .cce import ChunkedCrossEntropy
from .ce import CrossEntropy
from .gbce import GeneralisedBCE
from .ns import NegativeSampling
from .options import OptionSpec, spec_of
from .sampled_softmax import SampledSoftmax
from .sce import ScalableCrossEntropy
from .triplet import Triplet

#: Loss name (as used by ``srs train --loss``) -> loss class.
LOSSES: dict[str, type[Loss]] = {cls.name: cls for cls in (CrossEntropy, ChunkedCrossEntropy, NegativeSampling,
                                                            GeneralisedBCE, Triplet, SampledSoftmax,
                                                            ScalableCrossEntropy)}


def experiment2_losses() -> list[str]:
    """The sampled losses of the dissertation's setting that Experiment II sets
    against cross-entropy (every sampled loss not published since)."""
    return [name for name, cls in LOSSES.items() if cls.sampled and not cls.recent]


def loss_class(name: str) -> type[Loss]:
    """The class of loss ``name``, or a ``ValueError`` naming the choices."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
    return LOSSES[name]


def option_fields() -> dict[str, dataclasses.Field]:
    """Every loss option, by field name (an option shared by several losses once)."""
    out: dict[str, dataclasses.Field] = {}
    for cls in LOSSES.values():
        for f in dataclasses.fields(cls.options):
            if f.name in out and spec_of(out[f.name]) is not spec_of(f):
                raise TypeError(f"two losses declare different options named {f.name!r}")
            out.setdefault(f.name, f)
    return out


def with_options(name: str, base: type, doc: str | None = None) -> type:
    """A frozen dataclass ``name`` with ``base``'s fields and every loss option
    as a flat field of its own (how ``TrainConfig`` and the benchmarks' step
    spec carry them); defined in the caller's module."""
    import sys

    module = sys._getframe(1).f_globals["__name__"]
    fields = [(n, f.type, dataclasses.field(default=f.default, metadata=f.metadata)) for n, f in option_fields().items()]
    return dataclasses.make_dataclass(name, fields, bases=(base,), frozen=True,
                                      namespace={"__module__": module, "__doc__": doc or base.__doc__})


def owners(name: str) -> tuple[str, ...]:
    """The losses whose options include ``name``."""
    return tuple(n for n, cls in LOSSES.items() if name in {f.name for f in dataclasses.fields(cls.options)})


def defaults() -> dict[str, Any]:
    """Every option's default."""
    return {name: f.default for name, f in option_fields().items()}


def settings_of(source: Any = None, **given) -> SimpleNamespace:
    """Every option's value, from ``source``'s attributes (a config) or from
    ``given`` keywords, the rest at their defaults, with ``loss``, ``l2`` where given."""
    values = defaults()
    for name in (*values, "loss", "l2"):
        if source is not None and hasattr(source, name):
            values[name] = getattr(source, name)
    unknown = sorted(set(given) - set(values) - {"loss", "l2"})
    if unknown:
        raise ValueError(f"unknown loss option(s) {', '.join(unknown)}; the options are {', '.join(sorted(values))}")
    values.update(given)
    return SimpleNamespace(**values)


def check_settings(loss: str, settings: Any) -> None:
    """Refuse option values that are wrong in themselves (each option's check),
    and an option away from its default in a run of a loss that does not own
    it (its ``misuse`` message), naming the option and the fix."""
    for name, f in option_fields().items():
        spec: OptionSpec = spec_of(f)
        value = getattr(settings, name)
        problem = spec.check(value) if spec.check is not None else None
        if problem:
            raise ValueError(problem)
        if spec.misuse and value != f.default and loss not in owners(name):
            raise ValueError(spec.misuse.format(loss=loss, value=value, name=name))


def identity_options(config: Any) -> dict[str, Any]:
    """The options that are part of ``config``'s identity (each option's rule)."""
    out = {}
    for name, f in option_fields().items():
        value = getattr(config, name)
        if spec_of(f).in_identity(name, value, f.default, config, owners(name)):
            out[name] = value
    return out


def is_extension(settings: Any) -> bool:
    """Whether ``settings`` (with its ``loss``) use a loss published since the
    dissertation or an option value that is ours (each option's ``extension``)."""
    if loss_class(settings.loss).is_recent(settings):
        return True
    return any(spec_of(f).extension is not None and spec_of(f).extension(getattr(settings, n))
               for n, f in option_fields().items())


def build_loss(name: str, n_items: int | None = None, *, counts: np.ndarray | None = None,
               device: torch.device | str = "cpu", settings: Any = None, **options) -> Loss:
    """The loss ``name`` (one of :data:`LOSSES`), built from ``settings`` (any
    object with the options as attributes: a ``TrainConfig``) or from option
    keywords (``negatives``, ``sampling``, ``margin``, ``gbce_t``, ...: the
    ``srs train`` flags' names), the rest at their defaults. The sampled
    losses draw over ``n_items`` items (default ``len(counts) - 1``), by
    ``counts`` (the training frequency of every id 0..N) where their options
    ask for popularity."""
    cls = loss_class(name)
    s = settings_of(settings, **options)
    check_settings(name, s)
    if cls.sampled:
        if n_items is None:
            if counts is None:
                raise ValueError(f"the {name!r} loss needs n_items (or counts, of length n_items + 1) to sample "
                                 "negatives")
            n_items = len(counts) - 1
        elif counts is not None and len(counts) != n_items + 1:
            raise ValueError(f"counts has {len(counts)} entries but n_items + 1 = {n_items + 1}")
    loss = cls.build(s, n_items, counts, device)
    loss.settings = s
    return loss
