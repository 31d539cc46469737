"""Extra images in every training step: old examples replayed, unlabelled images distilled.

- ``old_examples``: a few labelled images of the old classes (any number per class, from one).
  Each step adds one of them per class (drawn in turn from the class's images), so seven images
  are seen as often as the new classes' hundreds, and the step's cross-entropy is class-balanced
  (``balanced_cross_entropy``): every class present in the step weighs the same.
- ``unlabelled``: any images, no labels. Each step adds up to half a batch of them; the original
  model's decision among the old classes on them is a soft target for the fine-tuned model's
  decision over ALL classes (``old_decision_loss``), which pulls the new logits down on images
  the original model calls old.

Which images a step adds depends only on (seed, epoch, batch), like the data order, so a resumed
run adds the same ones. Under torchrun each process takes its share of the added images.
"""

from __future__ import annotations

import dataclasses

import torch
from torch.nn import functional as F

from toolkit.data.augment import augment_batch
from toolkit.finetune import rng

#: the ``parts`` after (epoch, batch) of the generators that draw and augment added images
_REPLAY_DRAW, _REPLAY_AUGMENT, _UNLABELLED_DRAW, _UNLABELLED_AUGMENT = 2, 3, 4, 5


@dataclasses.dataclass
class Extras:
    """The images a step adds, on this process: replayed old examples (``rx``, ``ry``) and
    unlabelled images (``ux``) with the original model's logits on them (``ut``)."""

    rx: torch.Tensor | None = None
    ry: torch.Tensor | None = None
    ux: torch.Tensor | None = None
    ut: torch.Tensor | None = None

    def images(self) -> list[torch.Tensor]:
        return [t for t in (self.rx, self.ux) if t is not None]


class StepExtras:
    """Draws each step's extra images from ``old_examples`` (images, labels) and ``unlabelled``
    (images, and the original model's logits on them), on ``device``."""

    def __init__(
        self,
        *,
        seed: int,
        augment: str,
        batch_size: int,
        device: torch.device,
        old_examples: tuple[torch.Tensor, torch.Tensor] | None = None,
        unlabelled: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> None:
        self.seed, self.augment, self.device = seed, augment, device
        self.old = None if old_examples is None else tuple(t.to(device) for t in old_examples)
        self.by_class: list[torch.Tensor] = []
        if old_examples is not None:
            labels = old_examples[1]
            self.by_class = [torch.nonzero(labels == c).flatten() for c in torch.unique(labels).tolist()]
        self.unlabelled = None if unlabelled is None else tuple(t.to(device) for t in unlabelled)
        self.per_step = 0 if unlabelled is None else min(len(unlabelled[0]), max(1, batch_size // 2))

    @property
    def active(self) -> bool:
        return self.old is not None or self.unlabelled is not None

    def draw(self, epoch: int, b: int, span: tuple[int, int] | None = None) -> Extras:
        """The extra images of step ``b`` of ``epoch``.

        Args:
            epoch: the epoch (0-based).
            b: the step's batch index in the epoch.
            span: this process's (rank, world) share (default None: all).
        """
        out = Extras()
        if self.old is not None:
            g = rng.derived_generator(self.seed, epoch, b, _REPLAY_DRAW)
            idx = torch.stack([c[torch.randint(len(c), (1,), generator=g)][0] for c in self.by_class])
            start, stop = _share(len(idx), span)
            x = self.old[0].index_select(0, idx[start:stop].to(self.device))
            g = rng.derived_generator(self.seed, epoch, b, _REPLAY_AUGMENT)
            out.rx = augment_batch(x, g, mode=self.augment, span=(start, len(idx)))
            out.ry = self.old[1].index_select(0, idx[start:stop].to(self.device))
        if self.unlabelled is not None:
            images, teacher = self.unlabelled
            g = rng.derived_generator(self.seed, epoch, b, _UNLABELLED_DRAW)
            idx = torch.randperm(len(images), generator=g)[: self.per_step]
            start, stop = _share(len(idx), span)
            mine = idx[start:stop].to(self.device)
            g = rng.derived_generator(self.seed, epoch, b, _UNLABELLED_AUGMENT)
            out.ux = augment_batch(images.index_select(0, mine), g, mode=self.augment, span=(start, len(idx)))
            out.ut = teacher.index_select(0, mine)
        return out


def _share(n: int, span: tuple[int, int] | None) -> tuple[int, int]:
    if span is None:
        return 0, n
    rank, world = span
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def balanced_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, *, label_smoothing: float) -> torch.Tensor:
    """Cross-entropy in which every class present weighs the same: the mean over the classes of
    each class's mean loss (one replayed image of an old class counts as much as 20 of a new one).

    Args:
        logits: the student's logits, (N, classes).
        labels: the class indices, (N,).
        label_smoothing: the label smoothing, passed to ``F.cross_entropy``.
    """
    losses = F.cross_entropy(logits.float(), labels, reduction="none", label_smoothing=label_smoothing)
    classes, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    weights = 1.0 / counts[inverse].float()
    return (losses * weights).sum() / len(classes)


def old_decision_loss(
    student: torch.Tensor, teacher: torch.Tensor, old: torch.Tensor, temperature: float
) -> torch.Tensor:
    """``T^2`` times the cross-entropy between the original model's softmax over the ``old``
    classes (its logits ``teacher``, all classes) and the student's softmax over ALL classes, at
    temperature ``T``: on these images the new classes should take no probability.

    Args:
        student: the fine-tuned model's logits, all classes.
        teacher: the original model's logits, all classes.
        old: the indices of the old classes.
        temperature: the softmax temperature ``T``.
    """
    t = temperature
    target = F.softmax(teacher.float().index_select(1, old) / t, dim=1)
    log_q = F.log_softmax(student.float() / t, dim=1).index_select(1, old)
    return -(target * log_q).sum(1).mean() * (t * t)
