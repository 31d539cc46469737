"""What a run reads before it trains: the data, the images that keep the unseen classes, and the
record of both (``run_info``) that a resumed run must match. Everything here is checked before
anything is written: a bad folder fails the run at once."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from toolkit._text import listing
from toolkit.data.training import TrainingData, load_training_data
from toolkit.errors import DataError, InvalidArgumentError
from toolkit.finetune.config import FinetuneConfig
from toolkit.finetune.keep_old import OLD_CLASS_IMAGES, OTHER_IMAGES, Keeping
from toolkit.records import ModelConfig

#: What ``old_examples`` may be: a folder or manifest, or images (N, C, H, W) and labels (N,).
OldExamples = str | os.PathLike[str] | tuple[torch.Tensor, torch.Tensor]
#: What ``unlabelled`` may be: a folder of images, or images (N, C, H, W).
Unlabelled = str | os.PathLike[str] | torch.Tensor
ClassMap = str | os.PathLike[str] | Mapping[str, str]


def resolve_data(
    data: str | os.PathLike[str] | TrainingData,
    model_cfg: ModelConfig,
    digits: Sequence[int] | None,
    val_ratio: float,
    seed: int,
    class_map: ClassMap | None,
    workers: int,
) -> TrainingData:
    """The training data: loaded as the model's classes and preprocessing, or checked if loaded.

    Args:
        data: ``"digits"``, a folder, a ``.csv`` manifest, or ``TrainingData`` already loaded.
        model_cfg: the model's record (class names and preprocessing).
        digits: a subset of the digits source (None: all).
        val_ratio: the fraction held out for validation when the data has no ``val`` split.
        seed: the seed of that split.
        class_map: renames class folders or labels to the model's classes (None: none; refused for loaded data).
        workers: processes that decode the images (0: this process).
    """
    if isinstance(data, TrainingData):
        if class_map is not None:
            raise InvalidArgumentError(
                "class_map applies when loading data, not to loaded TrainingData",
                hint="pass class_map to load_training_data instead",
                param="class_map",
            )
        if data.class_names != model_cfg.class_names:
            raise DataError(
                f"the data's {len(data.class_names)} classes ({listing(data.class_names)}) differ from the "
                f"model's {len(model_cfg.class_names)} ({listing(model_cfg.class_names)})",
                hint="load the data with the model's class_names",
            )
        return data
    return load_training_data(
        data,
        model_cfg.preprocessing,
        model_cfg.class_names,
        digits=digits,
        val_ratio=val_ratio,
        seed=seed,
        class_map=class_map,
        workers=workers,
    )


def load_keeping(
    training: TrainingData,
    model_cfg: ModelConfig,
    retention_data: str | os.PathLike[str] | None,
    old_examples: OldExamples | None,
    unlabelled: Unlabelled | None,
    class_map: ClassMap | None,
    workers: int,
) -> Keeping:
    """The unseen classes and the images that keep and measure them, loaded (and checked: a bad
    folder fails here, before anything is written) only when some class is unseen.

    Args:
        training: the run's training data.
        model_cfg: the model's record (class names and preprocessing).
        retention_data: images that measure the retention of the unseen classes (None: none).
        old_examples: images of the old classes, a folder or manifest or tensors (None: none).
        unlabelled: unlabelled images for distillation, a folder or a tensor (None: none).
        class_map: renames the class folders of ``old_examples`` (None: none).
        workers: processes that decode the images (0: this process).
    """
    from toolkit.data.training import load_examples
    from toolkit.data.unlabelled import load_images, load_retention_images

    keeping = Keeping(training.unseen_classes())
    if not keeping.unseen:
        return keeping
    prep, names = model_cfg.preprocessing, model_cfg.class_names
    if old_examples is not None:
        if isinstance(old_examples, tuple):
            keeping.old_examples = (old_examples[0].float(), old_examples[1].long())
        else:
            keeping.old_examples = load_examples(old_examples, prep, names, class_map=class_map, workers=workers)
        _check_examples(keeping.old_examples, len(names))
    if unlabelled is not None:
        keeping.unlabelled = (
            unlabelled.float() if isinstance(unlabelled, torch.Tensor)
            else load_images(unlabelled, prep, param="unlabelled")
        )
    if retention_data is not None:
        keeping.images, labelled = load_retention_images(retention_data, prep, names, keeping.unseen)
        keeping.source = str(retention_data)
        keeping.images_of = OLD_CLASS_IMAGES if labelled else OTHER_IMAGES
    return keeping


def _check_examples(examples: tuple[torch.Tensor, torch.Tensor], classes: int) -> None:
    images, labels = examples
    if images.ndim != 4 or labels.ndim != 1 or len(images) != len(labels) or not len(labels):
        raise InvalidArgumentError(
            f"old_examples must be images (N, C, H, W) and labels (N,), N >= 1; got {tuple(images.shape)} and "
            f"{tuple(labels.shape)}",
            hint="give a folder of class folders, a manifest, or a pair of tensors",
            param="old_examples",
        )
    if int(labels.min()) < 0 or int(labels.max()) >= classes:
        raise InvalidArgumentError(
            f"old_examples labels must be class indices in [0, {classes}), "
            f"got {int(labels.min())}..{int(labels.max())}",
            param="old_examples",
        )


def run_info(
    config: FinetuneConfig,
    model_dir: str | os.PathLike[str],
    source: ModelConfig,
    training: TrainingData,
    keeping: Keeping,
) -> dict[str, Any]:
    """What every checkpoint records of its run, and a resumed run must see again.

    Args:
        config: the run's settings.
        model_dir: the source model directory.
        source: its record.
        training: the run's training data.
        keeping: the images that keep the unseen classes.
    """
    info: dict[str, Any] = {
        "config": config.to_json(),
        "source": str(model_dir),
        "source_sha256": source.weights_sha256,
        "data": training.source,
        "class_names": list(source.class_names),
        "trained_classes": list(training.seen_classes()),
    }
    if keeping.old_examples is not None:
        info["old_examples"] = _digest(*keeping.old_examples)
    if keeping.unlabelled is not None:
        info["unlabelled"] = _digest(keeping.unlabelled)
    return info


def _digest(*tensors: torch.Tensor) -> str:
    """What a resumed run must see again: the exact extra images (and labels)."""
    import hashlib

    digest = hashlib.sha256()
    for t in tensors:
        digest.update(str(tuple(t.shape)).encode())
        digest.update(t.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]

