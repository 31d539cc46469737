"""Training checkpoints: written atomically, the last two kept, a corrupt latest one skipped.

A checkpoint is one ``step-<global step, 8 digits>.pt`` file in the run's work directory,
written with ``torch.save`` through ``toolkit._atomic.write_with`` (temp file, fsync,
``os.replace``): a kill or a full disk during the write leaves the previous checkpoints as
they were. It holds only tensors, numbers, strings, lists and dicts, so it loads with
``torch.load(weights_only=True)``: nothing in a checkpoint can run code.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from toolkit import _atomic
from toolkit._text import listing
from toolkit.errors import CorruptCheckpointError

#: The teacher's logits of a run that keeps unseen classes by distillation (``keep_old``).
TEACHER_FILE = "teacher-logits.pt"
#: The original model's logits on the ``unlabelled`` images of a run that distills on them.
UNLABELLED_TEACHER_FILE = "teacher-logits-unlabelled.pt"
#: The images a run synthesised of the old classes (``toolkit.finetune.inversion``).
SYNTHETIC_FILE = "synthetic-old.pt"
CHECKPOINT_PATTERN = re.compile(r"step-(\d{8})\.pt$")
#: Keys every checkpoint holds; a file without them is treated as corrupt.
REQUIRED_KEYS = frozenset({"format", "model", "optimizer", "scheduler", "scaler", "rng", "progress", "run"})
#: /2: 1-based epochs in the history, RNG state of torch only (CPU and the training GPU).
FORMAT = "rehead-finetune-checkpoint/2"


class CheckpointWarning(UserWarning):
    """A checkpoint could not be read and an older one is used instead."""


def checkpoint_name(step: int) -> str:
    """The file name of the checkpoint of global ``step`` (``step-00000042.pt``).

    Args:
        step: the global step.
    """
    return f"step-{step:08d}.pt"


class CheckpointStore:
    """The checkpoints of one run, in ``folder`` (created on the first save)."""

    def __init__(self, folder: str | os.PathLike[str], *, keep: int = 2) -> None:
        self.folder = Path(folder)
        self.keep = keep

    def paths(self) -> list[Path]:
        """Checkpoint files, oldest first (by global step)."""
        if not self.folder.is_dir():
            return []
        found = [p for p in self.folder.iterdir() if p.is_file() and CHECKPOINT_PATTERN.match(p.name)]
        return sorted(found, key=lambda p: p.name)

    def clean_temporaries(self) -> None:
        """Remove temp files that a killed write left behind (``.step-*.pt.*.tmp``, teacher logits)."""
        if self.folder.is_dir():
            for pattern in (".step-*.tmp", f".{TEACHER_FILE}.*.tmp", f".{UNLABELLED_TEACHER_FILE}.*.tmp",
                            f".{SYNTHETIC_FILE}.*.tmp"):
                for p in self.folder.glob(pattern):
                    p.unlink(missing_ok=True)

    def save(self, state: Mapping[str, Any], step: int) -> Path:
        """Write ``state`` as the checkpoint of global ``step``; then keep only the newest ``keep``.

        Args:
            state: the checkpoint's content.
            step: the global step.
        """
        path = self.folder / checkpoint_name(step)
        _atomic.write_with(path, lambda tmp: torch.save(dict(state), tmp), overwrite=True)
        for old in self.paths()[: -self.keep]:
            old.unlink(missing_ok=True)
        return path

    def load_latest(self) -> tuple[dict[str, Any], Path] | None:
        """The newest checkpoint that loads; each unreadable one is reported with a warning.

        Returns ``None`` when there is no checkpoint at all; raises ``CorruptCheckpointError``
        when there are checkpoints but none is readable.
        """
        paths = self.paths()
        failures = []
        for path in reversed(paths):
            try:
                return load_checkpoint(path), path
            except CorruptCheckpointError as exc:
                failures.append(exc.message)
                warnings.warn(
                    f"{exc.message}; falling back to the previous checkpoint", CheckpointWarning, stacklevel=2
                )
        if paths:
            raise CorruptCheckpointError(
                f"no readable checkpoint in '{self.folder}': {listing(failures, sep=' | ')}",
                hint="start over: overwrite=True, without resume",
                param="resume",
            )
        return None

    def clear(self) -> None:
        """Delete every checkpoint, the teacher's logits and temp files of this run, then the
        folder if it is empty."""
        self.clean_temporaries()
        for p in self.paths():
            p.unlink(missing_ok=True)
        (self.folder / TEACHER_FILE).unlink(missing_ok=True)
        (self.folder / UNLABELLED_TEACHER_FILE).unlink(missing_ok=True)
        (self.folder / SYNTHETIC_FILE).unlink(missing_ok=True)
        if self.folder.is_dir() and not any(self.folder.iterdir()):
            self.folder.rmdir()


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load one checkpoint with ``weights_only=True``; ``CorruptCheckpointError`` if unreadable.

    Args:
        path: the checkpoint file.
    """
    p = Path(path)
    try:
        state = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError, ... for bad files
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise CorruptCheckpointError(f"corrupt checkpoint '{p}': {first}") from exc
    if not isinstance(state, dict) or not set(state) >= REQUIRED_KEYS:
        raise CorruptCheckpointError(f"corrupt checkpoint '{p}': not a rehead fine-tuning checkpoint")
    if state["format"] != FORMAT:
        raise CorruptCheckpointError(
            f"checkpoint '{p}' has format {state['format']!r}, this version reads {FORMAT!r}",
            hint="start the run over (overwrite=True, without resume)",
        )
    return state
