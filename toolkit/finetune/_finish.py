"""The end of a run: the final weights, the last measurements, the record, and the saved output.

After the loop: the best epoch's weights come back (``restore_best``), the trained rows are
aligned when some classes were unseen, the test split and the retention of the unseen classes
are measured, and rank 0 writes the model directory with ``metrics.json``, ``metrics.csv`` and
``curves.png``, the lineage extended by one ``finetune`` entry.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import torch

from toolkit.data.training import TrainingData
from toolkit.finetune._loop import Loop, RunState
from toolkit.finetune.align import align_rows
from toolkit.finetune.checkpoints import CheckpointStore
from toolkit.finetune.config import FinetuneConfig
from toolkit.finetune.history import history_files
from toolkit.finetune.keep_old import Keeping, Retention, retention_warning
from toolkit.finetune.result import FinetuneResult
from toolkit.models.model_dir import load_weights_strict, save_model_dir
from toolkit.records import ModelConfig


@dataclasses.dataclass(frozen=True)
class Run:
    """What a run loaded and decided before training, as ``finish`` needs it."""

    source: ModelConfig
    training: TrainingData
    keeping: Keeping
    config: FinetuneConfig
    store: CheckpointStore
    out: Path
    overwrite: bool
    started: float
    resumed_from: Path | None = None


@dataclasses.dataclass(frozen=True)
class _Outcome:
    """The run's numbers after training, as the metrics, the lineage and the result report them."""

    best_epoch: int  # 1-based, like the history records
    val_top1: float
    test_top1: float | None
    trained: tuple[int, ...]
    keep_old: str
    alignment: str
    gamma: float | None
    retention: Retention | None
    warning: str | None


def finish(loop: Loop, state: RunState, run: Run) -> FinetuneResult:
    """Measure, record and save the trained model; every rank returns once the output exists.

    Args:
        loop: the training loop, its model trained.
        state: where the run stopped.
        run: what the run loaded and decided before training.
    """
    best_epoch = _final_weights(loop, state, run.config)
    alignment, gamma = _align(loop, run)
    test_top1 = _top1(loop, *run.training.test) if run.training.test is not None else None
    retention, warning = _retention(loop, run)
    outcome = _Outcome(
        best_epoch=best_epoch,
        val_top1=_val_top1(state, run.config),
        test_top1=test_top1,
        trained=run.training.seen_classes(),
        keep_old=run.config.keep_old if run.keeping.unseen else "none",
        alignment=alignment,
        gamma=gamma,
        retention=retention,
        warning=warning,
    )
    entry = _lineage_entry(loop, state, run, outcome)
    model = loop.model
    model.cpu()
    source = run.source
    record = source.replace(
        lineage=(*source.lineage, entry), head=source.head.with_trained_run(tuple(outcome.trained))
    )
    saved = record
    if loop.dist.is_main:
        files = history_files(_summary(loop, state, run, outcome), state.history, plot=run.config.plot)
        saved = save_model_dir(model, record, run.out, overwrite=run.overwrite, extra_files=files)
        if not run.config.keep_checkpoints:
            run.store.clear()
    loop.dist.barrier()  # the output exists on every rank's return
    return FinetuneResult(
        path=run.out,
        config=saved,
        module=model,
        history=state.history,
        val_top1=outcome.val_top1,
        test_top1=outcome.test_top1,
        best_epoch=outcome.best_epoch,
        stopped_early=state.stopped,
        resumed_from=run.resumed_from,
        seconds=time.perf_counter() - run.started,
        trained_classes=outcome.trained,
        keep_old=outcome.keep_old,
        retention=outcome.retention,
        teacher_cached=run.keeping.teacher_cached,
        rank=loop.dist.rank,
        world_size=loop.dist.world,
        align_gamma=outcome.gamma,
        warning=outcome.warning,
    )


def _final_weights(loop: Loop, state: RunState, config: FinetuneConfig) -> int:
    """Restore the best epoch's weights (``restore_best``), unfrozen, in eval mode; its 1-based number."""
    from toolkit.heads import unfreeze_all

    model = loop.model
    best_epoch = state.best_epoch + 1  # 1-based, like the history records
    last_epoch = state.history[-1]["epoch"] if state.history else 0
    if config.restore_best and loop.best_model is not None and best_epoch != last_epoch:
        load_weights_strict(model, loop.best_model, "best epoch")
    unfreeze_all(model)
    model.eval()
    loop.dist.broadcast_buffers(model)  # restored best weights are each rank's copy: rank 0's rule
    return best_epoch


def _val_top1(state: RunState, config: FinetuneConfig) -> float:
    if config.restore_best:
        return state.best_top1
    return state.history[-1]["val_top1"] if state.history else 0.0


def _align(loop: Loop, run: Run) -> tuple[str, float | None]:
    """Scale the trained rows when some classes were unseen: the alignment and its factor (or ``None``)."""
    keeping, training = run.keeping, run.training
    alignment = run.config.alignment(old_examples=keeping.old_examples is not None)
    if not keeping.unseen or alignment == "none":
        return alignment, None
    trained = training.seen_classes()
    gamma = align_rows(
        loop.model, loop.spec, trained, keeping.unseen, alignment, training.val[0],
        batch_size=run.config.eval_batch_size, device=loop.device,
    )  # fmt: skip
    loop.reporter.message(f"align ({alignment}): the {len(trained)} trained classes' logits scaled by {gamma:.3f}")
    return alignment, gamma


def _retention(loop: Loop, run: Run) -> tuple[Retention | None, str | None]:
    """The unseen classes' retention (``None`` when every class had data) and its warning, reported."""
    keeping = run.keeping
    retention = keeping.measure(loop.model, batch_size=run.config.eval_batch_size, device=loop.device)
    if retention is None:
        return None, None
    loop.reporter.message(
        f"retention of the {retention.classes} unseen classes: {retention.after:.4f} of the original model's "
        f"decisions over all classes kept, on the {retention.images} images of {retention.images_of} where it "
        f"decided an old class ({retention.source}); among the old logits only: {retention.among_old_logits:.4f}"
    )
    warning = retention_warning(retention, old_examples=keeping.old_examples is not None and not keeping.synthetic)
    if warning is not None:
        loop.reporter.message(warning)
    return retention, warning


def _summary(loop: Loop, state: RunState, run: Run, outcome: _Outcome) -> dict[str, Any]:
    """``metrics.json``'s summary of the run."""
    keeping, retention = run.keeping, outcome.retention
    replayed = keeping.old_examples
    return {
        "title": f"{run.source.arch} on {run.training.source}",
        "data": run.training.describe(),
        "config": run.config.to_json(),
        "best_epoch": outcome.best_epoch,
        "val_top1": outcome.val_top1,
        "test_top1": outcome.test_top1,
        "stopped_early": state.stopped,
        "epochs_run": len(state.history),
        "train_images_per_epoch": loop.images_per_epoch,
        "trained_classes": list(outcome.trained),
        "classes_unseen": len(keeping.unseen),
        "keep_old": outcome.keep_old,
        "retention": None if retention is None else retention.to_json(),
        "retention_warning": outcome.warning,
        "old_examples": None if replayed is None or keeping.synthetic else len(replayed[1]),
        "synthetic_old": len(replayed[1]) if keeping.synthetic and replayed else None,
        "unlabelled": None if keeping.unlabelled is None else len(keeping.unlabelled),
        "align": outcome.alignment if outcome.gamma is not None else "none",
        "align_gamma": outcome.gamma,
        "teacher_logits": {None: None, True: "cached", False: "computed"}[keeping.teacher_cached],
        "world_size": loop.dist.world,
    }


def _lineage_entry(loop: Loop, state: RunState, run: Run, outcome: _Outcome) -> dict[str, Any]:
    """The ``finetune`` step the output's lineage records."""
    config, keeping, retention = run.config, run.keeping, outcome.retention
    entry: dict[str, Any] = {
        "stage": "finetune",
        "data": run.training.source,
        "epochs": len(state.history),
        "freeze_epochs": config.freeze_epochs,
        "optimizer": config.optimizer,
        "lr": config.lr,
        "backbone_lr_mult": config.backbone_lr_mult,
        "seed": config.seed,
        "best_epoch": outcome.best_epoch,
        "val_top1": outcome.val_top1,
        "test_top1": outcome.test_top1,
        "trained_classes": list(outcome.trained),
        "keep_old": outcome.keep_old,
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
    if outcome.gamma is not None:
        entry["align"] = outcome.alignment
        entry["align_gamma"] = outcome.gamma
    return entry


def _top1(loop: Loop, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 of the trained model; under torchrun each rank evaluates its part and the counts add."""
    from toolkit.finetune.evaluation import evaluate_sums

    x, y = loop.dist.share(images), loop.dist.share(labels)
    sums = evaluate_sums(loop.model, x, y, batch_size=loop.config.eval_batch_size, device=loop.device)
    correct, _, count = loop.dist.sum(sums)
    return correct / max(count, 1)
