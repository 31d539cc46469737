"""``pretrain``: train an architecture with a fresh head from random weights (the demo's first step).

It is head surgery plus fine-tuning with no freezing: ``extend(strategy="replace")`` on the
randomly initialised architecture, then ``finetune`` with ``freeze_epochs=0`` and the backbone at
the full learning rate. The lineage of the result records both stages.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence

from toolkit import _atomic
from toolkit.data.training import TrainingData
from toolkit.finetune.config import FinetuneConfig
from toolkit.finetune.trainer import FinetuneResult, finetune
from toolkit.records import Preprocessing

#: Pretraining from random weights: every layer trains from the first epoch at the full rate.
PRETRAIN_CONFIG = FinetuneConfig(epochs=5, freeze_epochs=0, backbone_lr_mult=1.0, lr=3e-3)


def pretrain(
    arch: str,
    data: str | os.PathLike[str] | TrainingData,
    class_names: Sequence[str],
    config: FinetuneConfig | None = None,
    *,
    output: str | os.PathLike[str],
    input_size: int | tuple[int, int] = 32,
    preprocessing: Preprocessing | None = None,
    digits: Sequence[int] | None = None,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = False,
) -> FinetuneResult:
    """Build ``arch`` with random weights and a ``len(class_names)``-class head, train it, save it.

    The same ``config.seed`` gives the same initial weights, so a ``resume`` finds its
    checkpoints again.

    Args:
        arch: The architecture (as ``extend`` names it).
        data: The training data, as ``finetune`` takes it.
        class_names: The classes of the head, in output order.
        config: The run's settings (default ``PRETRAIN_CONFIG``: 5 epochs, no freezing, AdamW at
            3e-3 for every layer).
        output: The model directory to write.
        input_size: Sets the recorded preprocessing (pixels, default 32) unless ``preprocessing``
            is given.
        preprocessing: The preprocessing record.
        digits: ``"digits"`` data: these digits only.
        overwrite: Replace ``output``.
        resume: Continue from the newest readable checkpoint.
        progress: Print the training's progress on stderr (default False).

    Returns:
        ``finetune``'s result.
    """
    from toolkit.extension import extend
    from toolkit.heads.options import StrategyArgs

    config = config or PRETRAIN_CONFIG
    out = _atomic.check_output(output, overwrite=overwrite)
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    prep = preprocessing or Preprocessing(input_size=(int(size[0]), int(size[1])))
    stage = _atomic.staging_dir(out)  # holds the freshly initialised model until training ends
    try:
        # extend draws the random backbone and the fresh head from config.seed
        init = extend(
            strategy="replace",
            args=StrategyArgs(num_classes=len(class_names), seed=config.seed),
            arch=arch,
            class_names=list(class_names),
            preprocessing=prep,
            output=stage / "model",
            random_init=True,  # pretraining from scratch is the point: no random-initialisation warning
        )
        assert init.path is not None  # extend always returns the path it was given
        return finetune(
            init.path,
            data,
            config,
            output=out,
            overwrite=overwrite,
            resume=resume,
            digits=digits,
            progress=progress,
        )
    finally:
        shutil.rmtree(stage, ignore_errors=True)
