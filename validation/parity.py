"""Running a runner over the parity inputs in batches; the verdict itself is ``converters.compare``."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from converters.runners.base import Runner
from toolkit.errors import InputShapeError


def chunks(count: int, batch_size: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of each batch of ``count`` items, the last one short.

    Args:
        count: how many items.
        batch_size: the items per batch.
    """
    return [(start, min(start + batch_size, count)) for start in range(0, count, batch_size)]


def run_batched(
    runner: Runner, images: np.ndarray, batch_size: int, *, on_batch: Callable[[], None] | None = None
) -> dict[str, np.ndarray]:
    """Outputs of ``runner`` over ``images`` in batches of ``batch_size``, concatenated.

    A fixed-batch artifact is only run at its own batch size (``InputShapeError`` otherwise);
    its last, short batch is padded with repeated samples whose outputs are dropped.

    Args:
        runner: the runner.
        images: the inputs.
        batch_size: the batch size to run at.
        on_batch: called after each batch (default None).
    """
    runner.load()
    if runner.fixed_batch is not None and batch_size != runner.fixed_batch:
        raise InputShapeError(
            f"'{runner.name}' has a fixed batch size of {runner.fixed_batch}; "
            f"batch size {batch_size} was asked for",
            hint=f"use batch size {runner.fixed_batch}, or re-export with a dynamic batch axis",
            param="batch_sizes",
        )
    parts: dict[str, list[np.ndarray]] = {}
    for start, stop in chunks(len(images), batch_size):
        batch = images[start:stop]
        real = len(batch)
        if runner.fixed_batch is not None and real < batch_size:
            batch = np.concatenate([batch, np.resize(images, (batch_size - real, *images.shape[1:]))])
        runner.check_input(batch)
        for name, value in runner.run(batch).items():
            parts.setdefault(name, []).append(value[:real])
        if on_batch is not None:
            on_batch()
    return {k: np.concatenate(v) for k, v in parts.items()}
