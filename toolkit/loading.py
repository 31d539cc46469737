"""Load a source model: an architecture name with optional weights, or a model directory."""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from toolkit.errors import InvalidArgumentError


def load_model(
    arch: str,
    weights: str | os.PathLike[str] | None = None,
    *,
    allow_pickle: bool = False,
    **arch_kwargs: object,
) -> nn.Module:
    """Build ``arch`` (torchvision builder, ``timm:<name>``, ``py:<module>:<callable>``) and load
    ``weights`` (``.safetensors``, or a ``.pt``/``.pth`` state dict with ``weights_only=True``).

    A file holding a whole pickled module loads only with ``allow_pickle=True``. Keys and shapes
    must match exactly; NaN/Inf weights are refused. Returns the module in eval mode.
    """
    from toolkit.architectures import build_architecture
    from toolkit.checkpoint import load_state_dict
    from toolkit.model_dir import load_weights_strict

    if "num_classes" in arch_kwargs:
        from toolkit._args import positive_int

        positive_int(arch_kwargs["num_classes"], "source_num_classes", example="1000")
    if weights is not None and not Path(weights).exists():
        raise InvalidArgumentError(f"weights file '{weights}' does not exist", hint="check the path", param="weights")
    state = load_state_dict(weights, allow_pickle=allow_pickle) if weights is not None else None
    model = build_architecture(arch, **arch_kwargs)
    if state is not None:
        load_weights_strict(model, state, str(weights))
    return model.eval()


def imagenet_class_names(arch: str, num_classes: int) -> tuple[str, ...] | None:
    """Category names from torchvision's weights metadata (no download), if they fit."""
    if arch.startswith(("timm:", "py:")):
        return None
    try:
        import torchvision

        weights = torchvision.models.get_model_weights(arch)
        categories = next(iter(weights)).meta.get("categories")
    except (ValueError, StopIteration, KeyError, AttributeError):
        return None
    if not categories or len(categories) != num_classes:
        return None
    # ImageNet has two 'crane' and two 'maillot' entries: keep names distinct.
    seen: dict[str, int] = {}
    names = []
    for c in categories:
        seen[c] = seen.get(c, 0) + 1
        names.append(c if seen[c] == 1 else f"{c}_{seen[c]}")
    return tuple(names)
