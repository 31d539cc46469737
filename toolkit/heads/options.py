"""``StrategyArgs``: a head strategy's settings, declared once.

The CLI builds the record (its options' defaults are the record's fields), ``extend`` passes it
to ``extend_head``, which resolves the class count and the imprint features and hands it to the
strategy. The module imports no torch, so that ``rehead extend --help`` can read the defaults.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from toolkit._text import listing
from toolkit.errors import InvalidArgumentError

if TYPE_CHECKING:
    import torch


@dataclasses.dataclass(frozen=True)
class StrategyArgs:
    """Settings of a head strategy (``toolkit.heads.strategies``).

    Lists given for ``keep``, ``copy_from`` and ``hidden`` are stored as tuples.

    Attributes:
        num_classes: Outputs of the new head. ``None`` (the default) means ``len(keep)`` for
            ``select``; every other strategy needs it (``extend_head`` resolves it before the
            strategy runs).
        keep: ``select``: the old class indices to keep, in order.
        copy_from: ``pad-copy``: the old class index each new row is copied from (default: a
            seeded draw).
        seed: Seed of random rows, draws and fresh heads (default 0).
        std: Standard deviation of the ``pad-random`` rows (default 0.01).
        hidden: ``bottleneck``/``mlp``: hidden layer widths (default ``()``: the strategy's own,
            256 for ``bottleneck``, 512, 256 for ``mlp``).
        activation: ``bottleneck``/``mlp``: ``relu`` (default), ``gelu``, ``silu`` or ``tanh``.
        dropout: ``bottleneck``/``mlp``: dropout after each hidden layer, in [0, 1) (default 0).
        features: ``imprint``: new output index -> (n, in_features) penultimate features of its
            example images; ``extend_head`` computes them from its ``examples``.
    """

    num_classes: int | None = None
    keep: tuple[int, ...] | None = None
    copy_from: tuple[int, ...] | None = None
    seed: int = 0
    std: float = 0.01
    hidden: tuple[int, ...] = ()
    activation: str = "relu"
    dropout: float = 0.0
    features: Mapping[int, torch.Tensor] | None = None

    def __post_init__(self) -> None:
        for name in ("keep", "copy_from", "hidden"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, (tuple, str)):
                object.__setattr__(self, name, tuple(value))

    def replace(self, **changes: Any) -> StrategyArgs:
        """A copy with ``changes`` applied (records are frozen).

        Args:
            changes: the fields to change, by name, and their new values.
        """
        return dataclasses.replace(self, **changes)


#: the names ``extend`` and ``extend_head`` accept as keywords instead of a ``StrategyArgs``
FIELDS = tuple(f.name for f in dataclasses.fields(StrategyArgs))


def strategy_args(args: StrategyArgs | None, settings: Mapping[str, Any], *, caller: str) -> StrategyArgs:
    """``args``, or the record built from ``settings``, the strategy's settings given as keywords.

    Args:
        args: The record, if the caller was given one.
        settings: Keywords named like ``StrategyArgs``' fields (``num_classes=12, seed=1``).
        caller: The function that took them, for the messages.

    Raises:
        TypeError: A keyword is not a field of ``StrategyArgs``.
        InvalidArgumentError: Both ``args`` and keywords were given.
    """
    unknown = [name for name in settings if name not in FIELDS]
    if unknown:
        raise TypeError(f"{caller}() got an unexpected keyword argument '{unknown[0]}'")
    if not settings:
        return args if args is not None else StrategyArgs()
    if args is not None:
        raise InvalidArgumentError(
            f"{caller}: the strategy's settings were given twice, as args and as keywords ({listing(list(settings))})",
            hint="put them all in args (a StrategyArgs), or give them all as keywords",
            param="args",
        )
    return StrategyArgs(**settings)
