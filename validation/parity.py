"""Parity of one artifact against the eager fp32 reference, per output, per class slice, per batch size."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from toolkit.errors import InputShapeError
from validation.metrics import (
    ClassSlice,
    SliceMetrics,
    per_class_max_abs,
    slice_metrics,
    tolerance_violations,
)
from validation.runners.base import Runner
from validation.tolerance import Tolerance, judge

#: absolute errors kept per slice for the report's histograms
HISTOGRAM_VALUES = 20_000


@dataclasses.dataclass
class SliceResult:
    """One output over one class slice at one batch size."""

    output: str
    slice: ClassSlice
    metrics: SliceMetrics
    violations: int
    failures: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "slice": self.slice.name,
            "indices": list(self.slice.indices),
            "metrics": self.metrics.to_json(),
            "violations": self.violations,
            "passed": not self.failures,
            "failures": list(self.failures),
        }


@dataclasses.dataclass
class BatchParity:
    """All slices of all outputs at one batch size; ``abs_errors``/``per_class`` feed the plots."""

    batch_size: int
    results: list[SliceResult]
    per_class: dict[str, list[float]]
    abs_errors: dict[str, np.ndarray]

    @property
    def failures(self) -> list[str]:
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
    """The verdict for one artifact: ``passed`` is True only when no slice of any batch failed."""

    tolerance: Tolerance
    batches: list[BatchParity]
    failures: list[str]
    input_nonfinite: int = 0
    localisation: dict[str, Any] | None = None

    @property
    def passed(self) -> bool:
        return not self.failures

    def worst(self, slice_name: str = "all") -> SliceMetrics | None:
        """The slice's metrics with the largest max|Δ| over batch sizes (NaN/Inf mismatches first)."""
        found = [r.metrics for b in self.batches for r in b.results if r.slice.name == slice_name]
        if not found:
            return None
        return max(found, key=lambda m: (m.nonfinite_mismatch, -1 if np.isnan(m.max_abs) else m.max_abs))

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "tolerance": self.tolerance.to_json(),
            "input_nonfinite": self.input_nonfinite,
            "failures": list(self.failures),
            "batches": [b.to_json() for b in self.batches],
            "localisation": self.localisation,
        }


def chunks(count: int, batch_size: int) -> list[tuple[int, int]]:
    return [(start, min(start + batch_size, count)) for start in range(0, count, batch_size)]


def run_batched(
    runner: Runner, images: np.ndarray, batch_size: int, *, on_batch: Callable[[], None] | None = None
) -> dict[str, np.ndarray]:
    """Outputs of ``runner`` over ``images`` in batches of ``batch_size``, concatenated.

    A fixed-batch artifact is only run at its own batch size (``InputShapeError`` otherwise);
    its last, short batch is padded with repeated samples whose outputs are dropped.
    """
    runner.load()
    if runner.fixed_batch is not None and batch_size != runner.fixed_batch:
        raise InputShapeError(
            f"'{runner.name}' has a fixed batch size of {runner.fixed_batch}; "
            f"batch size {batch_size} was asked for",
            hint=f"use --batch-sizes {runner.fixed_batch}, or re-export with a dynamic batch axis",
        )
    check = getattr(runner, "check_input", None)
    parts: dict[str, list[np.ndarray]] = {}
    for start, stop in chunks(len(images), batch_size):
        batch = images[start:stop]
        real = len(batch)
        if runner.fixed_batch is not None and real < batch_size:
            batch = np.concatenate([batch, np.resize(images, (batch_size - real, *images.shape[1:]))])
        if check is not None:
            check(batch)
        for name, value in runner.run(batch).items():
            parts.setdefault(name, []).append(value[:real])
        if on_batch is not None:
            on_batch()
    return {k: np.concatenate(v) for k, v in parts.items()}


def match_outputs(reference: Mapping[str, np.ndarray], produced: Mapping[str, np.ndarray]) -> dict[str, str]:
    """Reference output name -> artifact output name: same name, else the only/first output."""
    mapping = {}
    names = list(produced)
    for ref_name in reference:
        if ref_name in produced:
            mapping[ref_name] = ref_name
        elif names:
            mapping[ref_name] = names[0]
    return mapping


def compare(
    reference: Mapping[str, np.ndarray],
    produced: Mapping[str, np.ndarray],
    slices: Sequence[ClassSlice],
    tol: Tolerance,
    *,
    batch_size: int,
    seed: int = 0,
) -> BatchParity:
    """Metrics and verdict of ``produced`` against ``reference`` for every output and slice."""
    results: list[SliceResult] = []
    per_class: dict[str, list[float]] = {}
    abs_errors: dict[str, np.ndarray] = {}
    rng = np.random.default_rng(seed)
    for ref_name, out_name in match_outputs(reference, produced).items():
        ref, out = reference[ref_name], produced[out_name]
        if ref.shape != out.shape:
            sl = ClassSlice("all", tuple(range(ref.shape[-1])))
            fail = (
                f"'{ref_name}' at batch {batch_size}: artifact output '{out_name}' "
                f"has shape {tuple(out.shape)}, "
                f"the eager model {tuple(ref.shape)}"
            )
            nan_metrics = slice_metrics(np.full((1, 1), np.nan), np.zeros((1, 1)))
            results.append(SliceResult(ref_name, sl, nan_metrics, 1, [fail]))
            continue
        per_class[ref_name] = per_class_max_abs(ref, out)
        for sl in slices:
            idx = list(sl.indices)
            r, a = ref[..., idx], out[..., idx]
            m = slice_metrics(r, a)
            atol = tol.atol_for(sl.name)
            violations = tolerance_violations(r, a, atol if atol is not None else np.inf, tol.rtol)
            fails = judge(ref_name, sl, m, violations, tol, batch_size=batch_size)
            results.append(SliceResult(ref_name, sl, m, violations, fails))
            if ref_name == next(iter(reference)):
                diff = np.abs(a.astype(np.float64) - r.astype(np.float64)).ravel()
                diff = diff[np.isfinite(diff)]
                if diff.size > HISTOGRAM_VALUES:
                    diff = rng.choice(diff, HISTOGRAM_VALUES, replace=False)
                abs_errors[sl.name] = diff
    for name in reference:
        if name not in match_outputs(reference, produced):
            sl = ClassSlice("all", ())
            nan_metrics = slice_metrics(np.full((1, 1), np.nan), np.zeros((1, 1)))
            results.append(
                SliceResult(name, sl, nan_metrics, 1, [f"artifact produced no output for '{name}'"])
            )
    return BatchParity(batch_size, results, per_class, abs_errors)
