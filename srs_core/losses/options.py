"""How a loss declares its settings, once, beside its code.

Each loss owns a small frozen dataclass of options (:class:`LossOptions` and
its subclasses in the loss files). A field made by :func:`option` carries,
besides its default:

* ``help`` and the ``srs train`` flag's spec (``choices``, ``metavar``,
  ``action``);
* how it enters a run's identity, the dict whose hash names the run in the
  results store: ``"always"``, ``"changed"`` (left out at its default, so runs
  recorded before the option existed keep their key), ``"own"`` (in the
  identity of its owners' runs only) or a predicate of the configuration;
* ``check``: a function of the value that returns what is wrong with it, or
  ``None``;
* ``misuse``: the message for a value away from its default in a run of a
  loss that does not own the option (``None``: any loss may carry it);
* ``extension``: a predicate of the value, true where the value is ours and
  not the dissertation's.

:class:`~srs_core.training.config.TrainConfig` takes every loss's option
fields as its own flat fields, and its flags, checks and identity from them
(:mod:`srs_core.losses.registry`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class OptionSpec:
    """What a loss option says about itself (see the module text)."""

    help: str
    identity: str | Callable[[Any], bool] = "changed"
    check: Callable[[Any], str | None] | None = None
    misuse: str | None = None
    extension: Callable[[Any], bool] | None = None
    cli: dict = field(default_factory=dict)

    def in_identity(self, name: str, value: Any, default: Any, config: Any, owners: tuple[str, ...]) -> bool:
        """Whether option ``name`` at ``value`` is part of ``config``'s identity."""
        if callable(self.identity):
            return bool(self.identity(config))
        if self.identity == "always":
            return True
        if self.identity == "own":
            return config.loss in owners
        return value != default


def option(default: Any, help: str, *, identity: str | Callable[[Any], bool] = "changed",
           check: Callable[[Any], str | None] | None = None, misuse: str | None = None,
           extension: Callable[[Any], bool] | None = None, **cli) -> Any:
    """A dataclass field that is a loss option (module text)."""
    spec = OptionSpec(help=help, identity=identity, check=check, misuse=misuse, extension=extension, cli=cli)
    return field(default=default, metadata={"option": spec})


def spec_of(f: dataclasses.Field) -> OptionSpec:
    return f.metadata["option"]


def at_least_one(name: str, flag: str | None = None) -> Callable[[Any], str | None]:
    """A check that ``name`` is at least 1 (``flag`` named in the message)."""
    where = f" ({flag})" if flag else ""
    return lambda v: None if v >= 1 else f"{name}{where} must be at least 1, got {v}"


def one_of(what: str, flag: str, choices: tuple[str, ...]) -> Callable[[Any], str | None]:
    """A check that the value is one of ``choices`` (``what`` and ``flag`` named in the message)."""
    return lambda v: None if v in choices else f"unknown {what} {v!r} ({flag}); choose one of {', '.join(choices)}"


@dataclass(frozen=True)
class LossOptions:
    """What every loss takes: the scale on L2-normalised scores (an extension)."""

    score_scale: float = option(1.0, "multiply the L2-normalised scores by S in every loss (needs --l2; default 1)",
                                check=lambda v: None if isinstance(v, (int, float)) and v > 0
                                else f"score_scale must be a positive number, got {v}",
                                extension=lambda v: v != 1.0, metavar="S")
