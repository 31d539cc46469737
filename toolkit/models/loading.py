"""Load a source model: an architecture name with weights (a file, or pretrained weights by
name), or a random initialisation; ``imagenet_class_names`` for random torchvision backbones."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from toolkit.errors import InvalidArgumentError
from toolkit.models.pretrained import RANDOM_INITIALISATION, WeightsInfo


@dataclasses.dataclass
class SourceModel:
    """A loaded source model (eval mode), the builder arguments that rebuild it, and what came
    with its weights (``weights.source`` is the lineage record of where they came from)."""

    module: nn.Module
    arch_kwargs: Mapping[str, Any]
    weights: WeightsInfo


def load_source(
    arch: str,
    weights: str | os.PathLike[str] | None = None,
    *,
    pretrained: bool = False,
    allow_pickle: bool = False,
    progress: bool = False,
    **arch_kwargs: Any,
) -> SourceModel:
    """Build ``arch`` and load its weights.

    Keys and shapes must match exactly; NaN/Inf weights are refused. Downloads go through torch
    hub's and the Hugging Face hub's caches only (``toolkit.models.pretrained``).

    Args:
        arch: a torchvision builder, ``timm:<name>[.<tag>]`` or ``py:<module>:<callable>``.
        weights: a file (``.safetensors``, or a ``.pt``/``.pth`` state dict loaded weights-only) when
            it exists or has one of those suffixes; otherwise the name of torchvision weights for
            ``arch`` (``IMAGENET1K_V1``, ``DEFAULT``, ``ResNet18_Weights.IMAGENET1K_V1``). Default
            None: with no ``pretrained`` either, a random initialisation from torch's RNG.
        pretrained: load a timm model's hub weights (default False).
        allow_pickle: load a file that needs full unpickling (a whole pickled module), which runs
            its code (default False).
        progress: show downloads on stderr (default False).
        **arch_kwargs: passed to the builder (``num_classes``, ...).
    """
    from toolkit.models.architectures import build_architecture
    from toolkit.models.checkpoint import load_state_dict
    from toolkit.models.model_dir import load_weights_strict

    if "num_classes" in arch_kwargs:
        from toolkit._args import positive_int

        positive_int(arch_kwargs["num_classes"], "source_num_classes", example="1000")
    if pretrained:
        if weights is not None:
            raise InvalidArgumentError(
                "give weights or pretrained, not both", hint="pretrained loads timm's own weights", param="pretrained"
            )
        if not arch.startswith("timm:"):
            raise InvalidArgumentError(
                f"pretrained applies to timm:<name> architectures, not '{arch}'",
                hint="name torchvision weights instead, e.g. weights='IMAGENET1K_V1' (or 'DEFAULT')",
                param="pretrained",
            )
        from toolkit.models.pretrained import load_timm_pretrained

        module, info = load_timm_pretrained(arch, progress=progress, **arch_kwargs)
        return SourceModel(module.eval(), dict(arch_kwargs), info)
    if weights is None:
        model = build_architecture(arch, **arch_kwargs)
        return SourceModel(model.eval(), dict(arch_kwargs), WeightsInfo(RANDOM_INITIALISATION))
    from toolkit.models.pretrained import file_source, is_weights_file

    if is_weights_file(weights):
        if not Path(weights).exists():
            raise InvalidArgumentError(
                f"weights file '{weights}' does not exist", hint="check the path", param="weights"
            )
        state = load_state_dict(weights, allow_pickle=allow_pickle)
        model = build_architecture(arch, **arch_kwargs)
        load_weights_strict(model, state, str(weights))
        return SourceModel(model.eval(), dict(arch_kwargs), WeightsInfo(file_source(weights)))
    if arch.startswith(("timm:", "py:")):
        raise InvalidArgumentError(
            f"weights file '{weights}' does not exist (names of weights are torchvision's)",
            hint="for timm models use pretrained=True (timm:<name>.<tag> picks the weights); else give a file",
            param="weights",
        )
    from toolkit.models.architectures import torchvision_classifiers

    if arch not in torchvision_classifiers():
        build_architecture(arch)  # raises: an unknown architecture is named as such, before its weights
    from toolkit.models.pretrained import load_torchvision_weights

    state, info = load_torchvision_weights(arch, str(weights), progress=progress)
    if info.class_names is not None and arch_kwargs.get("num_classes", len(info.class_names)) != len(info.class_names):
        raise InvalidArgumentError(
            f"source_num_classes {arch_kwargs['num_classes']} contradicts {info.source['name']}, "
            f"which have {len(info.class_names)} classes",
            hint="leave source_num_classes out with named weights",
            param="source_num_classes",
        )
    kwargs = {**arch_kwargs, **info.arch_kwargs}
    model = build_architecture(arch, **kwargs)
    load_weights_strict(model, state, str(info.source["name"]))
    return SourceModel(model.eval(), kwargs, info)


def load_model(
    arch: str,
    weights: str | os.PathLike[str] | None = None,
    *,
    pretrained: bool = False,
    allow_pickle: bool = False,
    **arch_kwargs: Any,
) -> nn.Module:
    """``load_source(...).module``, in eval mode.

    Args:
        arch: a torchvision builder, ``timm:<name>[.<tag>]`` or ``py:<module>:<callable>``.
        weights: a file or a torchvision weights name (default None: random weights, or timm's
            with ``pretrained``).
        pretrained: load a timm model's hub weights (default False).
        allow_pickle: load a file that needs full unpickling (a whole pickled module), which runs
            its code (default False).
        **arch_kwargs: passed to the builder.
    """
    return load_source(arch, weights, pretrained=pretrained, allow_pickle=allow_pickle, **arch_kwargs).module


def imagenet_class_names(arch: str, num_classes: int) -> tuple[str, ...] | None:
    """Category names from torchvision's weights metadata (no download), if they fit.

    Args:
        arch: the architecture (timm and ``py:`` ones have none here).
        num_classes: how many names fit its head.
    """
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
    from toolkit.models.pretrained import distinct_names

    return distinct_names(categories)
