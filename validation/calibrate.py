"""The ``auto`` tolerance: an envelope measured from PyTorch's own spread on the same inputs.

fp32 artifacts: how far eager fp32 lies from eager float64 (PyTorch's own rounding), and how
far eager fp32 moves between batch sizes and between two runs (jitter), times ``factor``
(default 10). fp16/bf16 artifacts: eager fp32 against eager autocast fp16 (bf16 if fp16
autocast is unsupported, scaled by the ratio of machine epsilons), times ``factor`` (default 4).
int8 has no PyTorch counterpart: auto falls back to the int8 preset's gates.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from torch import nn

from converters.compare.metrics import ClassSlice, SliceMetrics, slice_metrics
from converters.compare.tolerance import PRESETS, Tolerance, envelope
from converters.runners.base import Runner
from converters.runners.eager import EagerRunner
from validation.parity import run_batched

#: samples used for calibration (float64 eager is slow; the envelope needs only a few)
CALIBRATION_SAMPLES = 16
DEFAULT_FACTOR = {"fp32": 10.0, "fp16": 4.0, "bf16": 4.0}
# float16 has 10 explicit mantissa bits, bfloat16 7: bf16 spread / 8 estimates fp16 spread
_BF16_TO_FP16 = 1.0 / 8.0


def _spread(
    reference: dict[str, np.ndarray], other: dict[str, np.ndarray], slices: Sequence[ClassSlice]
) -> dict[str, SliceMetrics]:
    name = next(iter(reference))
    r, a = reference[name], other[name]
    return {sl.name: slice_metrics(r[..., list(sl.indices)], a[..., list(sl.indices)]) for sl in slices}


def _merge(*spreads: dict[str, SliceMetrics]) -> dict[str, SliceMetrics]:
    merged: dict[str, SliceMetrics] = {}
    for spread in spreads:
        for k, m in spread.items():
            if k not in merged or m.max_abs > merged[k].max_abs:
                merged[k] = m
    return merged


def _scaled(spread: dict[str, SliceMetrics], scale: float) -> dict[str, SliceMetrics]:
    return {k: dataclasses.replace(m, max_abs=m.max_abs * scale) for k, m in spread.items()}


def calibrate(
    module: nn.Module,
    images: np.ndarray,
    slices: Sequence[ClassSlice],
    precision: str,
    *,
    device: str = "cpu",
    batch_size: int = 8,
    factor: float | None = None,
    runners: list[Runner] | None = None,
) -> Tolerance:
    """The auto tolerance for an artifact of a precision.

    Args:
        module: the eager model.
        images: the parity inputs (the first ``CALIBRATION_SAMPLES`` are used).
        slices: the class slices to derive an atol for.
        precision: the artifact's precision (``int8`` has no PyTorch twin: its preset).
        device: where eager runs (default ``cpu``).
        batch_size: the batch size of the eager runs (default 8).
        factor: how many times PyTorch's own spread to allow (default None: ``DEFAULT_FACTOR``).
        runners: the eager runners used are appended here (so their time counts as model time).
    """
    if precision == "int8":
        base = PRESETS["int8"]
        return dataclasses.replace(
            base, preset="auto", source=f"auto (int8 has no PyTorch twin): {base.source}"
        )
    subset = images[:CALIBRATION_SAMPLES]
    bs = max(1, min(batch_size, len(subset)))
    fp32 = EagerRunner(module, device=device, precision="fp32")
    used: list[Runner] = [fp32]
    reference = run_batched(fp32, subset, bs)
    if precision in ("fp16", "bf16"):
        use = DEFAULT_FACTOR[precision] if factor is None else factor
        low = EagerRunner(module, device=device, precision=precision)
        used.append(low)
        try:
            spread = _spread(reference, run_batched(low, subset, bs), slices)
            what = f"eager fp32 vs eager {precision} autocast"
        except RuntimeError:  # fp16 autocast kernels missing on this device: estimate from bf16
            bf16 = EagerRunner(module, device=device, precision="bf16")
            used.append(bf16)
            spread = _scaled(_spread(reference, run_batched(bf16, subset, bs), slices), _BF16_TO_FP16)
            what = "eager fp32 vs eager bf16 autocast ÷ 8"
        tol = envelope("auto", spread, factor=use, what=what)
    else:
        use = DEFAULT_FACTOR["fp32"] if factor is None else factor
        fp64 = EagerRunner(module, device=device, precision="fp64")
        used.append(fp64)
        rounding = _spread(run_batched(fp64, subset, bs), reference, slices)
        jitter = _spread(reference, run_batched(fp32, subset, bs), slices)
        batching = _spread(reference, run_batched(fp32, subset, 1), slices)
        tol = envelope(
            "auto",
            _merge(rounding, jitter, batching),
            factor=use,
            what="max(eager fp32 vs fp64, run-to-run jitter, batch-size spread)",
        )
    if runners is not None:
        runners.extend(used)
    return tol
