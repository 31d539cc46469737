"""Architecture registry: every torchvision classification builder, timm models, any factory.

Names:
- a torchvision builder, as ``torchvision.models.list_models(module=torchvision.models)`` lists it
  (``resnet18``, ``vit_b_16``);
- ``timm:<name>`` for a timm model (timm installed);
- ``py:<module>:<callable>`` for any factory returning an ``nn.Module`` (custom models).
"""

from __future__ import annotations

import difflib
import functools
import importlib
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from toolkit.errors import InvalidArgumentError, MissingDependencyError, UnknownArchitectureError
from toolkit.records import IMAGENET_MEAN, IMAGENET_STD, Preprocessing

# Builders whose default input differs from 224x224, and the smallest input each accepts.
_DEFAULT_SIZE: dict[str, int] = {"inception_v3": 299}
_FIXED_SIZE_PREFIXES = ("vit_", "maxvit_")
_MIN_SIZE: dict[str, int] = {"inception_v3": 75, "alexnet": 63, "googlenet": 32}


@functools.lru_cache(maxsize=1)
def torchvision_classifiers() -> tuple[str, ...]:
    """Names of all torchvision classification builders, sorted."""
    import torchvision

    return tuple(sorted(torchvision.models.list_models(module=torchvision.models)))


def _timm_names() -> list[str]:
    try:
        timm = importlib.import_module("timm")
    except ImportError:
        return []
    return [f"timm:{n}" for n in timm.list_models()]


def suggest(name: str, n: int = 3) -> list[str]:
    """Closest known architecture names to ``name``.

    Args:
        name: the unknown architecture name.
        n: how many names at most (default 3).
    """
    base = name.removeprefix("timm:")
    pool = list(torchvision_classifiers())
    close = difflib.get_close_matches(base, pool, n=n, cutoff=0.5)
    if len(close) < n:
        timm_names = [t.removeprefix("timm:") for t in _timm_names()]
        close += [f"timm:{t}" for t in difflib.get_close_matches(base, timm_names, n=n - len(close), cutoff=0.6)]
    return close


def _build_factory(spec: str, kwargs: Mapping[str, Any]) -> nn.Module:
    try:
        _, module_name, attr = spec.split(":", 2)
    except ValueError as exc:
        raise UnknownArchitectureError(
            f"'{spec}' is not of the form py:<module>:<callable>", hint="e.g. py:mypkg.models:make_net"
        ) from exc
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise UnknownArchitectureError(f"cannot import '{attr}' from '{module_name}': {exc}") from exc
    model = _call_builder(spec, factory, kwargs)
    if not isinstance(model, nn.Module):
        raise UnknownArchitectureError(f"'{spec}' returned {type(model).__name__}, not an nn.Module")
    return model


def build_architecture(arch: str, **kwargs: Any) -> nn.Module:
    """Instantiate ``arch`` with random weights (no download ever happens here).

    The weights are drawn from torch's global RNG as it stands (seed it, or wrap the call in
    ``toolkit.heads.modules.seeded``, for reproducible ones), but the caller's RNG state is left
    as it was: building a model to load weights into does not move anyone's random stream.

    Args:
        arch: a torchvision builder, ``timm:<name>[.<tag>]`` or ``py:<module>:<callable>``.
        **kwargs: passed to the builder (``num_classes``, ...).
    """
    with torch.random.fork_rng(devices=[]):
        return _build(arch, kwargs)


def _build(arch: str, kwargs: Mapping[str, Any]) -> nn.Module:
    if not isinstance(arch, str) or not arch.strip():
        raise InvalidArgumentError("architecture name is empty", hint="e.g. resnet18", param="arch")
    if arch.startswith("py:"):
        return _build_factory(arch, kwargs)
    if arch.startswith("timm:"):
        try:
            timm = importlib.import_module("timm")
        except ImportError as exc:
            raise MissingDependencyError(f"'{arch}' needs timm", hint="pip install timm") from exc
        name = arch.removeprefix("timm:")
        if not timm.is_model(name):
            close = suggest(arch)
            raise UnknownArchitectureError(
                f"unknown timm architecture '{name}'",
                hint=f"did you mean {', '.join(close)}?" if close else "see timm.list_models()",
            )
        return _call_builder(arch, functools.partial(timm.create_model, name, pretrained=False), kwargs)
    if arch not in torchvision_classifiers():
        close = suggest(arch)
        raise UnknownArchitectureError(
            f"unknown architecture '{arch}'",
            hint=(f"did you mean {', '.join(close)}? " if close else "")
            + "names are torchvision builders, timm:<name> or py:<module>:<callable>",
        )
    import torchvision

    params = dict(kwargs)
    if arch in ("googlenet", "inception_v3"):
        params.setdefault("init_weights", True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return _call_builder(arch, functools.partial(torchvision.models.get_model, arch, weights=None), params)


def _call_builder(arch: str, builder: Any, kwargs: Mapping[str, Any]) -> Any:
    """``builder(**kwargs)``; a builder that rejects the user's arguments (config.json's ``arch_kwargs``,
    an unknown keyword or a value of the wrong type or range) is bad input, named with the arguments
    the builder accepts, not an internal error."""
    try:
        return builder(**kwargs)
    except (TypeError, ValueError, OverflowError, RuntimeError) as exc:
        if not kwargs:
            raise
        accepted = _accepted_arguments(builder)
        detail = " ".join(str(exc).split())[:200]
        raise InvalidArgumentError(
            f"the builder of '{arch}' rejected arch_kwargs {_short_repr(kwargs)}: {type(exc).__name__}: {detail}",
            hint=(f"it accepts: {', '.join(accepted)}" if accepted else "check the builder's documentation")
            + "; fix or remove 'arch_kwargs' in config.json",
            param="arch_kwargs",
        ) from exc


def _short_repr(kwargs: Mapping[str, Any], limit: int = 120) -> str:
    """A short one-line rendering of user arguments for an error message."""
    text = " ".join(repr(dict(kwargs)).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _accepted_arguments(builder: Any) -> list[str]:
    """The keyword arguments ``builder`` takes: its own signature, and where it forwards ``**kwargs``
    to a model class, that class's ``__init__`` (found by building once on the meta device, which
    allocates nothing)."""
    import inspect

    def named(fn: Any) -> tuple[list[str], bool]:
        try:
            params = inspect.signature(fn).parameters.values()
        except (TypeError, ValueError):
            return [], True
        names = [p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self"]
        return names, any(p.kind is p.VAR_KEYWORD for p in params)

    target = builder.func if isinstance(builder, functools.partial) else builder
    names, forwards = named(target)
    fixed = set(builder.keywords) | set(names[: len(builder.args)]) if isinstance(builder, functools.partial) else set()
    if forwards:
        try:
            with torch.device("meta"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = builder()
        except Exception:  # the default build failing too: list what the signature says
            model = None
        if isinstance(model, nn.Module):
            more, _ = named(type(model).__init__)
            names += [n for n in more if n not in names]
    return sorted(n for n in names if n not in fixed and n not in ("weights", "progress", "pretrained"))


def default_preprocessing(arch: str, model: nn.Module | None = None) -> Preprocessing:
    """The input size and normalisation the architecture was designed for.

    Args:
        arch: the architecture.
        model: the built model, whose pretrained config gives a timm architecture's values (default None).
    """
    if arch.startswith("timm:") and model is not None:
        cfg = getattr(model, "pretrained_cfg", None) or {}
        size = cfg.get("input_size", (3, 224, 224))
        return Preprocessing(
            input_size=(int(size[1]), int(size[2])),
            mean=tuple(cfg.get("mean", IMAGENET_MEAN)),
            std=tuple(cfg.get("std", IMAGENET_STD)),
            channels=int(size[0]),
            interpolation=str(cfg.get("interpolation", "bilinear")),
        )
    side = _DEFAULT_SIZE.get(arch, 224)
    return Preprocessing(input_size=(side, side))


def fixed_input_size(arch: str) -> bool:
    """True for builders that accept only their design size (ViT, MaxViT).

    Args:
        arch: the architecture.
    """
    return arch.startswith(_FIXED_SIZE_PREFIXES)


def min_input_size(arch: str) -> int:
    """The smallest square input (pixels) the architecture runs on; the design size if fixed.

    Args:
        arch: the architecture.
    """
    if fixed_input_size(arch):
        return default_preprocessing(arch).input_size[0]
    return _MIN_SIZE.get(arch, 32)
