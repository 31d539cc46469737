"""Top-1 accuracy and mean loss of a classifier on preprocessed images."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn
from torch.nn import functional as F

from toolkit.errors import InputShapeError


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """``top1`` as a fraction in [0, 1], mean cross-entropy ``loss`` (no smoothing), ``count`` images."""

    top1: float
    loss: float
    count: int


@torch.no_grad()
def evaluate_sums(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    amp: bool = False,
) -> tuple[int, float, int]:
    """Correct predictions, summed cross-entropy and image count of ``model`` on ``images``.

    Sums, not means, so that the parts of a split evaluated by several processes add up
    exactly (``toolkit.finetune.distributed``); zero images give zeros. The model's train/eval
    mode is restored afterwards; losses are computed in float32.

    Args:
        model: the model.
        images: the images, (N, C, H, W).
        labels: their class indices, (N,).
        batch_size: images per forward pass (default 256).
        device: where the model runs (default ``cpu``).
        amp: autocast, bf16 on CPU and fp16 on CUDA (default False).
    """
    if images.ndim != 4 or labels.ndim != 1 or len(images) != len(labels):
        raise InputShapeError(
            f"expected images (N, C, H, W) and labels (N,), "
            f"got {tuple(images.shape)} and {tuple(labels.shape)}"
        )
    was_training = model.training
    model.eval()
    dev = torch.device(device)
    dtype = torch.float16 if dev.type == "cuda" else torch.bfloat16
    correct, loss_sum = 0, 0.0
    try:
        for start in range(0, len(images), batch_size):
            x = images[start : start + batch_size].to(dev, non_blocking=True)
            y = labels[start : start + batch_size].to(dev, non_blocking=True)
            with torch.autocast(dev.type, dtype=dtype, enabled=amp):
                logits = model(x)
            logits = logits.float()
            loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(1) == y).sum())
    finally:
        model.train(was_training)
    return correct, loss_sum, len(labels)


def evaluate_detail(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    amp: bool = False,
) -> Evaluation:
    """Run ``model`` in eval mode over ``images``: top-1, mean loss and count.

    The model's train/eval mode is restored afterwards; losses are computed in float32.

    Args:
        model: the model.
        images: the images, (N, C, H, W).
        labels: their class indices, (N,).
        batch_size: images per forward pass (default 256).
        device: where the model runs (default ``cpu``).
        amp: autocast, bf16 on CPU and fp16 on CUDA (default False).
    """
    if len(labels) == 0:
        raise InputShapeError("cannot evaluate on zero images", hint="give at least one labelled image")
    correct, loss_sum, count = evaluate_sums(model, images, labels, batch_size=batch_size, device=device, amp=amp)
    return Evaluation(correct / count, loss_sum / count, count)


def evaluate(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
) -> float:
    """Top-1 accuracy of ``model`` on ``images``/``labels``, a fraction in [0, 1].

    Args:
        model: the model.
        images: the images, (N, C, H, W).
        labels: their class indices, (N,).
        batch_size: images per forward pass (default 256).
        device: where the model runs (default ``cpu``).
    """
    return evaluate_detail(model, images, labels, batch_size=batch_size, device=device).top1
