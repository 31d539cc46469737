"""``extend``: the head-surgery stage as one call, from a source model to a model directory."""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from toolkit._text import listing
from toolkit.errors import InvalidArgumentError
from toolkit.heads.strategies import PAD_STRATEGIES
from toolkit.models.pretrained import RandomInitialisationWarning, WeightsInfo
from toolkit.records import HeadSpec, ModelConfig, Preprocessing, check_class_names


@dataclasses.dataclass
class ExtendResult:
    """The extended module (eval mode), its record, and where it was saved (if it was)."""

    module: nn.Module
    config: ModelConfig
    path: Path | None


def _source(
    arch: str | None,
    model_dir: str | os.PathLike[str] | None,
    weights: str | os.PathLike[str] | None,
    pretrained: bool,
    random_init: bool,
    allow_pickle: bool,
    source_num_classes: int | None,
    seed: int,
    progress: bool,
) -> tuple[nn.Module, ModelConfig | None, str, Mapping[str, Any], WeightsInfo]:
    from toolkit.heads.modules import seeded

    if (arch is None) == (model_dir is None):
        raise InvalidArgumentError("give exactly one source: arch (a name) or model_dir", param="arch")
    if model_dir is not None:
        if weights is not None or pretrained:
            raise InvalidArgumentError(
                "weights cannot be combined with model_dir (a model directory has its own weights)",
                param="weights" if weights is not None else "pretrained",
            )
        from toolkit.models.model_dir import load_model_dir

        loaded = load_model_dir(model_dir)
        source = {"source": "model directory", "path": str(model_dir), "sha256": loaded.config.weights_sha256}
        return loaded.module, loaded.config, loaded.config.arch, loaded.config.arch_kwargs, WeightsInfo(source)
    assert arch is not None
    from toolkit.models.loading import load_source

    if random_init and (weights is not None or pretrained):
        raise InvalidArgumentError(
            "random_init contradicts the weights given", hint="drop random_init to load them", param="random_init"
        )
    if weights is None and not pretrained and not random_init:
        warnings.warn(
            f"starting from a random initialisation of {arch} (no weights given): name pretrained weights "
            "(torchvision: weights='IMAGENET1K_V1' or 'DEFAULT'; timm: pretrained=True) or a weights file, "
            "or pass random_init=True to mean it",
            RandomInitialisationWarning,
            stacklevel=3,
        )
    kwargs = {"num_classes": source_num_classes} if source_num_classes is not None else {}
    with seeded(seed):  # without weights the backbone's random initialisation follows the seed
        loaded_source = load_source(
            arch, weights, pretrained=pretrained, allow_pickle=allow_pickle, progress=progress, **kwargs
        )
    return loaded_source.module, None, arch, loaded_source.arch_kwargs, loaded_source.weights


def extend(
    *,
    strategy: str,
    arch: str | None = None,
    model_dir: str | os.PathLike[str] | None = None,
    weights: str | os.PathLike[str] | None = None,
    pretrained: bool = False,
    random_init: bool = False,
    num_classes: int | None = None,
    keep: Sequence[int] | None = None,
    copy_from: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
    examples_dir: str | os.PathLike[str] | None = None,
    examples: Mapping[str, torch.Tensor] | None = None,
    seed: int = 0,
    std: float = 0.01,
    hidden: Sequence[int] = (),
    activation: str = "relu",
    dropout: float = 0.0,
    head: str | None = None,
    source_num_classes: int | None = None,
    preprocessing: Preprocessing | None = None,
    input_size: int | None = None,
    allow_pickle: bool = False,
    output: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> ExtendResult:
    """Load a source model, change its head with ``strategy``, and save a model directory.

    The source is ``arch`` or an existing ``model_dir``. With ``arch``, ``weights`` is a file
    (``.safetensors``, ``.pt``/``.pth``) or the name of torchvision weights (``IMAGENET1K_V1``,
    ``DEFAULT``, ``ResNet18_Weights.IMAGENET1K_V1``), and ``pretrained=True`` loads a timm model's
    hub weights (``timm:<name>.<tag>``); both download only through the libraries' caches, and
    offline raise ``WeightsUnavailableError`` (exit 3) naming where to place the file. Named
    weights bring their class names and preprocessing (resize, crop, mean/std, interpolation)
    into the record. No weights at all starts from a random backbone: a
    ``RandomInitialisationWarning`` says so unless ``random_init=True``; the lineage records
    the weights' source either way. ``preprocessing`` replaces the source's record;
    ``input_size`` (pixels, square) changes only its size (a resize before the crop keeps its
    ratio). ``progress`` (default False) shows downloads on stderr. ``class_names``
    lists all classes of the new head, or for the padding strategies (``pad-*``, ``imprint``) the new
    classes alone (default: the old names that survive, then ``new_<i>``).
    ``examples_dir`` holds ``<class name>/<image>`` folders for the new classes (``imprint``);
    ``examples`` gives them in memory instead: new class name -> preprocessed (N, C, H, W) images.
    Nothing is written unless ``output`` is given; an existing ``output`` needs ``overwrite``.
    """
    from toolkit import _atomic
    from toolkit._args import positive_int
    from toolkit.models.architectures import default_preprocessing
    from toolkit.heads.surgery import extend_head, identity_spec
    from toolkit.models.loading import imagenet_class_names

    if num_classes is not None:
        positive_int(num_classes, "num_classes", example="12")
    if output is not None:
        _atomic.check_output(output, overwrite=overwrite)
    if input_size is not None:
        positive_int(input_size, "input_size", example="224")
    model, source_cfg, arch_name, arch_kwargs, source = _source(
        arch, model_dir, weights, pretrained, random_init, allow_pickle, source_num_classes, seed, progress
    )
    prep = (
        preprocessing
        or (source_cfg.preprocessing if source_cfg is not None else None)
        or source.preprocessing
        or default_preprocessing(arch_name, model)
    )
    if input_size is not None:
        prep = prep.with_input_size(input_size)
    input_shape = prep.input_shape(1)
    previous: HeadSpec = (
        source_cfg.head if source_cfg is not None else identity_spec(model, head=head, input_shape=input_shape)
    )
    old_names = (
        source_cfg.class_names
        if source_cfg is not None
        else (source.class_names if source.class_names and len(source.class_names) == previous.num_classes else None)
        or imagenet_class_names(arch_name, previous.num_classes)
        or tuple(f"class_{i}" for i in range(previous.num_classes))
    )
    target = num_classes if num_classes is not None else (len(keep) if keep is not None else None)
    names = _new_names(strategy, old_names, keep, target, class_names)
    example_batches = None
    if strategy == "imprint":
        example_batches = (
            _examples_in_memory(examples, names, len(old_names))
            if examples is not None
            else _examples(examples_dir, names, len(old_names), prep)
        )
    spec = extend_head(
        model,
        strategy,
        num_classes=num_classes,
        keep=keep,
        copy_from=copy_from,
        seed=seed,
        std=std,
        hidden=hidden,
        activation=activation,
        dropout=dropout,
        examples=example_batches,
        head=head,
        input_shape=input_shape,
        previous=previous if source_cfg is not None else None,
    )
    if names is None:  # select: names follow the kept indices
        names = tuple(old_names[o.source] for o in spec.origins if o.source is not None)
    names = check_class_names(names, spec.num_classes)
    step = {"stage": "extend", "strategy": strategy, "seed": seed, "weights": dict(source.source)}
    lineage = (*(source_cfg.lineage if source_cfg else ()), step)
    config = ModelConfig(
        arch=arch_name,
        head=spec,
        class_names=names,
        preprocessing=prep,
        arch_kwargs=dict(arch_kwargs),
        lineage=lineage,
    )
    model.eval()
    path = None
    if output is not None:
        from toolkit.models.model_dir import save_model_dir

        config = save_model_dir(model, config, output, overwrite=overwrite)
        path = Path(output)
    return ExtendResult(model, config, path)


def _new_names(
    strategy: str,
    old_names: Sequence[str],
    keep: Sequence[int] | None,
    num_classes: int | None,
    class_names: Sequence[str] | None,
) -> tuple[str, ...] | None:
    if class_names is not None:
        if strategy in PAD_STRATEGIES:
            return _padded_names(old_names, num_classes, class_names)
        if num_classes is not None:
            return check_class_names(class_names, num_classes)
        return tuple(class_names)
    if strategy == "select":
        return None
    if num_classes is None:
        return None
    if strategy in ("replace", "bottleneck", "mlp"):
        return tuple(f"class_{i}" for i in range(num_classes))
    return (*old_names, *(f"new_{i}" for i in range(len(old_names), num_classes)))


def _padded_names(
    old_names: Sequence[str], num_classes: int | None, class_names: Sequence[str]
) -> tuple[str, ...]:
    """A padded head's names: the full list, or the new rows' names alone (the old rows keep theirs)."""
    names = tuple(class_names)
    n_old = len(old_names)
    target = num_classes if num_classes is not None else (len(names) if len(names) > n_old else n_old + len(names))
    if len(names) == target:
        return check_class_names(names, target)
    if len(names) == target - n_old:
        return check_class_names((*old_names, *names), target)
    raise InvalidArgumentError(
        f"{len(names)} class names given for a head of {target} classes ({n_old} kept + {target - n_old} new)",
        hint=f"give the {target - n_old} new classes' names alone, or all {target} names, one per line",
        param="class_names",
    )


def _examples(
    examples_dir: str | os.PathLike[str] | None,
    names: Sequence[str] | None,
    old: int,
    prep: Preprocessing,
) -> dict[int, torch.Tensor]:
    from toolkit.data.images import list_class_images, load_image, preprocess_image

    if examples_dir is None or names is None:
        raise InvalidArgumentError(
            "imprint needs examples_dir and the new classes' names",
            hint="examples_dir holds one folder of images per new class, named as in class_names",
            param="examples_dir",
        )
    new_names = list(names[old:])
    files = list_class_images(examples_dir, new_names)
    out: dict[int, torch.Tensor] = {}
    for offset, cls in enumerate(new_names):
        out[old + offset] = torch.stack([preprocess_image(load_image(f, prep.channels), prep) for f in files[cls]])
    return out


def _examples_in_memory(
    examples: Mapping[str, torch.Tensor], names: Sequence[str] | None, old: int
) -> dict[int, torch.Tensor]:
    if names is None:
        raise InvalidArgumentError("imprint needs the new classes' names", hint="pass class_names", param="class_names")
    new_names = list(names[old:])
    missing = [n for n in new_names if n not in examples or len(examples[n]) == 0]
    if missing:
        raise InvalidArgumentError(
            f"no example images for new class(es) {listing(missing)}",
            hint="give images for every new class",
            param="examples",
        )
    return {old + i: examples[n] for i, n in enumerate(new_names)}
