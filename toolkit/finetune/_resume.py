"""A run's checkpoint store: refusing another run's checkpoints, tidying it, and resuming from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from toolkit._text import listing
from toolkit.errors import InvalidArgumentError, OutputExistsError
from toolkit.finetune._loop import RunState
from toolkit.finetune.checkpoints import CheckpointStore
from toolkit.finetune.config import FinetuneConfig
from toolkit.finetune.progress import TrainingProgress
from toolkit.models.model_dir import load_weights_strict


def check_store(work: Path, *, resume: bool, overwrite: bool) -> CheckpointStore:
    """The run's store; refuses one that holds another run's checkpoints (read-only: every rank
    checks, so that all refuse alike).

    Args:
        work: the run's work directory.
        resume: whether the run continues from its checkpoints.
        overwrite: whether an earlier run's checkpoints may be replaced.
    """
    store = CheckpointStore(work)
    if store.paths() and not resume and not overwrite:
        raise OutputExistsError(
            f"'{work}' holds checkpoints of an earlier run",
            hint="pass resume=True to continue it, or overwrite=True to start over",
            param="resume",
        )
    return store


def prepare_store(store: CheckpointStore, *, resume: bool) -> None:
    """Rank 0 only: remove killed writes' leftovers, and the old checkpoints when starting over.

    Args:
        store: the run's store.
        resume: whether the run continues from its checkpoints (False: they are removed).
    """
    store.clean_temporaries()
    if store.paths() and not resume:
        store.clear()


def resume_point(
    store: CheckpointStore,
    model: nn.Module,
    run_info: dict[str, Any],
    config: FinetuneConfig,
    reporter: TrainingProgress,
    *,
    resume: bool,
) -> tuple[RunState, dict[str, Any] | None, Path | None]:
    """Where training starts: the newest readable checkpoint's state (its weights loaded into
    ``model``) when resuming, else the beginning; with the checkpoint and its path, if any.

    Args:
        store: the run's store.
        model: the model, which gets the checkpoint's weights.
        run_info: this run's record (``run_info``), which the checkpoint's must match.
        config: this run's settings, which the checkpoint's must match.
        reporter: where the resume is reported.
        resume: whether to continue from the newest checkpoint.
    """
    found = store.load_latest() if resume else None
    if found is None:
        if resume:
            reporter.message(f"no checkpoint in {store.folder}: starting from the beginning")
        return RunState(), None, None
    checkpoint, resumed_from = found
    _check_resumable(checkpoint["run"], run_info, config)
    load_weights_strict(model, checkpoint["model"], str(resumed_from))
    state = RunState.from_json(checkpoint["progress"])
    reporter.message(f"resuming from {resumed_from} (epoch {state.epoch + 1}, step {state.global_step})")
    return state, checkpoint, resumed_from


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
