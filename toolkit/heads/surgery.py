"""Head surgery on a module: locate the head, apply a strategy, record a ``HeadSpec``."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from toolkit._args import positive_int
from toolkit.errors import InvalidArgumentError
from toolkit.heads.locate import HeadLocation, locate_head
from toolkit.heads.modules import get_submodule, layer_bias, make_layer, out_width, output_layer, set_submodule
from toolkit.heads.options import StrategyArgs, strategy_args
from toolkit.heads.strategies import BLOCK_STRATEGIES, PAD_STRATEGIES, STRATEGIES
from toolkit.records import HeadSpec


def resolve_num_classes(strategy: str, num_classes: object | None, keep: Sequence[int] | None, old: int) -> int:
    """The new head's class count, checked against the strategy.

    Args:
        strategy: the strategy's name.
        num_classes: the class count asked for (None: ``len(keep)`` for ``select``; the others need it).
        keep: the old class indices ``select`` keeps (None for the others).
        old: how many classes the old head has.
    """
    if strategy not in STRATEGIES:
        import difflib

        close = difflib.get_close_matches(strategy, list(STRATEGIES), n=2)
        raise InvalidArgumentError(
            f"unknown strategy '{strategy}'",
            hint=(f"did you mean {', '.join(close)}? " if close else "") + f"one of {', '.join(STRATEGIES)}",
            param="strategy",
        )
    if strategy == "select":
        if keep is None:
            raise InvalidArgumentError("strategy 'select' needs keep", hint="e.g. keep=[3, 1, 7]", param="keep")
        if num_classes is None:
            return len(keep)
        n = positive_int(num_classes, "num_classes", example="12")
        if n != len(keep):
            raise InvalidArgumentError(
                f"num_classes {n} contradicts keep, which lists {len(keep)} classes", param="num_classes"
            )
        return n
    if num_classes is None:
        raise InvalidArgumentError(f"strategy '{strategy}' needs num_classes", hint="e.g. 12", param="num_classes")
    return positive_int(num_classes, "num_classes", example="12")


@torch.no_grad()
def head_features(model: nn.Module, head: str, images: torch.Tensor, *, batch_size: int = 32) -> torch.Tensor:
    """The inputs the head sees for ``images`` (N, C, H, W): pooled penultimate features (N, F).

    Args:
        model: the model.
        head: the head's dotted module name.
        images: the images, (N, C, H, W).
        batch_size: images per forward pass (default 32).
    """
    feats: list[torch.Tensor] = []
    module = get_submodule(model, head)
    handle = module.register_forward_pre_hook(lambda m, inp: feats.append(inp[0].detach()))
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(images), batch_size):
            model(images[start : start + batch_size])
    finally:
        handle.remove()
        model.train(was_training)
    out = torch.cat(feats)
    return out.mean(dim=(2, 3)) if out.ndim == 4 else out.reshape(len(out), -1)


def extend_head(
    model: nn.Module,
    strategy: str,
    args: StrategyArgs | None = None,
    *,
    examples: Mapping[int, torch.Tensor] | None = None,
    head: str | None = None,
    input_shape: Sequence[int] = (1, 3, 224, 224),
    previous: HeadSpec | None = None,
    **settings: Any,
) -> HeadSpec:
    """Change ``model``'s head in place with ``strategy`` and return the record of what was done.

    Args:
        model: The classifier whose head changes (in place).
        strategy: A name in ``STRATEGIES``: ``replace``, ``select``, ``pad-random``, ``pad-copy``,
            ``pad-mean``, ``imprint``, ``bottleneck`` or ``mlp``.
        args: The strategy's settings (``StrategyArgs``); its ``num_classes`` is checked against
            the strategy and the head found (``select``: default ``len(keep)``).
        examples: ``imprint``: each new output index -> a batch of preprocessed images (N, C, H, W).
        head: Dotted name of the head module (default: found by ``locate_head``).
        input_shape: One input's shape for that search (default (1, 3, 224, 224)).
        previous: The spec recorded for this model, if any: its head name is used instead of
            searching, and a block head keeps its hidden layers under row strategies.
        **settings: ``StrategyArgs``' fields as keywords (``num_classes=12, seed=1``), instead of
            ``args``.

    Returns:
        The ``HeadSpec`` of the new head: strategy, where each row came from, shape and seed.
    """
    args = strategy_args(args, settings, caller="extend_head")
    location = locate_head(model, head=head or (previous.module if previous else None), input_shape=input_shape)
    if previous is not None and not head:
        location = dataclasses.replace(location, aux_modules=previous.aux_modules)
    head_module = get_submodule(model, location.module)
    layer = output_layer(head_module)
    old = out_width(layer)
    n = resolve_num_classes(strategy, args.num_classes, args.keep, old)
    features = _features(model, location.module, examples, args) if strategy == "imprint" else args.features
    args = args.replace(num_classes=n, features=features)
    new_head, origins = STRATEGIES[strategy](layer, location.kind, args)
    block_hidden: tuple[int, ...] = ()
    if strategy in BLOCK_STRATEGIES:
        layers = list(new_head.children())[:-1]
        block_hidden = tuple(out_width(m) for m in layers if isinstance(m, (nn.Linear, nn.Conv2d)))
    elif isinstance(head_module, nn.Sequential):  # a block head keeps its hidden layers
        block = copy.deepcopy(head_module)
        block[-1] = new_head
        new_head = block
        block_hidden = previous.hidden if previous else ()
    set_submodule(model, location.module, new_head)
    _resize_aux(model, location, strategy, args)
    activation_name = args.activation if block_hidden else (previous.activation if previous else "relu")
    return HeadSpec(
        strategy=strategy,
        module=location.module,
        kind=location.kind,
        in_features=location.in_features,
        old_num_classes=old,
        num_classes=n,
        origins=origins,
        bias=location.bias if strategy not in BLOCK_STRATEGIES else True,
        hidden=block_hidden,
        activation=activation_name,
        dropout=args.dropout if strategy in BLOCK_STRATEGIES else (previous.dropout if previous else 0.0),
        aux_modules=location.aux_modules,
        seed=args.seed,
    )


def _features(
    model: nn.Module, head: str, examples: Mapping[int, torch.Tensor] | None, args: StrategyArgs
) -> Mapping[int, torch.Tensor]:
    """``imprint``'s input: the head's input features of each new class's example images (or the
    features ``args`` already holds when no images are given)."""
    if examples:
        return {idx: head_features(model, head, imgs) for idx, imgs in examples.items()}
    if args.features:
        return args.features
    raise InvalidArgumentError(
        "imprint needs example images of the new classes", hint="pass examples", param="examples"
    )


def _resize_aux(model: nn.Module, location: HeadLocation, strategy: str, args: StrategyArgs) -> None:
    """Auxiliary heads follow the main head: same row strategy where it applies, else a fresh layer."""
    for name in location.aux_modules:
        layer = get_submodule(model, name)
        kind = "conv1x1" if isinstance(layer, nn.Conv2d) else "linear"
        if strategy == "imprint":  # the examples' features are the main head's, not this layer's
            follow = "pad-mean"
        elif strategy in PAD_STRATEGIES or strategy == "select":
            follow = strategy
        else:
            follow = "replace"
        new, _ = STRATEGIES[follow](layer, kind, args)
        set_submodule(model, name, new)


def apply_head_structure(model: nn.Module, spec: HeadSpec) -> None:
    """Give a freshly built architecture the head shapes that ``spec`` records (no weights).

    Args:
        model: the freshly built architecture.
        spec: the head spec of its model directory.
    """
    from toolkit.heads.modules import make_head

    # The layers' initial weights are overwritten by the caller: leave the caller's RNG unmoved.
    with torch.random.fork_rng(devices=[]):
        set_submodule(
            model,
            spec.module,
            make_head(
                spec.kind,
                spec.in_features,
                spec.num_classes,
                hidden=spec.hidden,
                activation=spec.activation,
                dropout=spec.dropout,
                bias=spec.bias,
            ),
        )
        for name in spec.aux_modules:
            layer = get_submodule(model, name)
            kind = "conv1x1" if isinstance(layer, nn.Conv2d) else "linear"
            in_f = layer.in_features if isinstance(layer, nn.Linear) else int(getattr(layer, "in_channels", 0))
            bias = layer_bias(layer) is not None
            set_submodule(model, name, make_layer(kind, in_f, spec.num_classes, bias=bias))


def identity_spec(
    model: nn.Module, *, head: str | None = None, input_shape: Sequence[int] = (1, 3, 224, 224)
) -> HeadSpec:
    """The record of a model whose head is untouched.

    Args:
        model: the model.
        head: the head's dotted module name (default None: located).
        input_shape: the NCHW shape of the traced pass that locates the head (default (1, 3, 224, 224)).
    """
    loc = locate_head(model, head=head, input_shape=input_shape)
    width = out_width(output_layer(get_submodule(model, loc.module)))
    spec = HeadSpec.identity(loc.module, loc.kind, loc.in_features, width, bias=loc.bias)
    return dataclasses.replace(spec, aux_modules=loc.aux_modules)
