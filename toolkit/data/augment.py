"""Light training augmentation on preprocessed batches, driven by an explicit generator.

Every random draw comes from the ``torch.Generator`` passed in, never from the global RNG, so a
batch's augmentation depends only on that generator's seed (the trainer derives it from the run
seed, the epoch and the batch index): a resumed run augments exactly like an uninterrupted one.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from toolkit.errors import InvalidArgumentError

AUGMENTATIONS = ("none", "shift", "shift-flip")


def check_augment(name: str) -> str:
    """``name`` if it is an augmentation: ``none``, ``shift`` (random translation) or ``shift-flip``
    (plus horizontal flips); ``InvalidArgumentError`` otherwise.

    Args:
        name: the augmentation asked for.
    """
    if name not in AUGMENTATIONS:
        raise InvalidArgumentError(
            f"unknown augmentation '{name}'", hint=f"one of {', '.join(AUGMENTATIONS)}", param="augment"
        )
    return name


def augment_batch(
    images: torch.Tensor,
    generator: torch.Generator,
    *,
    mode: str = "shift",
    max_shift: float = 0.08,
    span: tuple[int, int] | None = None,
) -> torch.Tensor:
    """A randomly shifted (and, with ``shift-flip``, mirrored) copy of ``images``.

    Borders are filled by replicating the edge pixels, so the background of normalised images stays
    the background.

    Args:
        images: the batch, (N, C, H, W).
        generator: the random draws' generator; it must live on the CPU.
        mode: ``none``, ``shift`` or ``shift-flip`` (default ``shift``).
        max_shift: the largest translation as a fraction of the side (default 0.08: about 2-3 pixels
            at 32x32).
        span: ``(start, total)``: ``images`` are items ``start:start + N`` of a batch of ``total``;
            the draws are made for the whole batch and this part's taken, so a batch split across
            processes is augmented exactly as it would be whole (default None: the whole batch).
    """
    check_augment(mode)
    if mode == "none" or images.numel() == 0:
        return images
    n, _, h, w = images.shape
    start, total = span if span is not None else (0, n)
    if start < 0 or start + n > total:
        raise InvalidArgumentError(f"span {span} does not hold {n} images", param="span")
    pad_h, pad_w = max(1, round(h * max_shift)), max(1, round(w * max_shift))
    padded = F.pad(images, (pad_w, pad_w, pad_h, pad_h), mode="replicate")
    part = slice(start, start + n)
    dy = torch.randint(0, 2 * pad_h + 1, (total,), generator=generator)[part].tolist()
    dx = torch.randint(0, 2 * pad_w + 1, (total,), generator=generator)[part].tolist()
    crops = [padded[i, :, y : y + h, x : x + w] for i, (y, x) in enumerate(zip(dy, dx, strict=True))]
    out = torch.stack(crops)
    if mode == "shift-flip":
        flip = torch.rand(total, generator=generator)[part] < 0.5
        if bool(flip.any()):
            out[flip.to(out.device)] = out[flip.to(out.device)].flip(-1)
    return out
