"""``FinetuneConfig``: every setting of a fine-tuning run, validated, frozen and recorded."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from typing import Any

from toolkit._args import positive_int
from toolkit.errors import InvalidArgumentError

OPTIMIZERS = ("adamw", "sgd")
AUGMENT_CHOICES = ("auto", "none", "shift", "shift-flip")
#: How the classes without training images ("unseen") are kept; see ``FinetuneConfig``.
KEEP_OLD_CHOICES = ("auto", "none", "freeze-rows", "distill", "freeze-rows+distill", "new-rows")
#: The default ``keep_old``. It matters only when the data covers a subset of the model's
#: classes (with every class present all modes train alike). From the issue-22 keep-old study in
#: the README; change it here only with that study's numbers. ``auto`` is ``new-rows`` (the
#: backbone and the old rows frozen, no feature drift) without old examples, with
#: ``DEFAULT_ALIGN``: the best data-free combination at no extra cost (synthetic images keep more,
#: at many times the cost: ``synthetic_old``); and ``distill`` with them (replay with distillation
#: kept old and new classes best together: 1 image per old class gave 91.8 / 97.1 on the 0-6
#: split, new-rows with replay 96.0 / 86.2).
DEFAULT_KEEP_OLD = "auto"
KEEP_OLD_AUTO = {False: "new-rows", True: "distill"}
#: ``new-rows`` trains a linear layer on frozen features, which wants a larger step than a head
#: trained with its backbone: its learning rate is ``lr`` times this (0.03 at the default ``lr``;
#: the keep-old probes: 3e-3 left the new rows under-trained, new-class top-1 0.54-0.84).
NEW_ROWS_LR_MULT = 10.0
#: How the trained rows are scaled after training when some classes were unseen (``align``).
ALIGN_CHOICES = ("auto", "none", "weights", "calibrate")
#: What ``align="auto"`` means without old examples (with them it means ``none``). From the
#: issue-22 keep-old study in the README; change it only with that study's numbers.
DEFAULT_ALIGN = "calibrate"

#: ``finetune``'s ``val_ratio``: the fraction of each class held out for validation when the data
#: has no validation part. Not a field of ``FinetuneConfig`` (it says how the data is read, and
#: the data is recorded apart); the CLI's ``--val-ratio`` default too.
DEFAULT_VAL_RATIO = 0.15

#: Settings that do not change the trajectory of a run: a resume may change them.
RESUME_FREE = frozenset({"device", "threads", "keep_checkpoints", "checkpoint_every_steps", "plot"})


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    """Settings of ``finetune``; the defaults fine-tune a head-extended resnet18 on digits.

    Schedule: ``epochs`` in all, of which the first ``freeze_epochs`` train the head only
    (backbone parameters and BatchNorm statistics frozen); the rest train the head at ``lr``
    and the backbone at ``lr * backbone_lr_mult``. ``unfreeze_stages`` = ``None`` opens the
    whole backbone in the second phase; ``k`` opens only its last ``k`` stages; ``0`` keeps it
    frozen. Each phase has its own cosine schedule after a linear warm-up of ``warmup_epochs``
    epochs (fractions allowed), decaying to ``lr * final_lr_ratio``.

    Optimiser: ``adamw`` (``weight_decay`` decoupled, none on biases and norms) or ``sgd``
    (Nesterov ``momentum``). ``label_smoothing`` is the cross-entropy smoothing (0 = off).
    ``clip_grad_norm`` clips the global gradient L2 norm (``None`` = off).

    ``amp``: mixed precision; ``None`` (default) means fp16 autocast with a gradient scaler on
    CUDA and none on CPU (bf16 autocast measured no faster for small CPU models here; ``True``
    turns it on). ``patience``: stop after that many epochs without a better validation top-1
    (``None`` = never); ``restore_best`` then saves the best epoch's weights, not the last.

    ``seed`` fixes the initial RNG state, the data order (derived from seed and epoch) and the
    augmentation (derived from seed, epoch and batch): on CPU two runs with the same seed and
    ``threads`` give bit-identical weights, interrupted and resumed or not. ``threads`` sets
    ``torch.set_num_threads`` (``None`` = leave as is). ``checkpoint_every_steps`` adds
    mid-epoch checkpoints (a checkpoint is always written at the end of each epoch).

    ``keep_old``: how classes without training images (data for a subset of the classes, e.g.
    the new ones only) keep what the original model knew. ``none``: plain fine-tuning (they are
    forgotten); ``freeze-rows``: their head rows and bias entries stay bit-identical;
    ``distill``: Learning without Forgetting, the original model's logits on the (un-augmented)
    training images are soft targets for their logits, adding ``distill_weight * T^2 *
    KL(teacher || student)`` at temperature ``T = distill_temperature``;
    ``freeze-rows+distill``: both. Default ``DEFAULT_KEEP_OLD``. With every class in the data
    there is nothing to keep and all modes give the same run.

    Under torchrun (several processes, ``toolkit.finetune.distributed``) ``batch_size`` is the
    GLOBAL batch, split across the processes, so the run does not depend on how many there are
    (up to float rounding). ``sync_bn``: in the phases that train BatchNorm, its statistics are
    computed over the global batch rather than each process's share (no effect on one process).

    ``synthetic_old``: with classes unseen and no ``old_examples``, this many images per unseen
    class are synthesised from the original model (DeepInversion, ``toolkit.finetune.inversion``;
    the model needs BatchNorm layers) and replayed like old examples. 0 (default): off, for its
    cost (the keep-old study in the README).
    """

    epochs: int = 6
    freeze_epochs: int = 1
    unfreeze_stages: int | None = None
    batch_size: int = 64
    lr: float = 3e-3
    backbone_lr_mult: float = 0.3
    optimizer: str = "adamw"
    weight_decay: float = 0.05
    momentum: float = 0.9
    warmup_epochs: float = 0.5
    final_lr_ratio: float = 0.01
    label_smoothing: float = 0.1
    clip_grad_norm: float | None = 2.0
    amp: bool | None = None
    patience: int | None = 4
    restore_best: bool = True
    augment: str = "auto"
    seed: int = 0
    device: str = "cpu"
    threads: int | None = None
    checkpoint_every_steps: int | None = None
    keep_checkpoints: bool = False
    eval_batch_size: int = 256
    plot: bool = True
    keep_old: str = DEFAULT_KEEP_OLD
    distill_weight: float = 1.0
    distill_temperature: float = 2.0
    align: str = "auto"
    sync_bn: bool = False
    synthetic_old: int = 0

    def __post_init__(self) -> None:
        _int(self.epochs, "epochs", minimum=1)
        _int(self.freeze_epochs, "freeze_epochs", minimum=0)
        _int(self.batch_size, "batch_size", minimum=1)
        _int(self.eval_batch_size, "eval_batch_size", minimum=1)
        _int(self.seed, "seed", minimum=0)
        _int(self.synthetic_old, "synthetic_old", minimum=0)
        for name in ("unfreeze_stages", "patience", "threads", "checkpoint_every_steps"):
            value = getattr(self, name)
            if value is not None:
                _int(value, name, minimum=0 if name == "unfreeze_stages" else 1)
        _float(self.lr, "lr", low=0.0, low_open=True)
        _float(self.backbone_lr_mult, "backbone_lr_mult", low=0.0)
        _float(self.weight_decay, "weight_decay", low=0.0)
        _float(self.momentum, "momentum", low=0.0, high=1.0)
        _float(self.warmup_epochs, "warmup_epochs", low=0.0)
        _float(self.final_lr_ratio, "final_lr_ratio", low=0.0, high=1.0)
        _float(self.label_smoothing, "label_smoothing", low=0.0, high=1.0, high_open=True)
        if self.clip_grad_norm is not None:
            _float(self.clip_grad_norm, "clip_grad_norm", low=0.0, low_open=True)
        _choice(self.optimizer, "optimizer", OPTIMIZERS)
        if not (isinstance(self.device, str) and re.fullmatch(r"cpu|cuda(:\d+)?", self.device)):
            # the form only: whether that GPU exists is finetune's check (toolkit._args.check_device)
            raise InvalidArgumentError(f"unknown device '{self.device}'", hint="cpu, cuda or cuda:N", param="device")
        _choice(self.augment, "augment", AUGMENT_CHOICES)
        _choice(self.keep_old, "keep_old", KEEP_OLD_CHOICES)
        _float(self.distill_weight, "distill_weight", low=0.0)
        _float(self.distill_temperature, "distill_temperature", low=0.0, low_open=True)
        _choice(self.align, "align", ALIGN_CHOICES)
        if not isinstance(self.sync_bn, bool):
            raise InvalidArgumentError(f"sync_bn must be True or False, got {self.sync_bn!r}", param="sync_bn")

    def replace(self, **changes: Any) -> FinetuneConfig:
        """A copy with ``changes`` applied (records are frozen).

        Args:
            changes: the fields to change, by name, and their new values.
        """
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FinetuneConfig:
        """A config from its saved fields (a checkpoint's); keys that are no field are ignored.

        Args:
            data: the saved fields.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def freezes_rows(self) -> bool:
        """Whether unseen classes' head rows are frozen (``freeze-rows``, ``freeze-rows+distill``, ``new-rows``)."""
        return self.keep_old.startswith("freeze-rows") or self.keep_old == "new-rows"

    @property
    def distills(self) -> bool:
        """Whether unseen classes' logits are distilled from the original model."""
        return self.keep_old.endswith("distill")

    @property
    def trains_new_rows_only(self) -> bool:
        """``new-rows``: the backbone stays frozen every epoch and the unseen rows too."""
        return self.keep_old == "new-rows"

    def resolved(self, *, old_examples: bool) -> FinetuneConfig:
        """This config with ``keep_old="auto"`` replaced by what it means (``KEEP_OLD_AUTO``).

        Args:
            old_examples: whether the run has images of the old classes.
        """
        if self.keep_old != "auto":
            return self
        return self.replace(keep_old=KEEP_OLD_AUTO[old_examples])

    def alignment(self, *, old_examples: bool) -> str:
        """How the trained rows are scaled after training: ``align``, with ``auto`` resolved
        (``DEFAULT_ALIGN`` without old examples, ``none`` with them).

        Args:
            old_examples: whether the run has images of the old classes.
        """
        if self.align != "auto":
            return self.align
        return "none" if old_examples else DEFAULT_ALIGN

    def uses_amp(self) -> bool:
        """Whether this run autocasts: the ``amp`` setting, or its per-device default."""
        return self.device.startswith("cuda") if self.amp is None else self.amp

    def differences(self, other: FinetuneConfig) -> list[str]:
        """Trajectory-changing settings that differ from ``other``, as ``name: ours vs theirs``.

        Args:
            other: the config to compare with (a checkpoint's).
        """
        return [
            f"{f.name}: {getattr(self, f.name)!r} vs {getattr(other, f.name)!r}"
            for f in dataclasses.fields(self)
            if f.name not in RESUME_FREE and getattr(self, f.name) != getattr(other, f.name)
        ]


def _int(value: object, name: str, *, minimum: int) -> None:
    if minimum == 1:
        default = {f.name: f.default for f in dataclasses.fields(FinetuneConfig)}.get(name)
        positive_int(value, name, example=str(default) if isinstance(default, int) and default > 0 else "1")
    elif isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidArgumentError(f"{name} must be an integer >= {minimum}, got {value!r}", param=name)


def _float(
    value: object,
    name: str,
    *,
    low: float,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value))
    if ok:
        v = float(value)  # type: ignore[arg-type]
        ok = (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if not ok:
        lo, hi = "(" if low_open else "[", ")" if high_open else "]"
        raise InvalidArgumentError(f"{name} must be a number in {lo}{low:g}, {high:g}{hi}, got {value!r}", param=name)


def _choice(value: object, name: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InvalidArgumentError(f"unknown {name} '{value}'", hint=f"one of {', '.join(choices)}", param=name)
