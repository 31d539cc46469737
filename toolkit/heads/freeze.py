"""Freezing policies for fine-tuning after head surgery.

- ``freeze_backbone``: every parameter outside the head (and auxiliary heads) stops training,
  and the backbone's BatchNorm layers keep their running statistics even in ``train()`` mode.
- ``unfreeze_stages``: open the last ``k`` stages of the backbone again (top-level children
  in execution order), BatchNorm statistics included.
- ``param_groups``: head at ``lr``, backbone at ``lr * backbone_lr_mult``; no weight decay on
  biases and normalisation weights.

Freezing works from the recorded ``HeadSpec``, so the new head stays trainable whatever was
swapped in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from toolkit.records import HeadSpec

_FROZEN_ATTR = "_rehead_frozen_bn"


@dataclasses.dataclass(frozen=True)
class ParamSplit:
    """Parameter counts: head, backbone, and how many of all are trainable."""

    head: int
    backbone: int
    trainable: int

    @property
    def total(self) -> int:
        return self.head + self.backbone

    @property
    def frozen(self) -> int:
        return self.total - self.trainable


def head_prefixes(spec: HeadSpec) -> tuple[str, ...]:
    """The dotted names of the head and its auxiliary heads.

    Args:
        spec: the head spec.
    """
    return (spec.module, *spec.aux_modules)


def _in_head(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _bn_eval_hook(module: nn.Module, _inputs: Any) -> None:
    if getattr(module, _FROZEN_ATTR, False):
        module.training = False


def _set_bn_frozen(module: nn.Module, frozen: bool) -> None:
    if not hasattr(module, "_rehead_bn_hook"):
        module._rehead_bn_hook = module.register_forward_pre_hook(_bn_eval_hook)  # type: ignore[assignment]
    setattr(module, _FROZEN_ATTR, frozen)
    if frozen:
        module.training = False


def freeze_backbone(model: nn.Module, spec: HeadSpec) -> ParamSplit:
    """Freeze everything but the head: parameters and BatchNorm statistics.

    Args:
        model: the model.
        spec: its head spec.
    """
    prefixes = head_prefixes(spec)
    for name, param in model.named_parameters():
        param.requires_grad_(_in_head(name, prefixes))
    for name, module in model.named_modules():
        if isinstance(module, _BatchNorm):
            _set_bn_frozen(module, not _in_head(name, prefixes))
    return split(model, spec)


def unfreeze_all(model: nn.Module) -> None:
    """Every parameter trainable again, BatchNorm statistics updating in train mode.

    Args:
        model: the model.
    """
    for param in model.parameters():
        param.requires_grad_(True)
    for module in model.modules():
        if isinstance(module, _BatchNorm) and hasattr(module, _FROZEN_ATTR):
            setattr(module, _FROZEN_ATTR, False)


def backbone_stages(model: nn.Module, spec: HeadSpec) -> list[str]:
    """Top-level children holding backbone parameters, in registration order (≈ execution order).

    Args:
        model: the model.
        spec: its head spec.
    """
    prefixes = head_prefixes(spec)
    stages = []
    for name, child in model.named_children():
        if _in_head(name, prefixes):
            continue
        own = [n for n, _ in child.named_parameters(prefix=name) if not _in_head(n, prefixes)]
        if own:
            stages.append(name)
    return stages


def unfreeze_stages(model: nn.Module, spec: HeadSpec, k: int) -> list[str]:
    """Make the last ``k`` backbone stages trainable again; returns their names.

    Args:
        model: the model.
        spec: its head spec.
        k: how many stages, counted from the last (0: none).
    """
    stages = backbone_stages(model, spec)[-k:] if k > 0 else []
    prefixes = head_prefixes(spec)
    for stage in stages:
        sub = model.get_submodule(stage)
        for name, param in sub.named_parameters(prefix=stage):
            if not _in_head(name, prefixes):
                param.requires_grad_(True)
        for module in sub.modules():
            if isinstance(module, _BatchNorm):
                _set_bn_frozen(module, False)
    return stages


def _no_decay(name: str, param: nn.Parameter) -> bool:
    return param.ndim <= 1 or name.endswith(".bias")


def param_groups(
    model: nn.Module,
    spec: HeadSpec,
    *,
    lr: float,
    backbone_lr_mult: float = 0.1,
    weight_decay: float = 0.0,
) -> list[dict[str, Any]]:
    """Optimizer parameter groups for the trainable parameters: head / backbone x decay / no decay.

    Each group carries a ``name`` (``head``, ``head_no_decay``, ``backbone``, ``backbone_no_decay``)
    so learning-rate logs can tell them apart. Empty groups are left out.

    Args:
        model: the model.
        spec: its head spec.
        lr: the head's learning rate.
        backbone_lr_mult: the backbone's learning rate as a multiple of ``lr`` (default 0.1).
        weight_decay: weight decay of the decay groups (default 0).
    """
    prefixes = head_prefixes(spec)
    buckets: dict[str, list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        part = "head" if _in_head(name, prefixes) else "backbone"
        key = part + ("_no_decay" if _no_decay(name, param) else "")
        buckets.setdefault(key, []).append(param)
    groups = []
    for key, params in buckets.items():
        group_lr = lr if key.startswith("head") else lr * backbone_lr_mult
        decay = 0.0 if key.endswith("_no_decay") else weight_decay
        groups.append({"name": key, "params": params, "lr": group_lr, "weight_decay": decay})
    return groups


def split(model: nn.Module, spec: HeadSpec) -> ParamSplit:
    """Count head, backbone and trainable parameters.

    Args:
        model: the model.
        spec: its head spec.
    """
    prefixes = head_prefixes(spec)
    head = backbone = trainable = 0
    for name, param in model.named_parameters():
        n = param.numel()
        if _in_head(name, prefixes):
            head += n
        else:
            backbone += n
        if param.requires_grad:
            trainable += n
    return ParamSplit(head, backbone, trainable)
