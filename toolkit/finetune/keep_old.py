"""Keeping the classes a run has no data for ("unseen"): frozen head rows, distillation, retention.

- ``FrozenRows``: the unseen classes' rows of the head's output layer (weight rows and bias
  entries) stay bit-identical. Zeroing their gradients is not enough: AdamW's decoupled weight
  decay (and SGD momentum left from earlier steps) would still move them, so they are also
  written back after every optimizer step.
- ``teacher_logits`` / ``TeacherCache``: the original model's logits on the un-augmented training
  images, computed once per run in eval mode and saved beside the checkpoints, keyed by the
  teacher's weights hash and the images, so a resumed run reads them instead of recomputing.
- ``distill_loss``: Learning without Forgetting (Li and Hoiem, 2016) on the unseen logits.
- ``Retention``: top-1 agreement with the original model, restricted to the unseen classes.
- ``Keeping``: what one run needs of all this, prepared before training (from the original
  model) and measured after it.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from toolkit import _atomic
from toolkit._text import listing
from toolkit.data.training import TrainingData
from toolkit.finetune.checkpoints import TEACHER_FILE
from toolkit.finetune.config import FinetuneConfig
from toolkit.finetune.progress import TrainingProgress
from toolkit.heads.modules import get_submodule, layer_bias, layer_weight, output_layer
from toolkit.records import HeadSpec


class FrozenRows:
    """Holds the ``rows`` (class indices) of the head's output layer fixed during training.

    The output layer is found from the recorded ``HeadSpec`` (its ``module``; the last layer of
    a bottleneck/MLP head), like the freezing policies in ``toolkit.heads.freeze``.
    """

    def __init__(self, model: nn.Module, spec: HeadSpec, rows: Sequence[int]) -> None:
        layer = output_layer(get_submodule(model, spec.module))
        self.weight = layer_weight(layer)
        self.bias = layer_bias(layer)
        self.rows = torch.tensor(list(rows), dtype=torch.long, device=self.weight.device)
        self.saved_weight = self.weight.detach()[self.rows].clone()
        self.saved_bias = None if self.bias is None else self.bias.detach()[self.rows].clone()

    def zero_grads(self) -> None:
        """Call after ``backward``: the frozen rows contribute nothing to clipping or moments."""
        for param in (self.weight, self.bias):
            if param is not None and param.grad is not None:
                param.grad[self.rows] = 0

    @torch.no_grad()
    def restore(self) -> None:
        """Call after the optimizer step: undo weight decay on the frozen rows, bit for bit."""
        self.weight[self.rows] = self.saved_weight
        if self.bias is not None and self.saved_bias is not None:
            self.bias[self.rows] = self.saved_bias


@torch.no_grad()
def model_logits(
    model: nn.Module, images: torch.Tensor, *, batch_size: int = 256, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """``model``'s float32 logits (N, classes) on ``images`` in eval mode, on the CPU.

    The model's train/eval mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    dev = torch.device(device)
    try:
        parts = [model(images[s : s + batch_size].to(dev)).float().cpu() for s in range(0, len(images), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(parts)


def teacher_logits(
    model: nn.Module, images: torch.Tensor, *, batch_size: int = 256, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """The teacher pass over the training images (``model_logits``); ``TeacherCache`` calls it only
    when its file is missing or stale, once per run."""
    return model_logits(model, images, batch_size=batch_size, device=device)


def cache_key(weights_sha256: str, images: torch.Tensor) -> str:
    """What the teacher's logits depend on: its weights and the exact image tensor."""
    digest = hashlib.sha256(weights_sha256.encode())
    digest.update(str(tuple(images.shape)).encode())
    digest.update(images.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class TeacherCache:
    """The teacher's logits for one run: read from ``folder/TEACHER_FILE`` when its key matches."""

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / TEACHER_FILE

    def get(
        self,
        model: nn.Module,
        images: torch.Tensor,
        weights_sha256: str,
        *,
        batch_size: int = 256,
        device: str | torch.device = "cpu",
    ) -> tuple[torch.Tensor, bool]:
        """The logits and whether they came from the file (``True``) or were computed now."""
        key = cache_key(weights_sha256, images)
        if self.path.is_file():
            try:
                saved = torch.load(str(self.path), map_location="cpu", weights_only=True)
            except Exception:  # a torn or foreign file is only a cache miss: recompute and replace it
                saved = None
            if isinstance(saved, dict) and saved.get("key") == key and isinstance(saved.get("logits"), torch.Tensor):
                return saved["logits"], True
        logits = teacher_logits(model, images, batch_size=batch_size, device=device)
        _atomic.write_with(self.path, lambda tmp: torch.save({"key": key, "logits": logits}, tmp), overwrite=True)
        return logits, False


def distill_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T^2 * KL(softmax(teacher/T) || softmax(student/T))``, mean over the batch.

    ``T^2`` keeps the gradient's size independent of the temperature (Hinton et al., 2015).
    """
    t = temperature
    return F.kl_div(
        F.log_softmax(student.float() / t, dim=1),
        F.log_softmax(teacher.float() / t, dim=1),
        log_target=True,
        reduction="batchmean",
    ) * (t * t)


@dataclasses.dataclass(frozen=True)
class Retention:
    """Top-1 agreement with the original model on the unseen (old) classes.

    On each image, the argmax over the unseen classes' logits only, of the original and of the
    fine-tuned model; ``after`` is the fraction of images where the two agree (``before`` is 1.0
    by definition). ``images`` were ``source`` (a folder, or the training images).
    """

    before: float
    after: float
    images: int
    classes: int
    source: str

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def agreement(original: torch.Tensor, tuned: torch.Tensor, rows: Sequence[int]) -> float:
    """Fraction of images whose argmax over ``rows`` is the same in both (N, classes) logits."""
    index = torch.tensor(list(rows), dtype=torch.long)
    same = original[:, index].argmax(1) == tuned[:, index].argmax(1)
    return float(same.float().mean())


@dataclasses.dataclass
class Keeping:
    """The unseen classes of one run, and the original model's logits on the images retention is
    measured on (``source``: a folder, or the training images)."""

    unseen: tuple[int, ...]
    images: torch.Tensor | None = None
    original: torch.Tensor | None = None
    source: str = "training images"
    teacher_cached: bool | None = None

    def prepare(
        self,
        model: nn.Module,
        training: TrainingData,
        weights_sha256: str,
        config: FinetuneConfig,
        folder: Path,
        reporter: TrainingProgress,
    ) -> torch.Tensor:
        """Call with the ORIGINAL model (before a checkpoint's weights are loaded): its logits on the
        training images (cached in ``folder``) are returned, those on the retention images kept."""
        names = [training.class_names[i] for i in self.unseen]
        reporter.message(
            f"{len(self.unseen)} of {len(training.class_names)} classes unseen in the data ({listing(names)}); "
            f"keeping them with {config.keep_old}"
        )
        if config.distills and len(self.unseen) == 1:
            reporter.message("note: with one unseen class its softmax is constant: distillation has nothing to match")
        device = torch.device(config.device)
        teacher, self.teacher_cached = TeacherCache(folder).get(
            model, training.train[0], weights_sha256, batch_size=config.eval_batch_size, device=device
        )
        if self.images is not None:
            self.original = model_logits(model, self.images, batch_size=config.eval_batch_size, device=device)
        else:
            self.images, self.original = training.train[0], teacher
        return teacher

    def measure(self, model: nn.Module, *, batch_size: int, device: torch.device) -> Retention | None:
        """Retention of the fine-tuned ``model``; ``None`` when nothing was kept."""
        if not self.unseen or self.images is None or self.original is None:
            return None
        tuned = model_logits(model, self.images, batch_size=batch_size, device=device)
        return Retention(
            before=1.0,
            after=agreement(self.original, tuned, self.unseen),
            images=len(self.images),
            classes=len(self.unseen),
            source=self.source,
        )
