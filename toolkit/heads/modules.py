"""Head modules built from a ``HeadSpec`` and module-path helpers."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from toolkit.errors import InvalidArgumentError

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}


@contextlib.contextmanager
def seeded(seed: int, device: torch.device | str = "cpu") -> Iterator[None]:
    """Inside the block torch's RNG (CPU, and ``device`` if it is a GPU) starts from ``seed``;
    after it the caller's RNG state is back as it was.

    Layer constructors and dropout draw from the global RNG and take no generator, so a seeded
    draw needs the global stream; forking it keeps a library call from changing the caller's.

    Args:
        seed: the seed.
        device: a device whose CUDA RNG is seeded (and restored) too when it is a GPU (default ``cpu``).
    """
    device = torch.device(device)
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.default_generator.manual_seed(int(seed))
        for index in cuda:
            with torch.cuda.device(index):
                torch.cuda.manual_seed(int(seed))
        yield


def get_submodule(model: nn.Module, name: str) -> nn.Module:
    """The submodule at dotted ``name`` (``classifier.1``); '' names the model itself.

    Args:
        model: the model.
        name: the dotted name.
    """
    return model.get_submodule(name) if name else model


def set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    """Replace the submodule at dotted ``name`` (``classifier.1``) with ``module``.

    Args:
        model: the model.
        name: the dotted name.
        module: the new submodule.
    """
    parent_name, _, child = name.rpartition(".")
    parent = get_submodule(model, parent_name)
    if isinstance(parent, (nn.Sequential, nn.ModuleList)) and child.isdigit():
        parent[int(child)] = module
    else:
        setattr(parent, child, module)


def make_layer(kind: str, in_features: int, out_features: int, *, bias: bool = True) -> nn.Module:
    """A plain classifier layer: ``Linear`` or a 1x1 ``Conv2d`` (squeezenet-style heads).

    Args:
        kind: ``linear`` or ``conv1x1``.
        in_features: the input width.
        out_features: the output width.
        bias: whether the layer has a bias (default True).
    """
    if kind == "conv1x1":
        return nn.Conv2d(in_features, out_features, kernel_size=1, bias=bias)
    return nn.Linear(in_features, out_features, bias=bias)


def make_head(
    base_kind: str,
    in_features: int,
    num_classes: int,
    *,
    hidden: tuple[int, ...] = (),
    activation: str = "relu",
    dropout: float = 0.0,
    bias: bool = True,
) -> nn.Module:
    """A head: one layer if ``hidden`` is empty, else layer-activation-dropout blocks then the output layer.

    Hidden layers of a conv head are 1x1 convolutions so that the surrounding pooling keeps working.

    Args:
        base_kind: the kind of the layer being replaced, ``linear`` or ``conv1x1``.
        in_features: the head's input width.
        num_classes: the output layer's width.
        hidden: hidden layer widths (default none: one layer).
        activation: after each hidden layer: ``relu`` (default), ``gelu``, ``silu`` or ``tanh``.
        dropout: dropout after each hidden layer (default 0: none).
        bias: whether the output layer has a bias (default True).
    """
    if not hidden:
        return make_layer(base_kind, in_features, num_classes, bias=bias)
    if activation not in ACTIVATIONS:
        raise InvalidArgumentError(
            f"unknown activation '{activation}'", hint=f"one of {', '.join(sorted(ACTIVATIONS))}", param="activation"
        )
    layers: list[nn.Module] = []
    width = in_features
    for size in hidden:
        layers += [make_layer(base_kind, width, size), ACTIVATIONS[activation]()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = size
    layers.append(make_layer(base_kind, width, num_classes, bias=bias))
    return nn.Sequential(*layers)


def layer_weight(layer: nn.Module) -> torch.Tensor:
    """The weight parameter of a Linear / 1x1 conv layer.

    Args:
        layer: the layer.
    """
    weight = getattr(layer, "weight", None)
    if not isinstance(weight, torch.Tensor):
        raise InvalidArgumentError(f"{type(layer).__name__} has no weight tensor; it is not a classifier layer")
    return weight


def layer_bias(layer: nn.Module) -> torch.Tensor | None:
    """The bias parameter of a Linear / 1x1 conv layer (None when it has none).

    Args:
        layer: the layer.
    """
    bias = getattr(layer, "bias", None)
    return bias if isinstance(bias, torch.Tensor) else None


def layer_matrix(layer: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Weight as an (out, in) matrix view and the bias of a Linear or 1x1 conv.

    Args:
        layer: the layer.
    """
    weight = layer_weight(layer).detach()
    bias = layer_bias(layer)
    return weight.reshape(weight.shape[0], -1), (bias.detach() if bias is not None else None)


def out_width(layer: nn.Module) -> int:
    """Number of outputs (classes) of a Linear / 1x1 conv layer.

    Args:
        layer: the layer.
    """
    return int(layer_weight(layer).shape[0])


def output_layer(head: nn.Module) -> nn.Module:
    """The layer that produces the logits: the head itself, or the last layer of a Sequential head.

    Args:
        head: the head module.
    """
    if isinstance(head, nn.Sequential):
        return head[-1]
    return head
