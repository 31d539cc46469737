"""Tolerance presets per precision, user overrides, the auto envelope and the verdict.

A value passes when |a − r| ≤ atol + rtol·|r| (NumPy's ``allclose`` rule) and is finite where
the reference is. The int8 preset gates on top-1 agreement and SQNR instead of atol, because
quantisation moves every logit a little and a fixed atol would be either useless or always
failing. ``auto`` derives atol per slice from PyTorch's own spread on the same inputs.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from converters.compare.failure import Failure
from converters.compare.metrics import ClassSlice, SliceMetrics
from toolkit.errors import InvalidArgumentError

PRESET_NAMES = ("fp32", "fp16", "bf16", "int8", "auto")


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """Pass criteria for one artifact.

    ``atol``/``rtol``: element-wise bound (``atol`` ``None`` = not gated element-wise);
    ``slice_atol``: per-slice atol overriding ``atol`` (the auto envelope fills it);
    ``min_top1``: least top-1 agreement (0–1); ``min_sqnr_db``: least SQNR in decibels;
    ``min_cosine``: least per-sample cosine similarity. ``source`` says where the numbers came from.
    ``rounding_factor``: where the element-wise bound fails, widen ``atol`` per sample to this
    many times the model's own fp32 rounding on that sample (max|eager fp32 − eager fp64| over
    its logits, plus 1e-6 of its logit scale) when that is larger. A badly conditioned model
    (efficientnet_b0 on noise inputs: logits ~1e4, eager fp32 itself 1e-3 of the scale off fp64)
    then passes an export as accurate as eager, while a 1% weight error still fails.
    """

    preset: str
    atol: float | None
    rtol: float
    min_top1: float | None = None
    min_sqnr_db: float | None = None
    min_cosine: float | None = None
    slice_atol: Mapping[str, float] = dataclasses.field(default_factory=dict)
    source: str = ""
    rounding_factor: float | None = None

    def atol_for(self, slice_name: str) -> float | None:
        """The atol of a slice: its ``slice_atol`` entry, else ``atol``.

        Args:
            slice_name: the class slice.
        """
        return self.slice_atol.get(slice_name, self.atol)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["slice_atol"] = dict(self.slice_atol)
        return data


PRESETS: dict[str, Tolerance] = {
    "fp32": Tolerance(
        "fp32",
        atol=1e-4,
        rtol=1e-4,
        rounding_factor=30.0,
        source="preset fp32: |Δ| ≤ max(1e-4, 30 × the sample's eager fp32-vs-fp64 rounding) + 1e-4·|ref|",
    ),
    "fp16": Tolerance("fp16", atol=2e-2, rtol=1e-2, source="preset fp16: |Δ| ≤ 2e-2 + 1e-2·|ref|"),
    # bfloat16 keeps 7 explicit mantissa bits to float16's 10: it rounds 8x coarser, so its
    # bounds are fp16's times 8 (the same ratio the auto envelope uses, validation/calibrate.py)
    "bf16": Tolerance(
        "bf16", atol=1.6e-1, rtol=8e-2, source="preset bf16: |Δ| ≤ 1.6e-1 + 8e-2·|ref| (fp16's × 8)"
    ),
    "int8": Tolerance(
        "int8",
        atol=None,
        rtol=0.0,
        min_top1=0.9,
        min_sqnr_db=15.0,
        source="preset int8: top-1 agreement ≥ 0.90 and SQNR ≥ 15 dB per slice",
    ),
}

#: which preset an artifact precision implies when none is given
# TF32 (TensorRT, cuBLAS) rounds products to fp16's 10-bit mantissa: judged as fp16
PRECISION_PRESET = {"fp32": "fp32", "fp64": "fp32", "tf32": "fp16", "fp16": "fp16", "bf16": "bf16", "int8": "int8"}


def resolve_preset(preset: str | None, precision: str) -> str:
    """The preset name to use: the given one, else the one implied by the artifact's precision.

    Args:
        preset: a name in ``PRESET_NAMES``, or None.
        precision: the artifact's precision (``PRECISION_PRESET``; fp32 when unknown).
    """
    if preset is None:
        return PRECISION_PRESET.get(precision, "fp32")
    if preset not in PRESET_NAMES:
        raise InvalidArgumentError(
            f"unknown preset '{preset}'", hint=f"one of {', '.join(PRESET_NAMES)}", param="preset"
        )
    return preset


def with_overrides(tol: Tolerance, *, atol: float | None = None, rtol: float | None = None) -> Tolerance:
    """``tol`` with user-given bounds (which also replace any per-slice envelope).

    Args:
        tol: the tolerance to override.
        atol: the absolute bound, finite and ≥ 0 (default None: ``tol``'s, 0 when it has none).
        rtol: the relative bound, finite and ≥ 0 (default None: ``tol``'s).
    """
    for name, value in (("atol", atol), ("rtol", rtol)):
        if value is not None and (not math.isfinite(value) or value < 0):
            raise InvalidArgumentError(f"{name} must be a finite number ≥ 0, got {value}", param=name)
    if atol is None and rtol is None:
        return tol
    new_atol = atol if atol is not None else (tol.atol if tol.atol is not None else 0.0)
    new_rtol = rtol if rtol is not None else tol.rtol
    return dataclasses.replace(
        tol,
        atol=new_atol,
        rtol=new_rtol,
        slice_atol={},
        rounding_factor=None,
        source=f"{tol.source}; overridden: atol {new_atol:g}, rtol {new_rtol:g}",
    )


def envelope(
    preset: str, spread: Mapping[str, SliceMetrics], *, factor: float, what: str, rtol: float = 0.0
) -> Tolerance:
    """Per-slice atol = ``factor`` × the largest |Δ| PyTorch itself shows, with a floor of 1e-6 ×
    the slice's largest |ref| so that an exactly reproducible slice still tolerates the last bits
    of float32.

    Args:
        preset: the preset name recorded in the tolerance.
        spread: PyTorch's own spread on the same inputs, by slice name.
        factor: how many times the spread to allow.
        what: what the spread is, for ``source``.
        rtol: the relative bound (default 0).
    """
    slice_atol: dict[str, float] = {}
    for name, m in spread.items():
        base = m.max_abs if math.isfinite(m.max_abs) else 0.0
        slice_atol[name] = max(factor * base, 1e-6 * max(m.max_abs_ref, 1.0))
    overall = max(slice_atol.values()) if slice_atol else None
    detail = ", ".join(f"{k} {v:.2e}" for k, v in slice_atol.items())
    return Tolerance(
        preset=preset,
        atol=overall,
        rtol=rtol,
        slice_atol=slice_atol,
        source=f"auto: {factor:g} × {what} (atol {detail})",
    )


def judge(
    output: str,
    sl: ClassSlice,
    m: SliceMetrics,
    violations: int,
    tol: Tolerance,
    *,
    batch_size: int,
    worst_class: int | None = None,
    worst_class_name: str | None = None,
    widened_atol: float | None = None,
) -> list[Failure]:
    """Every reason this slice fails ``tol`` (empty when it passes), as records with the numbers.

    Args:
        output: the output's name.
        sl: the class slice.
        m: the slice's metrics.
        violations: the positions over the element-wise bound (``tolerance_violations``).
        tol: the tolerance.
        batch_size: the batch size, named in messages.
        worst_class: the class inside the slice with the largest error, named in each message.
        worst_class_name: that class's name.
        widened_atol: the largest per-sample atol after widening by the model's own fp32 rounding
            (``Tolerance.rounding_factor``), when it was widened (default None).
    """
    where = f"'{output}'[{sl.label()}] at batch {batch_size}"
    summary = f"cosine {m.cosine_min:.6f}, top-1 agreement {m.top1:.3f}, SQNR {m.sqnr_db:.1f} dB"
    if worst_class is not None:
        summary += f"; worst class {worst_class}" + (f" '{worst_class_name}'" if worst_class_name else "")
    base = Failure(
        kind="parity",
        metric="",
        message="",
        batch_size=batch_size,
        output=output,
        class_slice=sl.name,
        worst_class=worst_class,
        worst_class_name=worst_class_name,
    )
    fails: list[Failure] = []
    if m.nonfinite_mismatch:
        side = "reference and artifact" if m.ref_nonfinite else "artifact"
        fails.append(
            base.replace(
                metric="nonfinite",
                value=float(m.nonfinite_mismatch),
                bound=0.0,
                message=f"{where}: {m.nonfinite_mismatch} NaN/Inf mismatches in the {side} "
                f"(NaN never counts as equal); {summary}",
            )
        )
    atol = tol.atol_for(sl.name)
    if atol is not None and violations > m.nonfinite_mismatch:
        used = max(atol, widened_atol or 0.0)
        widened = (
            f" (widened up to {used:.1e}: {tol.rounding_factor:g}× the model's own fp32 rounding)"
            if widened_atol is not None and widened_atol > atol
            else ""
        )
        fails.append(
            base.replace(
                metric="max_abs",
                value=m.max_abs,
                bound=used + tol.rtol * m.max_abs_ref,
                message=f"{where}: max|Δ| {m.max_abs:.3e} (max rel {m.max_rel:.2e}) > "
                f"atol {atol:.1e}{widened} + rtol {tol.rtol:.1e}·|ref| "
                f"at {violations - m.nonfinite_mismatch}/{m.n} values; {summary}",
            )
        )
    # the gates with a least value: (metric, its value, the bound, label, format, unit)
    floors = (
        ("top1", m.top1, tol.min_top1, "top-1 agreement", ".3f", ""),
        ("sqnr_db", m.sqnr_db, tol.min_sqnr_db, "SQNR", ".1f", " dB"),
        ("cosine_min", m.cosine_min, tol.min_cosine, "cosine", ".6f", ""),
    )
    for metric, value, bound, label, fmt, unit in floors:
        if bound is not None and not (value >= bound):
            fails.append(
                base.replace(
                    metric=metric,
                    value=value,
                    bound=bound,
                    message=f"{where}: {label} {value:{fmt}}{unit} < {bound:{fmt}}{unit}; {summary}",
                )
            )
    return fails
