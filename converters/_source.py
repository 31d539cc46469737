"""Resolve an export source (a model directory or a ``LoadedModel``) and run it in eval mode."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from torch import nn

from toolkit.errors import InvalidArgumentError
from toolkit.models.model_dir import LoadedModel


def resolve_source(source: str | os.PathLike[str] | LoadedModel) -> LoadedModel:
    """A ``LoadedModel`` as given, or the model directory at ``source`` loaded (hash checked).

    Args:
        source: a model directory (loaded, hash checked) or a ``LoadedModel`` (returned as given).
    """
    if isinstance(source, LoadedModel):
        return source
    if isinstance(source, (str, os.PathLike)):
        from toolkit.models.model_dir import load_model_dir

        return load_model_dir(Path(source))
    raise InvalidArgumentError(
        f"export source must be a model directory or a LoadedModel, got {type(source).__name__}",
        hint="pass the model directory written by extend or finetune",
        param="source",
    )


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """Put every submodule in eval mode; restore each one's own mode afterwards.

    (``preflight`` reports a model left in train mode: BatchNorm/Dropout would have made the
    export differ from inference.)

    Args:
        module: the model; each submodule's own train/eval mode is restored on exit.
    """
    modes = {name: sub.training for name, sub in module.named_modules()}
    module.eval()
    try:
        yield
    finally:
        for name, sub in module.named_modules():
            if name in modes:
                sub.train(modes[name])
