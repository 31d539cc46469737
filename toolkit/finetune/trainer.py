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
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from toolkit import _atomic
from toolkit._args import check_device
from toolkit._text import listing
from toolkit.data.training import TrainingData, load_training_data
from toolkit.errors import DataError, InvalidArgumentError, OutputExistsError
from toolkit.finetune._loop import Loop, RunState
from toolkit.finetune.checkpoints import CheckpointStore
from toolkit.finetune.config import FinetuneConfig
from toolkit.finetune.distributed import Distributed
from toolkit.finetune.history import history_files
from toolkit.finetune.keep_old import OLD_CLASS_IMAGES, OTHER_IMAGES, Keeping, Retention, align_rows, retention_warning
from toolkit.finetune.progress import TrainingProgress
from toolkit.finetune.replay import StepExtras
from toolkit.heads.modules import seeded
from toolkit.models.model_dir import load_model_dir, load_weights_strict, save_model_dir
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
    """Where the checkpoints of a run writing ``output`` live: ``<output>.ckpt`` beside it."""
    out = Path(output)
    return out.with_name(out.name + ".ckpt")


def _resolve_data(
    data: str | os.PathLike[str] | TrainingData,
    model_cfg: ModelConfig,
    digits: Sequence[int] | None,
    val_ratio: float,
    seed: int,
    class_map: str | os.PathLike[str] | Mapping[str, str] | None,
    workers: int,
) -> TrainingData:
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


def _keeping(
    training: TrainingData,
    model_cfg: ModelConfig,
    retention_data: str | os.PathLike[str] | None,
    old_examples: str | os.PathLike[str] | tuple[torch.Tensor, torch.Tensor] | None,
    unlabelled: str | os.PathLike[str] | torch.Tensor | None,
    class_map: str | os.PathLike[str] | Mapping[str, str] | None,
    workers: int,
) -> Keeping:
    """The unseen classes and the images that keep and measure them, loaded (and checked: a bad
    folder fails here, before anything is written) only when some class is unseen."""
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


def _digest(*tensors: torch.Tensor) -> str:
    """What a resumed run must see again: the exact extra images (and labels)."""
    import hashlib

    digest = hashlib.sha256()
    for t in tensors:
        digest.update(str(tuple(t.shape)).encode())
        digest.update(t.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _check_store(work: Path, *, resume: bool, overwrite: bool) -> CheckpointStore:
    """The run's store; refuses one that holds another run's checkpoints (read-only: every rank
    checks, so that all refuse alike)."""
    store = CheckpointStore(work)
    if store.paths() and not resume and not overwrite:
        raise OutputExistsError(
            f"'{work}' holds checkpoints of an earlier run",
            hint="pass resume=True to continue it, or overwrite=True to start over",
            param="resume",
        )
    return store


def _prepare_store(store: CheckpointStore, *, resume: bool) -> None:
    """Rank 0 only: remove killed writes' leftovers, and the old checkpoints when starting over."""
    store.clean_temporaries()
    if store.paths() and not resume:
        store.clear()


def _check_resumable(saved: dict[str, Any], run_info: dict[str, Any], config: FinetuneConfig) -> None:
    problems = FinetuneConfig.from_json(saved["config"]).differences(config)
    for key in ("source_sha256", "data", "class_names", "trained_classes", "old_examples", "unlabelled"):
        if key in ("trained_classes", "old_examples", "unlabelled") and key not in saved:
            continue  # checkpoints from before subset data (issue 10) or extra images (issue 22)
        if saved.get(key) != run_info[key]:
            problems.append(f"{key}: {_short(saved.get(key))} vs {_short(run_info[key])}")
    if problems:
        raise InvalidArgumentError(
            f"the checkpoint was written by a different run (checkpoint vs now): {listing(problems, sep='; ')}",
            hint="resume with the same settings, or start over with overwrite=True",
            param="resume",
        )


def _short(value: Any) -> str:
    """A recorded value for a message: a long list (1000 class names) as its first items and a count."""
    return f"[{listing(value)}]" if isinstance(value, list) else repr(value)


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
    val_ratio: float = 0.15,
    class_map: str | os.PathLike[str] | Mapping[str, str] | None = None,
    retention_data: str | os.PathLike[str] | None = None,
    old_examples: str | os.PathLike[str] | tuple[torch.Tensor, torch.Tensor] | None = None,
    unlabelled: str | os.PathLike[str] | torch.Tensor | None = None,
    workers: int = 0,
    progress: bool = False,
) -> FinetuneResult:
    """Fine-tune the model in ``model_dir`` on ``data`` and save the result as a model directory.

    ``data`` is ``"digits"`` (``digits`` picks a subset), an image folder or a CSV manifest
    (``path,label`` rows, see ``toolkit.data.manifest``; ``val_ratio``, a fraction, splits it
    when it has no validation part) or a loaded ``TrainingData``. ``workers`` processes decode
    the images (0, the default: this process). ``output`` must not
    exist unless ``overwrite``. Checkpoints go to ``work_dir`` (default ``<output>.ckpt``);
    ``resume`` continues from the newest readable one (starting fresh if there is none).

    Data may cover a subset of the model's classes (matched by name; ``class_map`` renames
    folders, see ``load_training_data``). The classes without images ("old") are kept as
    ``config.keep_old`` says, helped by ``old_examples`` (a few labelled images of them, a
    folder ``DIR/<class>/*`` or a manifest, from one per class; replayed every step with a
    class-balanced loss) and ``unlabelled`` (a folder of any images, no labels: the original
    model's decision among the old classes on them is distilled), and ``config.align`` (weight
    aligning of the trained rows after training; default: on without ``old_examples``).
    Retention is measured on them (``Retention``): on each image where the original model's
    argmax over all classes is an old class, whether the fine-tuned model's is the same, on
    ``retention_data`` (a folder, manifest or ``"digits"``; only the old classes' images when
    it says which class each image is, else every image) or, without it, on the old examples,
    the unlabelled images or the training images, in that order of preference; what they were
    is recorded. It is in the result, ``metrics.json`` and the lineage.
    ``progress`` (default False: silent) draws a bar per epoch on a terminal stderr, plain lines
    otherwise. Nothing is written before the data and the model have loaded.

    Under torchrun the run is data-parallel (module docstring): ``config.batch_size`` is the
    global batch, progress shows on rank 0 only, and a restarted group resumes by itself.
    """
    config = config or FinetuneConfig()
    started = time.perf_counter()
    dist = Distributed.from_env()
    check_device(config.device)
    device = dist.device(config.device)
    if dist.world > 1 and config.batch_size < 2 * dist.world:
        raise InvalidArgumentError(
            f"batch_size {config.batch_size} is the global batch: {dist.world} processes need at least "
            f"{2 * dist.world} (two images each for BatchNorm)",
            hint=f"batch_size >= {2 * dist.world}, or fewer processes",
            param="batch_size",
        )
    resume = resume or dist.restart > 0  # torchrun restarted the group: continue, never start over
    out = _atomic.check_output(output, overwrite=overwrite)
    loaded = load_model_dir(model_dir)
    training = _resolve_data(data, loaded.config, digits, val_ratio, config.seed, class_map, workers)
    keeping = _keeping(training, loaded.config, retention_data, old_examples, unlabelled, class_map, workers)
    config = config.resolved(old_examples=keeping.old_examples is not None)  # keep_old "auto", recorded resolved
    store = _check_store(Path(work_dir) if work_dir else default_work_dir(out), resume=resume, overwrite=overwrite)
    run_info = {
        "config": config.to_json(),
        "source": str(model_dir),
        "source_sha256": loaded.config.weights_sha256,
        "data": training.source,
        "class_names": list(loaded.config.class_names),
        "trained_classes": list(training.seen_classes()),
    }
    if keeping.old_examples is not None:
        run_info["old_examples"] = _digest(*keeping.old_examples)
    if keeping.unlabelled is not None:
        run_info["unlabelled"] = _digest(keeping.unlabelled)
    reporter = TrainingProgress(progress and dist.is_main)
    if not keeping.unseen:
        unused = [name for name, value in (("retention_data", retention_data), ("old_examples", old_examples),
                                           ("unlabelled", unlabelled)) if value is not None]
        if unused:
            reporter.message(f"every class has training images: nothing to keep, {listing(unused)} unused")
    previous_threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        dist.start(device)
        if dist.is_main:
            _prepare_store(store, resume=resume)
        dist.barrier()  # nobody reads the store while rank 0 tidies it
        if dist.world > 1:
            reporter.message(
                f"{dist.world} processes ({device.type}): global batch {config.batch_size}, about "
                f"{config.batch_size // dist.world} images per process and step"
                + (", BatchNorm synchronised" if config.sync_bn else "")
            )
        model = loaded.module.to(device)
        teacher = None
        if keeping.unseen:
            # before any checkpoint's weights are loaded: this is still the original model
            teacher = keeping.prepare(model, training, loaded.config.weights_sha256, config, store.folder, reporter)
        found = store.load_latest() if resume else None
        checkpoint, resumed_from = found if found is not None else (None, None)
        state = RunState()
        if checkpoint is not None:
            _check_resumable(checkpoint["run"], run_info, config)
            load_weights_strict(model, checkpoint["model"], str(resumed_from))
            state = RunState.from_json(checkpoint["progress"])
            reporter.message(
                f"resuming from {resumed_from} (epoch {state.epoch + 1}, step {state.global_step})"
            )
        elif resume:
            reporter.message(f"no checkpoint in {store.folder}: starting from the beginning")
        loop = Loop(
            model,
            loaded.config.head,
            training,
            config,
            store,
            reporter,
            run_info,
            unseen=keeping.unseen,
            teacher=teacher,
            dist=dist,
            device=device,
            extras=StepExtras(
                seed=config.seed,
                augment=training.augment if config.augment == "auto" else config.augment,
                batch_size=config.batch_size,
                device=device,
                old_examples=keeping.old_examples,
                unlabelled=None if keeping.unlabelled is None or keeping.unlabelled_teacher is None
                else (keeping.unlabelled, keeping.unlabelled_teacher),
            ),
        )
        left = len(training.train[1]) - loop.images_per_epoch
        if left == 1:
            reporter.message(
                f"note: {len(training.train[1])} training images in batches of {config.batch_size} leave one "
                "over; it sits each epoch out (a batch of one breaks BatchNorm), a different one each epoch"
            )
        elif left:
            reporter.message(
                f"note: {len(training.train[1])} training images in batches of {config.batch_size} leave {left} "
                f"over, too few for two on each of {dist.world} processes; they sit each epoch out (a batch of "
                "one breaks BatchNorm), different ones each epoch"
            )
        with seeded(config.seed, device):  # dropout draws from it; the caller's RNG is left as it was
            state = loop.run(state, checkpoint)
        return _finish(
            loop, state, loaded.config, training, config, out, overwrite, store, resumed_from, started, keeping
        )
    finally:
        reporter.close()
        torch.set_num_threads(previous_threads)
        dist.close()


def _finish(
    loop: Loop,
    state: RunState,
    source_cfg: ModelConfig,
    training: TrainingData,
    config: FinetuneConfig,
    out: Path,
    overwrite: bool,
    store: CheckpointStore,
    resumed_from: Path | None,
    started: float,
    keeping: Keeping,
) -> FinetuneResult:
    from toolkit.heads import unfreeze_all

    model = loop.model
    best_epoch = state.best_epoch + 1  # 1-based, like the history records
    last_epoch = state.history[-1]["epoch"] if state.history else 0
    if config.restore_best and loop.best_model is not None and best_epoch != last_epoch:
        load_weights_strict(model, loop.best_model, "best epoch")
    unfreeze_all(model)
    model.eval()
    loop.dist.broadcast_buffers(model)  # restored best weights are each rank's copy: rank 0's rule
    trained = training.seen_classes()
    gamma = None
    alignment = config.alignment(old_examples=keeping.old_examples is not None)
    if keeping.unseen and alignment != "none":
        gamma = align_rows(
            model, loop.spec, trained, keeping.unseen, alignment, training.val[0],
            batch_size=config.eval_batch_size, device=loop.device,
        )  # fmt: skip
        loop.reporter.message(f"align ({alignment}): the {len(trained)} trained classes' logits scaled by {gamma:.3f}")
    test_top1 = None
    if training.test is not None:
        test_top1 = _top1(loop, *training.test)
    val_top1 = (
        state.best_top1 if config.restore_best else (state.history[-1]["val_top1"] if state.history else 0.0)
    )
    retention = keeping.measure(model, batch_size=config.eval_batch_size, device=loop.device)
    warning = None
    if retention is not None:
        loop.reporter.message(
            f"retention of the {retention.classes} unseen classes: {retention.after:.4f} of the original model's "
            f"decisions over all classes kept, on the {retention.images} images of {retention.images_of} where it "
            f"decided an old class ({retention.source}); among the old logits only: {retention.among_old_logits:.4f}"
        )
        warning = retention_warning(retention, old_examples=keeping.old_examples is not None and not keeping.synthetic)
        if warning is not None:
            loop.reporter.message(warning)
    keep_old = config.keep_old if keeping.unseen else "none"
    summary = {
        "title": f"{source_cfg.arch} on {training.source}",
        "data": training.describe(),
        "config": config.to_json(),
        "best_epoch": best_epoch,
        "val_top1": val_top1,
        "test_top1": test_top1,
        "stopped_early": state.stopped,
        "epochs_run": len(state.history),
        "train_images_per_epoch": loop.images_per_epoch,
        "trained_classes": list(trained),
        "classes_unseen": len(keeping.unseen),
        "keep_old": keep_old,
        "retention": None if retention is None else retention.to_json(),
        "retention_warning": warning,
        "old_examples": None if keeping.old_examples is None or keeping.synthetic else len(keeping.old_examples[1]),
        "synthetic_old": len(keeping.old_examples[1]) if keeping.synthetic and keeping.old_examples else None,
        "unlabelled": None if keeping.unlabelled is None else len(keeping.unlabelled),
        "align": alignment if gamma is not None else "none",
        "align_gamma": gamma,
        "teacher_logits": {None: None, True: "cached", False: "computed"}[keeping.teacher_cached],
        "world_size": loop.dist.world,
    }
    entry = {
        "stage": "finetune",
        "data": training.source,
        "epochs": len(state.history),
        "freeze_epochs": config.freeze_epochs,
        "optimizer": config.optimizer,
        "lr": config.lr,
        "backbone_lr_mult": config.backbone_lr_mult,
        "seed": config.seed,
        "best_epoch": best_epoch,
        "val_top1": val_top1,
        "test_top1": test_top1,
        "trained_classes": list(trained),
        "keep_old": keep_old,
    }
    if loop.dist.world > 1:
        entry["world_size"] = loop.dist.world
        entry["sync_bn"] = config.sync_bn
    if retention is not None:
        entry["retention"] = retention.after  # over all classes, see Retention
        entry["retention_among_old_logits"] = retention.among_old_logits
        entry["retention_images_of"] = retention.images_of
    if keeping.old_examples is not None:
        entry["synthetic_old" if keeping.synthetic else "old_examples"] = len(keeping.old_examples[1])
    if keeping.unlabelled is not None:
        entry["unlabelled"] = len(keeping.unlabelled)
    if gamma is not None:
        entry["align"] = alignment
        entry["align_gamma"] = gamma
    model.cpu()
    record = source_cfg.replace(
        lineage=(*source_cfg.lineage, entry), head=source_cfg.head.with_trained_run(tuple(trained))
    )
    saved = record
    if loop.dist.is_main:
        files = history_files(summary, state.history, plot=config.plot)
        saved = save_model_dir(model, record, out, overwrite=overwrite, extra_files=files)
        if not config.keep_checkpoints:
            store.clear()
    loop.dist.barrier()  # the output exists on every rank's return
    return FinetuneResult(
        path=out,
        config=saved,
        module=model,
        history=state.history,
        val_top1=val_top1,
        test_top1=test_top1,
        best_epoch=best_epoch,
        stopped_early=state.stopped,
        resumed_from=resumed_from,
        seconds=time.perf_counter() - started,
        trained_classes=trained,
        keep_old=keep_old,
        retention=retention,
        teacher_cached=keeping.teacher_cached,
        rank=loop.dist.rank,
        world_size=loop.dist.world,
        align_gamma=gamma,
        warning=warning,
    )


def _top1(loop: Loop, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 of the trained model; under torchrun each rank evaluates its part and the counts add."""
    from toolkit.finetune.evaluate import evaluate_sums

    x, y = loop.dist.share(images), loop.dist.share(labels)
    sums = evaluate_sums(loop.model, x, y, batch_size=loop.config.eval_batch_size, device=loop.device)
    correct, _, count = loop.dist.sum(sums)
    return correct / max(count, 1)
