"""``FinetuneResult``, what a fine-tuning run produced, and where a run keeps its checkpoints."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from toolkit.finetune.keep_old import Retention
    from toolkit.records import ModelConfig


@dataclasses.dataclass
class FinetuneResult:
    """What a run produced: the saved directory, its record and module (eval mode, CPU), and metrics.

    ``test_top1`` is ``None`` when the data has no test split. ``best_epoch`` is 1-based, as in
    the metrics and on the console (0 when no epoch ran).
    ``resumed_from`` names the checkpoint the run continued from, if any.
    ``trained_classes`` are the indices of the classes with training images; the others were
    kept with ``keep_old``, and ``retention`` says how well (``None`` when every class had data).
    ``teacher_cached`` is whether the original model's logits were read from the work directory
    (a resumed run) rather than computed (``None``: none were needed).
    ``rank`` of ``world_size`` processes: only rank 0 wrote ``path``; on the other ranks
    ``config`` is the record as it was before saving (its weights hash unset).
    ``align_gamma``: the factor weight aligning scaled the trained rows by (``None``: not aligned).
    ``warning``: one line when less than half of the original decision on the old classes was
    kept, saying what would help (also in ``metrics.json``; ``None`` otherwise).
    """

    path: Path
    config: ModelConfig
    module: nn.Module
    history: list[dict[str, Any]]
    val_top1: float
    test_top1: float | None
    best_epoch: int
    stopped_early: bool
    resumed_from: Path | None
    seconds: float
    trained_classes: tuple[int, ...] = ()
    keep_old: str = "none"
    retention: Retention | None = None
    teacher_cached: bool | None = None
    rank: int = 0
    world_size: int = 1
    align_gamma: float | None = None
    warning: str | None = None


def default_work_dir(output: str | os.PathLike[str]) -> Path:
    """Where the checkpoints of a run writing ``output`` live: ``<output>.ckpt`` beside it.

    Args:
        output: The model directory the run writes.
    """
    out = Path(output)
    return out.with_name(out.name + ".ckpt")
