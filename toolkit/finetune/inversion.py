"""Images of the old classes synthesised from the model itself (model inversion, DeepInversion).

Yin et al., "Dreaming to Distill: Data-free Knowledge Transfer via DeepInversion" (CVPR 2020),
used for data-free class-incremental learning by Smith et al. (ICCV 2021, "Always Be Dreaming").
Starting from noise, a batch of input images is optimised so that the ORIGINAL model calls each
one its target old class (cross-entropy over the old logits) while the statistics of every
BatchNorm layer's input over the batch match the running statistics that layer stored during
training on the old data, with a total-variation prior for smooth images. The images are then
replayed like ``old_examples`` (class-balanced, ``toolkit.finetune.replay``).

It needs BatchNorm layers (their running statistics are the only trace of the old data a model
keeps) and costs ``INVERSION_STEPS`` forward and backward passes of the whole model on the batch:
seconds for a small model at 32x32 on a CPU, far more for large models at 224 (see
docs/finetune.md). Cached beside the checkpoints (``SYNTHETIC_FILE``) so that a resumed run
replays the same images.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from toolkit import _atomic
from toolkit.errors import InvalidArgumentError
from toolkit.finetune.checkpoints import SYNTHETIC_FILE

#: optimisation steps (Adam, learning rate ``INVERSION_LR``) over the whole batch
INVERSION_STEPS = 200
INVERSION_LR = 0.1
#: weights of the BatchNorm-statistics, total-variation and L2 priors against the class loss
BN_WEIGHT, TV_WEIGHT, L2_WEIGHT = 0.05, 0.1, 1e-4


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The BatchNorm layers that kept running statistics.

    Args:
        model: the model.
    """
    return [
        m for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats and m.running_mean is not None
    ]  # fmt: skip


def synthesize(
    model: nn.Module,
    classes: Sequence[int],
    per_class: int,
    input_shape: tuple[int, ...],
    *,
    steps: int = INVERSION_STEPS,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_class`` images of each class index in ``classes``, and their labels.

    ``model`` is left as it was (mode, ``requires_grad``), and so is torch's global RNG. Raises
    ``InvalidArgumentError`` when the model has no BatchNorm layer to invert.

    Args:
        model: the original model, whose BatchNorm statistics the images match.
        classes: the class indices to synthesise.
        per_class: images per class.
        input_shape: C, H, W, in the model's normalised input space.
        steps: optimisation steps (default ``INVERSION_STEPS``).
        seed: the seed of the starting noise (default 0).
        device: where the model runs (default ``cpu``).
    """
    layers = batchnorm_layers(model)
    if not layers:
        raise InvalidArgumentError(
            "synthesising old-class images needs BatchNorm layers (their running statistics stand in for "
            "the old data), and this model has none",
            hint="give a few real images instead (old_examples), or unlabelled images",
            param="synthetic_old",
        )
    was_training = model.training
    grads = [p.requires_grad for p in model.parameters()]
    terms: list[torch.Tensor] = []

    def match(layer: nn.Module, inputs: tuple[torch.Tensor, ...], _out: torch.Tensor) -> None:
        x = inputs[0].float()
        dims = [0, *range(2, x.dim())]
        mean, var = x.mean(dims), x.var(dims, unbiased=False)
        running_mean, running_var = layer.running_mean, layer.running_var
        assert isinstance(running_mean, torch.Tensor) and isinstance(running_var, torch.Tensor)  # batchnorm_layers
        terms.append(torch.norm(mean - running_mean) + torch.norm(var - running_var))

    hooks = [layer.register_forward_hook(match) for layer in layers]
    old = torch.tensor(list(classes), dtype=torch.long, device=device)
    targets = torch.arange(len(classes), device=device).repeat_interleave(per_class)
    try:
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        with torch.random.fork_rng(devices=[]):
            generator = torch.Generator().manual_seed(seed)
            x = torch.randn(len(targets), *input_shape, generator=generator).to(device).requires_grad_()
        optimizer = torch.optim.Adam([x], lr=INVERSION_LR)
        for _ in range(steps):
            terms.clear()
            logits = model(x).float().index_select(1, old)
            tv = (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., 1:] - x[..., :-1]).abs().mean()
            loss = F.cross_entropy(logits, targets) + BN_WEIGHT * sum(terms) + TV_WEIGHT * tv
            loss = loss + L2_WEIGHT * x.pow(2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    finally:
        for hook in hooks:
            hook.remove()
        for p, g in zip(model.parameters(), grads, strict=True):
            p.requires_grad_(g)
        model.train(was_training)
    return x.detach().cpu(), old.cpu()[targets.cpu()]


def cached_synthesis(
    folder: str | Path,
    model: nn.Module,
    weights_sha256: str,
    classes: Sequence[int],
    per_class: int,
    input_shape: tuple[int, ...],
    *,
    seed: int,
    device: str | torch.device = "cpu",
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """``synthesize``, read from ``folder/SYNTHETIC_FILE`` when it was made for the same model,
    classes, count, shape and seed (a resumed run replays the same images); the last item says
    whether it came from the file.

    Args:
        folder: the run's work directory.
        model: the original model.
        weights_sha256: its weights' hash, part of the file's key.
        classes: the class indices to synthesise.
        per_class: images per class.
        input_shape: C, H, W, in the model's normalised input space.
        seed: the seed of the starting noise.
        device: where the model runs (default ``cpu``).
    """
    key = hashlib.sha256(
        repr((weights_sha256, tuple(classes), per_class, tuple(input_shape), seed, INVERSION_STEPS)).encode()
    ).hexdigest()
    path = Path(folder) / SYNTHETIC_FILE
    if path.is_file():
        try:
            saved = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception:  # a torn or foreign file is only a cache miss: synthesise again and replace it
            saved = None
        if isinstance(saved, dict) and saved.get("key") == key:
            return saved["images"], saved["labels"], True
    images, labels = synthesize(model, classes, per_class, input_shape, seed=seed, device=device)
    _atomic.write_with(
        path, lambda tmp: torch.save({"key": key, "images": images, "labels": labels}, tmp), overwrite=True
    )
    return images, labels, False
