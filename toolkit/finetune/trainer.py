"""``finetune``: train a model directory's model on labelled images and save a new model directory.

Files:

- ``OUTPUT/`` (written atomically at the very end with ``save_model_dir``): ``model.safetensors``,
  ``config.json`` (lineage + ``{"stage": "finetune", ...}``), ``metrics.json``, ``metrics.csv``
  and ``curves.png``.
- ``OUTPUT.ckpt/`` (the work directory, next to the output unless ``work_dir`` is given):
  ``step-<global step>.pt`` checkpoints, the newest two kept, and ``teacher-logits.pt`` when some
  classes have no training images. ``resume=True`` continues from the newest readable one. It is
  deleted after a successful run unless ``keep_checkpoints``.

Data for a subset of the model's classes: the classes without images are "unseen"; the run keeps
them as ``FinetuneConfig.keep_old`` says (``toolkit.finetune.keep_old``), measures how much of
the original model's behaviour on them survives (``Retention``) and records which classes it
trained in the lineage.

Launched by torchrun (``torchrun --nproc-per-node N -m toolkit.cli finetune ...``) the run is
data-parallel (``toolkit.finetune.distributed``): each process loads the model and the data,
joins the group, trains on its share of every global batch; process 0 alone reports, writes the
checkpoints and the output. A group that torchrun restarts (``--max-restarts``) resumes from the
newest checkpoint by itself. The work directory must be one folder that every process sees (a
shared file system across nodes).

The run's steps, in order: ``_inputs`` (the data and the images that keep the unseen classes,
all read before anything is written), ``_resume`` (the checkpoint store), ``_loop`` (the
training) and ``_finish`` (the last measurements, the record, the output).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from toolkit import _atomic
from toolkit._args import check_device
from toolkit._text import listing
from toolkit.data.training import TrainingData
from toolkit.errors import InvalidArgumentError
from toolkit.finetune._finish import Run, finish
from toolkit.finetune._inputs import ClassMap, OldExamples, Unlabelled, load_keeping, resolve_data, run_info
from toolkit.finetune._loop import Loop
from toolkit.finetune._resume import check_store, prepare_store, resume_point
from toolkit.finetune.config import DEFAULT_VAL_RATIO, FinetuneConfig
from toolkit.finetune.distributed import Distributed
from toolkit.finetune.progress import TrainingProgress
from toolkit.finetune.replay import StepExtras
from toolkit.finetune.result import FinetuneResult, default_work_dir
from toolkit.heads.modules import seeded
from toolkit.models.model_dir import load_model_dir

__all__ = ["FinetuneResult", "default_work_dir", "finetune"]


def finetune(
    model_dir: str | os.PathLike[str],
    data: str | os.PathLike[str] | TrainingData,
    config: FinetuneConfig | None = None,
    *,
    output: str | os.PathLike[str],
    overwrite: bool = False,
    resume: bool = False,
    work_dir: str | os.PathLike[str] | None = None,
    digits: Sequence[int] | None = None,
    val_ratio: float = DEFAULT_VAL_RATIO,
    class_map: ClassMap | None = None,
    retention_data: str | os.PathLike[str] | None = None,
    old_examples: OldExamples | None = None,
    unlabelled: Unlabelled | None = None,
    workers: int = 0,
    progress: bool = False,
) -> FinetuneResult:
    """Fine-tune the model in ``model_dir`` on ``data`` and save the result as a model directory.

    Data may cover a subset of the model's classes (matched by name). The classes without images
    ("old") are kept as ``config.keep_old`` says, and their retention is measured
    (``Retention``): on each image where the original model's argmax over all classes is an old
    class, whether the fine-tuned model's is the same. It is in the result, ``metrics.json`` and
    the lineage. Nothing is written before the data and the model have loaded. Under torchrun
    the run is data-parallel (module docstring): ``config.batch_size`` is the global batch,
    progress shows on rank 0 only, and a restarted group resumes by itself.

    Args:
        model_dir: The model directory to fine-tune (from ``extend``).
        data: ``"digits"`` (``digits`` picks a subset), an image folder, a CSV manifest
            (``path,label`` rows, see ``toolkit.data.manifest``) or a loaded ``TrainingData``.
        config: The run's settings (default ``FinetuneConfig()``).
        output: The model directory to write; it must not exist unless ``overwrite``.
        overwrite: Replace ``output`` and start over from stale checkpoints.
        resume: Continue from the newest readable checkpoint (starting fresh if there is none).
        work_dir: The checkpoints' folder (default ``<output>.ckpt``, ``default_work_dir``).
        digits: ``"digits"`` data: train on these digits only.
        val_ratio: Fraction held out per class for validation when the data has no validation
            part (default ``DEFAULT_VAL_RATIO``, 0.15).
        class_map: Renames class folders to the model's class names (see ``load_training_data``).
        retention_data: Images on which retention is measured: a folder, manifest or ``"digits"``;
            only the old classes' images when it says which class each image is, else every
            image. Without it: the old examples, the unlabelled images or the training images, in
            that order of preference; what they were is recorded.
        old_examples: A few labelled images of the old classes, from one per class: a folder
            ``DIR/<class>/*``, a manifest, or images and labels; replayed every step with a
            class-balanced loss.
        unlabelled: A folder of any images (or the images), no labels: the original model's
            decision among the old classes on them is distilled.
        workers: Processes decoding the images (default 0: this process).
        progress: Draw a bar per epoch on a terminal stderr, plain lines otherwise (default
            False: silent).

    Returns:
        The ``FinetuneResult``: the saved directory, its record and module, and the metrics.
    """
    started = time.perf_counter()
    config = config or FinetuneConfig()
    dist = Distributed.from_env()
    device = _device(config, dist)
    resume = resume or dist.restart > 0  # torchrun restarted the group: continue, never start over
    out = _atomic.check_output(output, overwrite=overwrite)
    loaded = load_model_dir(model_dir)
    training = resolve_data(data, loaded.config, digits, val_ratio, config.seed, class_map, workers)
    keeping = load_keeping(training, loaded.config, retention_data, old_examples, unlabelled, class_map, workers)
    config = config.resolved(old_examples=keeping.old_examples is not None)  # keep_old "auto", recorded resolved
    store = check_store(Path(work_dir) if work_dir else default_work_dir(out), resume=resume, overwrite=overwrite)
    info = run_info(config, model_dir, loaded.config, training, keeping)
    reporter = TrainingProgress(progress and dist.is_main)
    extras = {"retention_data": retention_data, "old_examples": old_examples, "unlabelled": unlabelled}
    unused = [name for name, value in extras.items() if value is not None]
    if not keeping.unseen and unused:
        reporter.message(f"every class has training images: nothing to keep, {listing(unused)} unused")
    run = Run(loaded.config, training, keeping, config, store, out, overwrite, started)
    previous_threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        dist.start(device)
        if dist.is_main:
            prepare_store(store, resume=resume)
        dist.barrier()  # nobody reads the store while rank 0 tidies it
        return _train(loaded.module.to(device), run, info, reporter, dist, device, resume=resume)
    finally:
        reporter.close()
        torch.set_num_threads(previous_threads)
        dist.close()


def _device(config: FinetuneConfig, dist: Distributed) -> torch.device:
    """This process's device; refuses a global batch too small for two images per process."""
    check_device(config.device)
    device = dist.device(config.device)
    if dist.world > 1 and config.batch_size < 2 * dist.world:
        raise InvalidArgumentError(
            f"batch_size {config.batch_size} is the global batch: {dist.world} processes need at least "
            f"{2 * dist.world} (two images each for BatchNorm)",
            hint=f"batch_size >= {2 * dist.world}, or fewer processes",
            param="batch_size",
        )
    return device


def _train(
    model: nn.Module,
    run: Run,
    info: dict[str, Any],
    reporter: TrainingProgress,
    dist: Distributed,
    device: torch.device,
    *,
    resume: bool,
) -> FinetuneResult:
    """Prepare the keeping of the unseen classes, resume or start, train, and finish."""
    config, keeping, training = run.config, run.keeping, run.training
    if dist.world > 1:
        reporter.message(
            f"{dist.world} processes ({device.type}): global batch {config.batch_size}, about "
            f"{config.batch_size // dist.world} images per process and step"
            + (", BatchNorm synchronised" if config.sync_bn else "")
        )
    teacher = None
    if keeping.unseen:
        # before any checkpoint's weights are loaded: this is still the original model
        teacher = keeping.prepare(model, training, run.source.weights_sha256, config, run.store.folder, reporter)
    state, checkpoint, resumed_from = resume_point(run.store, model, info, config, reporter, resume=resume)
    loop = Loop(
        model, run.source.head, training, config, run.store, reporter, info,
        unseen=keeping.unseen, teacher=teacher, dist=dist, device=device, extras=_extras(run, device),
    )  # fmt: skip
    _say_left_out(reporter, len(training.train[1]), loop.images_per_epoch, config.batch_size, dist.world)
    with seeded(config.seed, device):  # dropout draws from it; the caller's RNG is left as it was
        state = loop.run(state, checkpoint)
    return finish(loop, state, dataclasses.replace(run, resumed_from=resumed_from))


def _extras(run: Run, device: torch.device) -> StepExtras:
    """The images every step adds: replayed old examples, unlabelled images to distill on."""
    config, keeping = run.config, run.keeping
    unlabelled = keeping.unlabelled
    return StepExtras(
        seed=config.seed,
        augment=run.training.augment if config.augment == "auto" else config.augment,
        batch_size=config.batch_size,
        device=device,
        old_examples=keeping.old_examples,
        unlabelled=None if unlabelled is None or keeping.unlabelled_teacher is None
        else (unlabelled, keeping.unlabelled_teacher),
    )  # fmt: skip


def _say_left_out(reporter: TrainingProgress, images: int, per_epoch: int, batch_size: int, world: int) -> None:
    """A note when some training images sit each epoch out (a batch of one breaks BatchNorm)."""
    left = images - per_epoch
    if left == 1:
        reporter.message(
            f"note: {images} training images in batches of {batch_size} leave one "
            "over; it sits each epoch out (a batch of one breaks BatchNorm), a different one each epoch"
        )
    elif left:
        reporter.message(
            f"note: {images} training images in batches of {batch_size} leave {left} "
            f"over, too few for two on each of {world} processes; they sit each epoch out (a batch of "
            "one breaks BatchNorm), different ones each epoch"
        )
