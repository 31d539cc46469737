"""Latency of the head on its own: the old head (rebuilt from the ``HeadSpec`` at its old size)
against the new head module, fed the real features the backbone produces."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from converters.runners.base import Runner
from converters.runners.eager import EagerRunner
from toolkit.errors import ModelDirError
from toolkit.heads.modules import get_submodule, make_layer, seeded
from toolkit.records import HeadSpec
from validation.latency import LatencySettings, LatencyStats, measure


def head_module(model: nn.Module, spec: HeadSpec) -> nn.Module:
    """The new head: the module at ``spec.module``.

    Args:
        model: the eager model.
        spec: its head spec.
    """
    try:
        return get_submodule(model, spec.module)
    except AttributeError as exc:
        raise ModelDirError(
            f"head module '{spec.module}' recorded in config.json is not in the model",
            hint="the config and weights disagree; re-create the model directory",
        ) from exc


def old_head(spec: HeadSpec) -> nn.Module:
    """A layer of the old shape: ``in_features`` × ``old_num_classes`` of the recorded kind.

    Args:
        spec: the head spec (the old head's shape and kind).
    """
    with seeded(0):  # the weights only need to be fixed, not the caller's RNG moved
        return make_layer(spec.kind, spec.in_features, spec.old_num_classes, bias=spec.bias).eval()


def capture_head_input(model: nn.Module, spec: HeadSpec, sample: np.ndarray, device: str) -> np.ndarray:
    """The tensor the head receives for ``sample`` (one image, batch axis kept).

    Args:
        model: the eager model.
        spec: its head spec.
        sample: one preprocessed image, batch axis kept.
        device: where the model runs.
    """
    head = head_module(model, spec)
    seen: list[torch.Tensor] = []

    def hook(_module: nn.Module, args: tuple[Any, ...]) -> None:
        seen.append(args[0].detach().to(torch.float32, copy=True).cpu())

    handle = head.register_forward_pre_hook(hook)
    try:
        with torch.inference_mode():
            model.to(device)(torch.from_numpy(sample).to(device))
    finally:
        handle.remove()
    if not seen:
        raise ModelDirError(f"head module '{spec.module}' was not called in the forward pass")
    return seen[0][:1].numpy()


def head_latency(
    model: nn.Module,
    spec: HeadSpec,
    feature: np.ndarray,
    batch_sizes: list[int],
    *,
    device: str,
    settings: LatencySettings,
    runners: list[Runner] | None = None,
) -> dict[str, Any]:
    """Latency per batch size of the old and the new head, and the new/old ratio of p50.

    Args:
        model: the eager model.
        spec: its head spec.
        feature: the head's input for one image (``capture_head_input``).
        batch_sizes: the batch sizes to time.
        device: where the heads run.
        settings: how each measurement is timed.
        runners: the runners used are appended here (their time counts as model time); default None.
    """
    modules = {"old_head": old_head(spec), "new_head": head_module(model, spec)}
    shapes = {
        "old_head": f"{spec.kind} {spec.in_features}x{spec.old_num_classes}",
        "new_head": f"{type(modules['new_head']).__name__} '{spec.module}' "
        f"{spec.in_features}x{spec.num_classes}"
        + (f" hidden {list(spec.hidden)}" if spec.hidden else ""),
    }
    results: dict[str, Any] = {"module": spec.module, "shapes": shapes, "batches": []}
    for bs in batch_sizes:
        batch = np.ascontiguousarray(np.repeat(feature, bs, axis=0), dtype=np.float32)
        row: dict[str, Any] = {"batch_size": bs}
        stats: dict[str, LatencyStats] = {}
        for key, module in modules.items():
            runner = EagerRunner(module, device=device, name=key)
            stats[key] = measure(runner, batch, settings)
            row[key] = stats[key].to_json(samples=False)
            if runners is not None:
                runners.append(runner)
        row["new_over_old"] = (
            stats["new_head"].p50_ms / stats["old_head"].p50_ms if stats["old_head"].p50_ms else None
        )
        results["batches"].append(row)
    return results
