"""Aligning the new rows with the old after a fine-tune on new-class data only: weight aligning
(row norms, Zhao et al.) and ``calibrate`` (one scale on the trained rows' logits, chosen on
validation images so that most of those that decided a new class before still do).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from toolkit.finetune.keep_old import model_logits
from toolkit.heads.modules import get_submodule, layer_bias, layer_weight, output_layer
from toolkit.records import HeadSpec

#: ``calibrate`` keeps this share of the validation images that decided a new class before.
CALIBRATION_KEEP = 0.95


def norm_ratio(model: nn.Module, spec: HeadSpec, trained: Sequence[int], kept: Sequence[int]) -> float:
    """Weight aligning's factor: mean L2 norm of the ``kept`` rows' weights / that of the
    ``trained`` rows' (1.0 when either set is empty).

    Args:
        model: the model.
        spec: its head spec.
        trained: the trained classes' indices.
        kept: the kept classes' indices.
    """
    if not trained or not kept:
        return 1.0
    weight = layer_weight(output_layer(get_submodule(model, spec.module))).detach().float()
    norms = weight.norm(dim=1)
    return float(norms[list(kept)].mean() / norms[list(trained)].mean().clamp_min(1e-12))


def calibrated_scale(logits: torch.Tensor, trained: Sequence[int], kept: Sequence[int]) -> float:
    """The smallest factor in (0, 1] for the ``trained`` classes' logits that keeps
    ``CALIBRATION_KEEP`` of the images deciding one of them, compared with the factor 1 (searched
    on a grid of 1/200 steps).

    Args:
        logits: the model's logits on validation images of the trained classes.
        trained: the trained classes' indices.
        kept: the kept classes' indices.
    """
    new, old = logits[:, list(trained)].float(), logits[:, list(kept)].float().amax(1)
    if not len(logits) or not trained or not kept:
        return 1.0

    def share(g: float) -> float:
        return float(((g * new).amax(1) > old).float().mean())

    floor = CALIBRATION_KEEP * share(1.0)
    best = 1.0
    for step in range(199, 0, -1):
        g = step / 200
        if share(g) < floor:
            break
        best = g
    return best


@torch.no_grad()
def scale_rows(model: nn.Module, spec: HeadSpec, rows: Sequence[int], gamma: float) -> None:
    """Multiply the ``rows`` of the head's output layer (weights and bias entries) by ``gamma``:
    their logits are scaled by it.

    Args:
        model: the model.
        spec: its head spec.
        rows: the class indices.
        gamma: the factor.
    """
    layer = output_layer(get_submodule(model, spec.module))
    weight, bias = layer_weight(layer), layer_bias(layer)
    index = torch.tensor(list(rows), dtype=torch.long, device=weight.device)
    weight[index] = weight[index] * gamma
    if bias is not None:
        bias[index] = bias[index] * gamma


def align_rows(
    model: nn.Module,
    spec: HeadSpec,
    trained: Sequence[int],
    kept: Sequence[int],
    method: str,
    val_images: torch.Tensor,
    *,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
) -> float:
    """Scale the ``trained`` rows' logits down so that they stop outscoring the ``kept`` ones by
    habit (the task-recency bias); returns the factor (1.0: unchanged). A factor above 1 is never
    applied.

    Args:
        model: the model.
        spec: its head spec.
        trained: the trained classes' indices.
        kept: the kept classes' indices.
        method: ``weights``: weight aligning (Zhao et al., CVPR 2020), the kept rows' mean weight
            norm over the trained rows'; ``calibrate``: ``calibrated_scale`` on ``val_images``.
        val_images: the run's validation images, which are of the trained classes.
        batch_size: images per forward pass (default 256).
        device: where the model runs (default ``cpu``).
    """
    if method == "weights":
        gamma = norm_ratio(model, spec, trained, kept)
    else:
        logits = model_logits(model, val_images, batch_size=batch_size, device=device)
        gamma = calibrated_scale(logits, trained, kept)
    gamma = min(gamma, 1.0)
    if gamma < 1.0:
        scale_rows(model, spec, trained, gamma)
    return gamma
