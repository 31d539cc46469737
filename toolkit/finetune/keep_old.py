"""Keeping the classes a run has no data for ("unseen"): frozen head rows, distillation, retention.

- ``FrozenRows``: the unseen classes' rows of the head's output layer (weight rows and bias
  entries) stay bit-identical. Zeroing their gradients is not enough: AdamW's decoupled weight
  decay (and SGD momentum left from earlier steps) would still move them, so they are also
  written back after every optimizer step.
- ``teacher_logits`` / ``TeacherCache``: the original model's logits on the un-augmented training
  images, computed once per run in eval mode and saved beside the checkpoints, keyed by the
  teacher's weights hash and the images, so a resumed run reads them instead of recomputing.
- ``distill_loss``: Learning without Forgetting (Li and Hoiem, 2016) on the unseen logits.
- ``align_rows``: after training, the trained rows' logits are scaled down so that they do not
  outscore the old ones by habit (the task-recency bias): weight aligning (Zhao et al., CVPR
  2020: to the unseen rows' mean norm) or a scale calibrated on the new classes' validation
  images (``calibrated_scale``).
- ``Retention``: how often the fine-tuned model makes the original model's decision, over ALL
  classes (the decision a deployed model makes), where that decision is an unseen class; and,
  secondary, the agreement among the unseen classes' logits only.
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
from toolkit.finetune.checkpoints import TEACHER_FILE, UNLABELLED_TEACHER_FILE
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
    """``model``'s float32 logits (N, classes) on ``images`` in eval mode, on the CPU; its mode is restored.

    Args:
        model: the model.
        images: the images, (N, C, H, W).
        batch_size: images per forward pass (default 256).
        device: where the model runs (default ``cpu``).
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
    when its file is missing or stale, once per run.

    Args:
        model: the original model.
        images: the training images, (N, C, H, W).
        batch_size: images per forward pass (default 256).
        device: where the model runs (default ``cpu``).
    """
    return model_logits(model, images, batch_size=batch_size, device=device)


def cache_key(weights_sha256: str, images: torch.Tensor) -> str:
    """What the teacher's logits depend on: its weights and the exact image tensor.

    Args:
        weights_sha256: the teacher's weights hash.
        images: the images it runs on.
    """
    digest = hashlib.sha256(weights_sha256.encode())
    digest.update(str(tuple(images.shape)).encode())
    digest.update(images.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class TeacherCache:
    """The teacher's logits for one run: read from ``folder/name`` (default ``TEACHER_FILE``)
    when its key matches."""

    def __init__(self, folder: str | Path, name: str = TEACHER_FILE) -> None:
        self.path = Path(folder) / name

    def get(
        self,
        model: nn.Module,
        images: torch.Tensor,
        weights_sha256: str,
        *,
        batch_size: int = 256,
        device: str | torch.device = "cpu",
    ) -> tuple[torch.Tensor, bool]:
        """The logits and whether they came from the file (``True``) or were computed now.

        Args:
            model: the original model.
            images: the images, (N, C, H, W).
            weights_sha256: the model's weights hash, part of the file's key.
            batch_size: images per forward pass (default 256).
            device: where the model runs (default ``cpu``).
        """
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

    Args:
        student: the fine-tuned model's logits.
        teacher: the original model's logits.
        temperature: ``T``.
    """
    t = temperature
    return F.kl_div(
        F.log_softmax(student.float() / t, dim=1),
        F.log_softmax(teacher.float() / t, dim=1),
        log_target=True,
        reduction="batchmean",
    ) * (t * t)


#: What a ``Retention`` was measured on (``Retention.images_of``).
OLD_CLASS_IMAGES, OTHER_IMAGES, TRAINING_IMAGES = "old classes", "other images", "new classes (training images)"


@dataclasses.dataclass(frozen=True)
class Retention:
    """How much of the original model's decision on the unseen (old) classes survives.

    ``after`` (the headline): on each image where the original model's argmax over ALL classes
    is an unseen class, whether the fine-tuned model's argmax over all classes is the same
    class; the fraction of such images (``images`` of them; ``before`` is 1.0 by definition).
    ``among_old_logits``: the same agreement with both argmaxes taken over the unseen classes'
    logits only, on the same images (what rehead reported as retention before issue 22: it
    says how the old classes rank among themselves, not whether the model still picks them).
    ``images_of`` says what the images were: ``OLD_CLASS_IMAGES`` (labelled images of the old
    classes), ``OTHER_IMAGES`` (unlabelled, any class) or ``TRAINING_IMAGES`` (the run's own
    images of the new classes: the model is taught to decide otherwise there, so the figure
    says little). ``source`` names them (a folder, ``digits``, ...).
    """

    before: float
    after: float
    images: int
    classes: int
    source: str
    among_old_logits: float = 0.0
    images_of: str = OLD_CLASS_IMAGES

    @property
    def on_old_class_images(self) -> bool:
        return self.images_of == OLD_CLASS_IMAGES

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def agreement(original: torch.Tensor, tuned: torch.Tensor, rows: Sequence[int]) -> float:
    """Fraction of images whose argmax over ``rows`` is the same in both logits.

    Args:
        original: the original model's logits, (N, classes).
        tuned: the fine-tuned model's logits, (N, classes).
        rows: the class indices compared.
    """
    index = torch.tensor(list(rows), dtype=torch.long)
    same = original[:, index].argmax(1) == tuned[:, index].argmax(1)
    return float(same.float().mean()) if len(same) else 0.0


def decided_old(original: torch.Tensor, rows: Sequence[int]) -> torch.Tensor:
    """Mask of the images on which the original model's argmax over all classes is in ``rows``.

    Args:
        original: the original model's logits, (N, classes).
        rows: the class indices.
    """
    return torch.isin(original.argmax(1), torch.tensor(list(rows), dtype=torch.long))


def full_agreement(original: torch.Tensor, tuned: torch.Tensor, rows: Sequence[int]) -> tuple[float, int]:
    """Among the images on which ``original``'s argmax over all classes is one of ``rows``: the
    fraction on which ``tuned``'s argmax over all classes is the same class, and their count.

    Args:
        original: the original model's logits, (N, classes).
        tuned: the fine-tuned model's logits, (N, classes).
        rows: the unseen classes' indices.
    """
    mask = decided_old(original, rows)
    count = int(mask.sum())
    if not count:
        return 0.0, 0
    same = original[mask].argmax(1) == tuned[mask].argmax(1)
    return float(same.float().mean()), count


#: An unlabelled image is taken for an old class's when the original model is surer of it than of
#: this share of the training images (which are of the new classes).
UNLABELLED_QUANTILE = 0.9


def looks_like_old(unlabelled: torch.Tensor, training: torch.Tensor, old: Sequence[int]) -> torch.Tensor:
    """Mask of the unlabelled images whose top softmax probability over the ``old`` classes exceeds
    ``UNLABELLED_QUANTILE`` of those on the training images: the images of new classes that an
    unlabelled folder also holds are (mostly) left out, so that distillation does not teach the
    model to call them old.

    Args:
        unlabelled: the original model's logits on the unlabelled images.
        training: the original model's logits on the training images.
        old: the old classes' indices.
    """
    index = torch.tensor(list(old), dtype=torch.long)

    def confidence(logits: torch.Tensor) -> torch.Tensor:
        return logits.float().index_select(1, index).softmax(1).amax(1)

    threshold = torch.quantile(confidence(training), UNLABELLED_QUANTILE)
    return confidence(unlabelled) > threshold


Split = tuple[torch.Tensor, torch.Tensor]


@dataclasses.dataclass
class Keeping:
    """The unseen classes of one run, what keeps them, and where their retention is measured.

    ``images`` (retention images; ``None``: chosen in ``prepare``) are ``images_of`` what
    ``source`` names. ``old_examples``: labelled images of old classes to replay;
    ``unlabelled``: images whose original-model logits (``unlabelled_teacher``, set by
    ``prepare``) are distilled.
    """

    unseen: tuple[int, ...]
    images: torch.Tensor | None = None
    original: torch.Tensor | None = None
    source: str = "training images"
    images_of: str = TRAINING_IMAGES
    old_examples: Split | None = None
    unlabelled: torch.Tensor | None = None
    unlabelled_teacher: torch.Tensor | None = None
    teacher_cached: bool | None = None
    #: the old examples were synthesised from the model (``synthetic_old``), not given
    synthetic: bool = False

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
        training images (cached in ``folder``) are returned, those on the retention and unlabelled
        images kept.

        Args:
            model: the original model.
            training: the run's training data.
            weights_sha256: the model's weights hash, the caches' key.
            config: the run's settings.
            folder: the run's work directory.
            reporter: where the choices are reported.
        """
        names = [training.class_names[i] for i in self.unseen]
        device = torch.device(config.device)
        if config.synthetic_old and self.old_examples is None:
            from toolkit.finetune.inversion import cached_synthesis

            images, labels, cached = cached_synthesis(
                folder, model, weights_sha256, self.unseen, config.synthetic_old, tuple(training.train[0].shape[1:]),
                seed=config.seed, device=device,
            )  # fmt: skip
            self.old_examples, self.synthetic = (images, labels), True
            reporter.message(
                f"{len(labels)} images of the unseen classes synthesised from the model (DeepInversion)"
                + (": read back from the work directory" if cached else "")
            )
        how = [config.keep_old]
        if self.old_examples is not None:
            kind = "synthesised old images" if self.synthetic else "old examples"
            how.append(f"{len(self.old_examples[1])} {kind} replayed")
        if self.unlabelled is not None:
            how.append(f"distillation on {len(self.unlabelled)} unlabelled images")
        alignment = config.alignment(old_examples=self.old_examples is not None)
        if alignment != "none":
            how.append({"weights": "weight aligning", "calibrate": "calibrated new logits"}[alignment])
        reporter.message(
            f"{len(self.unseen)} of {len(training.class_names)} classes unseen in the data ({listing(names)}); "
            f"keeping them with {listing(how, sep=' + ')}"
        )
        if self.old_examples is None or self.synthetic:
            reporter.message(
                "hint: a few images of the old classes (old_examples; --old-examples DIR), even one per class, "
                "keep them in the decision far better than the default; without any, images of the deployment "
                "(unlabelled; --unlabelled DIR) or images synthesised from the model (synthetic_old; "
                "--synthetic-old 4, slower) help (docs/finetune.md)"
            )
        if config.distills and len(self.unseen) == 1:
            reporter.message("note: with one unseen class its softmax is constant: distillation has nothing to match")
        batch = config.eval_batch_size
        teacher, self.teacher_cached = TeacherCache(folder).get(
            model, training.train[0], weights_sha256, batch_size=batch, device=device
        )
        if self.unlabelled is not None:
            logits, _ = TeacherCache(folder, UNLABELLED_TEACHER_FILE).get(
                model, self.unlabelled, weights_sha256, batch_size=batch, device=device
            )
            looks_old = looks_like_old(logits, teacher, self.unseen)
            reporter.message(
                f"{int(looks_old.sum())} of {len(logits)} unlabelled images look like old classes (the original "
                f"model is surer of them than of {UNLABELLED_QUANTILE:.0%} of the training images): distilled"
            )
            self.unlabelled, self.unlabelled_teacher = self.unlabelled[looks_old], logits[looks_old]
            if not len(self.unlabelled):
                self.unlabelled = self.unlabelled_teacher = None
        if self.images is None and self.old_examples is not None and not self.synthetic:
            self.images, self.images_of = self.old_examples[0], OLD_CLASS_IMAGES
            self.source = "old_examples (replayed in training: give retention_data for held-out images)"
        elif self.images is None and self.unlabelled is not None:
            self.images, self.images_of, self.original = self.unlabelled, OTHER_IMAGES, self.unlabelled_teacher
            self.source = "unlabelled images (distilled in training)"
        if self.images is None:
            self.images, self.original, self.images_of = training.train[0], teacher, TRAINING_IMAGES
            self.source = "training images (new classes)"
        elif self.original is None:
            self.original = model_logits(model, self.images, batch_size=batch, device=device)
        return teacher

    def measure(self, model: nn.Module, *, batch_size: int, device: torch.device) -> Retention | None:
        """Retention of the fine-tuned ``model``; ``None`` when nothing was kept.

        Args:
            model: the fine-tuned model.
            batch_size: images per forward pass.
            device: where the model runs.
        """
        if not self.unseen or self.images is None or self.original is None:
            return None
        tuned = model_logits(model, self.images, batch_size=batch_size, device=device)
        after, count = full_agreement(self.original, tuned, self.unseen)
        mask = decided_old(self.original, self.unseen)
        return Retention(
            before=1.0,
            after=after,
            images=count,
            classes=len(self.unseen),
            source=self.source,
            among_old_logits=agreement(self.original[mask], tuned[mask], self.unseen),
            images_of=self.images_of,
        )


def retention_warning(retention: Retention, *, old_examples: bool) -> str | None:
    """One line when the fine-tuned model keeps the original's decision on fewer than half of the
    images, saying what would help; ``None`` otherwise.

    Args:
        retention: the run's retention.
        old_examples: whether the run had images of the old classes.
    """
    if retention.after >= 0.5:
        return None
    where = (
        ""
        if retention.on_old_class_images
        else f" (measured on {retention.images_of}; retention_data with images of the old classes measures it)"
    )
    helps = (
        "more old examples per class, or fewer epochs"
        if old_examples
        else "one image per old class (old_examples; --old-examples DIR) helps most, else unlabelled images "
        "(--unlabelled DIR) or images synthesised from the model (--synthetic-old 4)"
    )
    return (
        f"warning: the fine-tuned model makes the original model's decision on only {retention.after:.0%} of "
        f"the images where that is an old class{where}; {helps}"
    )
