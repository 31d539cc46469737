"""Parity of produced outputs against reference outputs, per output, class slice and batch size.

``compare_outputs`` is the one place that decides whether an artifact matches the eager model:
the export-time check and ``rehead validate`` both call it, with the same tolerance presets,
so an artifact cannot pass one and fail the other on the same inputs.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from converters.compare.failure import Failure
from converters.compare.metrics import (
    ClassSlice,
    SliceMetrics,
    per_class_max_abs,
    rounding_atol,
    slice_metrics,
    tolerance_violations,
)
from converters.compare.tolerance import Tolerance, judge

#: absolute errors kept per slice for the report's histograms
HISTOGRAM_VALUES = 20_000


@dataclasses.dataclass
class SliceResult:
    """One output over one class slice at one batch size."""

    output: str
    slice: ClassSlice
    metrics: SliceMetrics
    violations: int
    failures: list[Failure]

    def to_json(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "slice": self.slice.name,
            "indices": list(self.slice.indices),
            "metrics": self.metrics.to_json(),
            "violations": self.violations,
            "passed": not self.failures,
            "failures": [f.to_json() for f in self.failures],
        }


@dataclasses.dataclass
class BatchParity:
    """All slices of all outputs at one batch size; ``abs_errors``/``per_class`` feed the plots."""

    batch_size: int
    results: list[SliceResult]
    per_class: dict[str, list[float]]
    abs_errors: dict[str, np.ndarray]

    @property
    def failures(self) -> list[Failure]:
        return [f for r in self.results for f in r.failures]

    def to_json(self) -> dict[str, Any]:
        return {
            "batch_size": self.batch_size,
            "passed": not self.failures,
            "slices": [r.to_json() for r in self.results],
            "per_class_max_abs": self.per_class,
        }


@dataclasses.dataclass
class ParityResult:
    """The verdict for one artifact: ``passed`` is True only when no slice of any batch failed.

    ``failures`` holds every slice failure of every batch plus, first, any failure of the
    inputs themselves (NaN/Inf in the parity inputs).
    """

    tolerance: Tolerance
    batches: list[BatchParity]
    failures: list[Failure]
    input_nonfinite: int = 0
    localisation: dict[str, Any] | None = None

    @property
    def passed(self) -> bool:
        return not self.failures

    def __bool__(self) -> bool:
        return self.passed

    def worst(self, slice_name: str = "all") -> SliceMetrics | None:
        """The slice's metrics with the largest max|Δ| over batch sizes (NaN/Inf mismatches first).

        Args:
            slice_name: the class slice (default ``all``).
        """
        found = [r.metrics for b in self.batches for r in b.results if r.slice.name == slice_name]
        if not found:
            return None
        return max(found, key=lambda m: (m.nonfinite_mismatch, -1 if np.isnan(m.max_abs) else m.max_abs))

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "tolerance": self.tolerance.to_json(),
            "input_nonfinite": self.input_nonfinite,
            "failures": [f.to_json() for f in self.failures],
            "batches": [b.to_json() for b in self.batches],
            "localisation": self.localisation,
        }


def parity_result(
    tol: Tolerance, batches: list[BatchParity], *, input_nonfinite: int = 0, input_source: str = ""
) -> ParityResult:
    """Gather the batches' failures (inputs with NaN/Inf fail first) into one verdict.

    Args:
        tol: the tolerance the batches were judged by.
        batches: the per-batch-size results.
        input_nonfinite: how many NaN/Inf values the inputs hold (default 0).
        input_source: where the inputs came from, for the inputs' failure message.
    """
    failures = [f for b in batches for f in b.failures]
    if input_nonfinite:
        failures.insert(
            0,
            Failure(
                kind="inputs",
                metric="nonfinite",
                value=float(input_nonfinite),
                bound=0.0,
                message=f"parity inputs hold {input_nonfinite} NaN/Inf values ({input_source})",
            ),
        )
    return ParityResult(tol, batches, failures, input_nonfinite=input_nonfinite)


def match_outputs(reference: Mapping[str, np.ndarray], produced: Mapping[str, np.ndarray]) -> dict[str, str]:
    """Reference output name -> artifact output name: same name, else the only/first output.

    Args:
        reference: the reference outputs, by name.
        produced: the artifact's outputs, by name.
    """
    mapping = {}
    names = list(produced)
    for ref_name in reference:
        if ref_name in produced:
            mapping[ref_name] = ref_name
        elif names:
            mapping[ref_name] = names[0]
    return mapping


def _worst_class(per_class: Sequence[float], indices: Sequence[int]) -> int | None:
    """The class in ``indices`` with the largest error (a NaN/Inf mismatch counts as the largest)."""
    if not indices:
        return None
    return max(indices, key=lambda i: math.inf if math.isnan(per_class[i]) else per_class[i])


def compare_outputs(
    reference: Mapping[str, np.ndarray],
    produced: Mapping[str, np.ndarray],
    slices: Sequence[ClassSlice],
    tol: Tolerance,
    *,
    batch_size: int,
    class_names: Sequence[str] | None = None,
    seed: int = 0,
    rounding: Callable[[], Mapping[str, np.ndarray]] | None = None,
) -> BatchParity:
    """Metrics and verdict of ``produced`` against ``reference`` for every output and slice.

    Args:
        reference: the reference outputs, by name.
        produced: the artifact's outputs, by name (matched by ``match_outputs``).
        slices: the class slices to judge.
        tol: the tolerance.
        batch_size: the batch size the outputs were produced at (named in messages).
        class_names: name the worst class of a failing slice (default None: not named).
        seed: draws the errors kept for the histograms (default 0).
        rounding: returns the eager float64 outputs on the same inputs; called only when a slice
            breaks the fixed bound of a tolerance with ``rounding_factor`` (memoise it: it may be
            called for several slices and batch sizes). Default None: no widening.
    """
    results: list[SliceResult] = []
    per_class: dict[str, list[float]] = {}
    abs_errors: dict[str, np.ndarray] = {}
    rng = np.random.default_rng(seed)
    mapping = match_outputs(reference, produced)
    nan_metrics = slice_metrics(np.full((1, 1), np.nan), np.zeros((1, 1)))
    for ref_name, out_name in mapping.items():
        ref, out = reference[ref_name], produced[out_name]
        if ref.shape != out.shape:
            message = (
                f"'{ref_name}' at batch {batch_size}: artifact output '{out_name}' has shape "
                f"{tuple(out.shape)}, the eager model {tuple(ref.shape)}"
            )
            fail = Failure(
                kind="shape",
                metric="shape",
                message=message,
                batch_size=batch_size,
                output=ref_name,
                class_slice="all",
            )
            results.append(
                SliceResult(ref_name, ClassSlice("all", tuple(range(ref.shape[-1]))), nan_metrics, 1, [fail])
            )
            continue
        per_class[ref_name] = per_class_max_abs(ref, out)
        for sl in slices:
            idx = list(sl.indices)
            r, a = ref[..., idx], out[..., idx]
            m = slice_metrics(r, a)
            atol = tol.atol_for(sl.name)
            violations = tolerance_violations(r, a, atol if atol is not None else np.inf, tol.rtol)
            widened = None
            if atol is not None and violations > m.nonfinite_mismatch and tol.rounding_factor and rounding is not None:
                # whole-row rounding (all classes of the sample), as the model's own conditioning
                per_sample = np.maximum(atol, rounding_atol(ref, rounding()[ref_name], tol.rounding_factor))
                violations = tolerance_violations(r, a, per_sample, tol.rtol)
                widened = float(per_sample.max())
            worst = _worst_class(per_class[ref_name], idx)
            name = (
                class_names[worst]
                if class_names is not None and worst is not None and worst < len(class_names)
                else None
            )
            fails = judge(
                ref_name,
                sl,
                m,
                violations,
                tol,
                batch_size=batch_size,
                worst_class=worst,
                worst_class_name=name,
                widened_atol=widened,
            )
            results.append(SliceResult(ref_name, sl, m, violations, fails))
            if ref_name == next(iter(reference)):
                diff = np.abs(a.astype(np.float64) - r.astype(np.float64)).ravel()
                diff = diff[np.isfinite(diff)]
                if diff.size > HISTOGRAM_VALUES:
                    diff = rng.choice(diff, HISTOGRAM_VALUES, replace=False)
                abs_errors[sl.name] = diff
    for name in reference:
        if name not in mapping:
            fail = Failure(
                kind="missing-output",
                metric="output",
                message=f"artifact produced no output for '{name}'",
                batch_size=batch_size,
                output=name,
            )
            results.append(SliceResult(name, ClassSlice("all", ()), nan_metrics, 1, [fail]))
    return BatchParity(batch_size, results, per_class, abs_errors)
