"""Phases, optimisers and the warm-up + cosine learning-rate schedule."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch
from torch import nn

from toolkit.finetune.config import FinetuneConfig
from toolkit.heads import freeze_backbone, param_groups, unfreeze_all, unfreeze_stages
from toolkit.records import HeadSpec


@dataclasses.dataclass(frozen=True)
class Phase:
    """Epochs ``[start, stop)`` trained under one freezing policy.

    ``policy``: ``head`` (backbone frozen, BatchNorm statistics too), ``full`` (everything
    trainable) or ``stages:<k>`` (the head and the last ``k`` backbone stages).
    """

    index: int
    name: str
    policy: str
    start: int
    stop: int

    @property
    def epochs(self) -> int:
        return self.stop - self.start


def plan_phases(config: FinetuneConfig) -> list[Phase]:
    """Head-only for ``freeze_epochs``, then the rest with the backbone opened as configured.

    Args:
        config: the run's settings (``epochs``, ``freeze_epochs``, ``unfreeze_stages``).
    """
    phases: list[Phase] = []
    frozen = min(config.freeze_epochs, config.epochs)
    if frozen:
        phases.append(Phase(0, "head", "head", 0, frozen))
    if frozen < config.epochs:
        k = config.unfreeze_stages
        policy = "full" if k is None else ("head" if k == 0 else f"stages:{k}")
        phases.append(Phase(len(phases), "finetune", policy, frozen, config.epochs))
    return phases


def apply_policy(model: nn.Module, spec: HeadSpec, policy: str) -> None:
    """Set ``requires_grad`` and the BatchNorm freezing of ``model`` for ``policy``.

    Args:
        model: the model.
        spec: its head spec.
        policy: ``head``, ``full`` or ``stages:<k>`` (``Phase.policy``).
    """
    if policy == "full":
        unfreeze_all(model)
        return
    freeze_backbone(model, spec)
    if policy.startswith("stages:"):
        unfreeze_stages(model, spec, int(policy.split(":", 1)[1]))


def make_optimizer(model: nn.Module, spec: HeadSpec, config: FinetuneConfig) -> torch.optim.Optimizer:
    """AdamW or Nesterov SGD over the trainable parameters, in named head/backbone groups.

    Args:
        model: the model, its trainable parameters set for the phase.
        spec: its head spec.
        config: the run's settings (optimizer, learning rates, weight decay, momentum).
    """
    groups = param_groups(
        model, spec, lr=config.lr, backbone_lr_mult=config.backbone_lr_mult, weight_decay=config.weight_decay
    )
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.momentum > 0)
    return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)


def warmup_cosine(total_steps: int, warmup_steps: int, final_ratio: float) -> Callable[[int], float]:
    """LR factor at step ``s``: linear warm-up to 1 over ``warmup_steps``, then cosine to ``final_ratio``.

    Args:
        total_steps: the phase's steps.
        warmup_steps: steps of linear warm-up.
        final_ratio: the factor at the last step.
    """
    total = max(1, total_steps)
    warm = min(max(0, warmup_steps), total - 1)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        progress = min(1.0, (step - warm) / max(1, total - warm))
        return final_ratio + (1.0 - final_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def make_scheduler(
    optimizer: torch.optim.Optimizer, config: FinetuneConfig, phase: Phase, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """The per-step schedule of ``phase`` (its state dict holds numbers only).

    Args:
        optimizer: the phase's optimizer.
        config: the run's settings (``warmup_epochs``, ``final_lr_ratio``).
        phase: the phase.
        steps_per_epoch: optimizer steps per epoch.
    """
    warmup = round(config.warmup_epochs * steps_per_epoch)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(phase.epochs * steps_per_epoch, warmup, config.final_lr_ratio)
    )


def group_lrs(optimizer: torch.optim.Optimizer) -> dict[str, float | None]:
    """Current learning rate of the head and of the backbone (``None`` when frozen).

    Args:
        optimizer: the optimizer, its groups named as ``param_groups`` names them.
    """
    out: dict[str, float | None] = {"head": None, "backbone": None}
    for group in optimizer.param_groups:
        part = str(group.get("name", "head")).split("_", 1)[0]
        if out.get(part) is None:
            out[part] = float(group["lr"])
    return out
