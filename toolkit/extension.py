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
from toolkit.heads.options import StrategyArgs, strategy_args
from toolkit.heads.strategies import PAD_STRATEGIES
from toolkit.models.pretrained import RandomInitialisationWarning, WeightsInfo
from toolkit.records import ModelConfig, Preprocessing, check_class_names


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
    args: StrategyArgs | None = None,
    arch: str | None = None,
    model_dir: str | os.PathLike[str] | None = None,
    weights: str | os.PathLike[str] | None = None,
    pretrained: bool = False,
    random_init: bool = False,
    class_names: Sequence[str] | None = None,
    examples_dir: str | os.PathLike[str] | None = None,
    examples: Mapping[str, torch.Tensor] | None = None,
    head: str | None = None,
    source_num_classes: int | None = None,
    preprocessing: Preprocessing | None = None,
    input_size: int | None = None,
    allow_pickle: bool = False,
    output: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    progress: bool = False,
    **settings: Any,
) -> ExtendResult:
    """Load a source model, change its head with ``strategy``, and save a model directory.

    Named weights bring their class names and preprocessing (resize, crop, mean/std,
    interpolation) into the record; the lineage records the weights' source either way.

    Args:
        strategy: The head strategy (``STRATEGIES``): ``replace``, ``select``, ``pad-random``,
            ``pad-copy``, ``pad-mean``, ``imprint``, ``bottleneck`` or ``mlp``.
        args: The strategy's settings (``StrategyArgs``: ``num_classes``, ``keep``, ``seed``, ...);
            its ``seed`` also seeds a random backbone.
        arch: Source architecture (a torchvision builder, ``timm:<name>[.<tag>]`` or
            ``py:<module>:<callable>``); give this or ``model_dir``.
        model_dir: An existing model directory as the source, with its own weights.
        weights: With ``arch``: a file (``.safetensors``, ``.pt``/``.pth``) or torchvision weights
            by name (``IMAGENET1K_V1``, ``DEFAULT``, ``ResNet18_Weights.IMAGENET1K_V1``), downloaded only
            through the libraries' caches (offline: ``WeightsUnavailableError``, exit 3, naming
            where to place the file).
        pretrained: Load a timm model's hub weights (``timm:<name>.<tag>``).
        random_init: Start from a random backbone on purpose; without it and without weights a
            ``RandomInitialisationWarning`` says so.
        class_names: All classes of the new head, or for the padding strategies (``pad-*``,
            ``imprint``) the new classes alone (default: the old names that survive, then ``new_<i>``).
        examples_dir: ``imprint``: a folder of ``<class name>/<image>`` folders for the new classes.
        examples: ``imprint``, in memory instead: new class name -> preprocessed (N, C, H, W) images.
        head: Dotted module name of the head (skips the search).
        source_num_classes: Head size of the source weights, if not the architecture's default.
        preprocessing: Replaces the source's preprocessing record.
        input_size: Changes only the record's input size (pixels, square; keeps the resize ratio).
        allow_pickle: Allow a checkpoint that needs unpickling code (only for files you trust).
        output: The model directory to write (default ``None``: nothing is written).
        overwrite: Replace an existing ``output``.
        progress: Show downloads on stderr (default False).
        **settings: ``StrategyArgs``' fields as keywords (``num_classes=12, keep=[3, 1]``),
            instead of ``args``.

    Returns:
        The extended module (eval mode), its record, and where it was saved.
    """
    from toolkit.heads.surgery import extend_head, identity_spec

    args = strategy_args(args, settings, caller="extend")
    _check_arguments(args, input_size, output, overwrite)
    model, source_cfg, arch_name, arch_kwargs, source = _source(
        arch, model_dir, weights, pretrained, random_init, allow_pickle, source_num_classes, args.seed, progress
    )
    prep = _preprocessing(preprocessing, source_cfg, source, arch_name, model, input_size)
    input_shape = prep.input_shape(1)
    previous = source_cfg.head if source_cfg is not None else identity_spec(model, head=head, input_shape=input_shape)
    old_names = _old_names(source_cfg, source, arch_name, previous.num_classes)
    target = args.num_classes if args.num_classes is not None else (len(args.keep) if args.keep is not None else None)
    names = _new_names(strategy, old_names, args.keep, target, class_names)
    batches = _imprint_examples(examples, examples_dir, names, len(old_names), prep) if strategy == "imprint" else None
    spec = extend_head(
        model, strategy, args, examples=batches, head=head, input_shape=input_shape,
        previous=previous if source_cfg is not None else None,
    )  # fmt: skip
    if names is None:  # select: names follow the kept indices
        names = tuple(old_names[o.source] for o in spec.origins if o.source is not None)
    step = {"stage": "extend", "strategy": strategy, "seed": args.seed, "weights": dict(source.source)}
    config = ModelConfig(
        arch=arch_name,
        head=spec,
        class_names=check_class_names(names, spec.num_classes),
        preprocessing=prep,
        arch_kwargs=dict(arch_kwargs),
        lineage=(*(source_cfg.lineage if source_cfg else ()), step),
    )
    model.eval()
    if output is None:
        return ExtendResult(model, config, None)
    from toolkit.models.model_dir import save_model_dir

    return ExtendResult(model, save_model_dir(model, config, output, overwrite=overwrite), Path(output))


def _check_arguments(
    args: StrategyArgs, input_size: int | None, output: str | os.PathLike[str] | None, overwrite: bool
) -> None:
    """What can be refused before any model loads: the counts, and an output in the way."""
    from toolkit import _atomic
    from toolkit._args import positive_int

    if args.num_classes is not None:
        positive_int(args.num_classes, "num_classes", example="12")
    if output is not None:
        _atomic.check_output(output, overwrite=overwrite)
    if input_size is not None:
        positive_int(input_size, "input_size", example="224")


def _preprocessing(
    given: Preprocessing | None,
    source_cfg: ModelConfig | None,
    source: WeightsInfo,
    arch: str,
    model: nn.Module,
    input_size: int | None,
) -> Preprocessing:
    """The record's preprocessing: given, else the source directory's, the weights', the architecture's."""
    from toolkit.models.architectures import default_preprocessing

    prep = (
        given
        or (source_cfg.preprocessing if source_cfg is not None else None)
        or source.preprocessing
        or default_preprocessing(arch, model)
    )
    return prep.with_input_size(input_size) if input_size is not None else prep


def _old_names(source_cfg: ModelConfig | None, source: WeightsInfo, arch: str, classes: int) -> tuple[str, ...]:
    """The source head's class names: recorded, the weights', ImageNet's, else ``class_<i>``."""
    from toolkit.models.loading import imagenet_class_names

    if source_cfg is not None:
        return tuple(source_cfg.class_names)
    return tuple(
        (source.class_names if source.class_names and len(source.class_names) == classes else None)
        or imagenet_class_names(arch, classes)
        or tuple(f"class_{i}" for i in range(classes))
    )


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


def _imprint_examples(
    examples: Mapping[str, torch.Tensor] | None,
    examples_dir: str | os.PathLike[str] | None,
    names: Sequence[str] | None,
    old: int,
    prep: Preprocessing,
) -> dict[int, torch.Tensor]:
    """``imprint``'s example images by new output index: given in memory, or read from a folder."""
    if examples is not None:
        return _examples_in_memory(examples, names, old)
    return _examples(examples_dir, names, old, prep)


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
