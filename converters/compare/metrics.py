"""Error metrics between a reference and a candidate output, per class slice.

NaN never compares equal: a position where either side is NaN, or where only one side is
infinite (or the infinities differ in sign), counts as a non-finite mismatch, and the error
statistics are taken over the positions where both sides are finite.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

#: relative error = |a - r| / max(|r|, REL_FLOOR); the floor keeps near-zero references from exploding.
REL_FLOOR = 1e-6


@dataclasses.dataclass(frozen=True)
class ClassSlice:
    """A named set of class indices on the last axis: ``all``, ``kept`` or ``new``."""

    name: str
    indices: tuple[int, ...]

    def label(self) -> str:
        """``new classes [7, 8, 9]`` (contiguous runs shortened to ``7:10``)."""
        idx = self.indices
        if idx and list(idx) == list(range(idx[0], idx[-1] + 1)):
            span = f"{idx[0]}:{idx[-1] + 1}"
        else:
            span = ",".join(str(i) for i in idx[:8]) + (",..." if len(idx) > 8 else "")
        return f"{self.name} classes [{span}]"


@dataclasses.dataclass(frozen=True)
class SliceMetrics:
    """Errors of one output over one class slice (``n`` values; ``samples`` rows).

    Absolute and relative errors: max, mean, p99. ``cosine_min``/``cosine_mean``: cosine
    similarity per sample. ``sqnr_db``: 10·log10(Σr² / Σ(a−r)²) (inf when identical).
    ``top1``/``top5``: fraction of samples whose arg-max agrees / whose top-5 sets are equal
    (top-k over the slice's classes). ``kl_max``: largest KL(softmax(r) ‖ softmax(a)).
    ``nonfinite_mismatch``: positions where NaN/Inf make the two differ (NaN ≠ NaN).
    ``violations``: positions with |a−r| > atol + rtol·|r| (filled in by the verdict).
    """

    n: int
    samples: int
    max_abs: float
    mean_abs: float
    p99_abs: float
    max_rel: float
    mean_rel: float
    p99_rel: float
    cosine_min: float
    cosine_mean: float
    sqnr_db: float
    top1: float
    top5: float
    kl_max: float
    nonfinite_mismatch: int
    ref_nonfinite: int
    max_abs_ref: float

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _nan_to(value: float, default: float) -> float:
    return default if math.isnan(value) else value


def _topk_sets(x: np.ndarray, k: int) -> np.ndarray:
    order = np.argsort(-x, axis=-1, kind="stable")[..., :k]
    return np.sort(order, axis=-1)


def _softmax(x: np.ndarray) -> np.ndarray:
    shifted = x - x.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def nonfinite_mismatch(ref: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Boolean mask of positions where NaN/Inf make ``ref`` and ``out`` differ (NaN never equal).

    Args:
        ref: the reference values.
        out: the produced values, ``ref``'s shape.
    """
    either_nan = np.isnan(ref) | np.isnan(out)
    inf_differs = (np.isinf(ref) | np.isinf(out)) & ~(ref == out)
    return either_nan | inf_differs


def slice_metrics(ref: np.ndarray, out: np.ndarray) -> SliceMetrics:
    """Metrics of ``out`` against ``ref``; computed in float64.

    Args:
        ref: the reference outputs, (N, C) or (N, ...).
        out: the produced outputs, ``ref``'s shape.
    """
    r = np.asarray(ref, dtype=np.float64).reshape(ref.shape[0], -1)
    a = np.asarray(out, dtype=np.float64).reshape(out.shape[0], -1)
    bad = nonfinite_mismatch(r, a)
    finite = np.isfinite(r) & np.isfinite(a)
    diff = np.abs(a - r)[finite]
    rel = diff / np.maximum(np.abs(r[finite]), REL_FLOOR)
    nan = float("nan")
    max_abs = float(diff.max()) if diff.size else nan
    mean_abs = float(diff.mean()) if diff.size else nan
    p99_abs = float(np.percentile(diff, 99)) if diff.size else nan
    max_rel = float(rel.max()) if rel.size else nan
    mean_rel = float(rel.mean()) if rel.size else nan
    p99_rel = float(np.percentile(rel, 99)) if rel.size else nan

    rows_ok = ~bad.any(axis=1) & np.isfinite(r).all(axis=1)
    cos = np.full(r.shape[0], nan)
    if rows_ok.any():
        rr, aa = r[rows_ok], a[rows_ok]
        num = (rr * aa).sum(axis=1)
        den = np.linalg.norm(rr, axis=1) * np.linalg.norm(aa, axis=1)
        both_zero = den == 0
        cos_ok = np.where(
            both_zero, np.where(np.abs(rr - aa).sum(axis=1) == 0, 1.0, 0.0), num / np.where(both_zero, 1, den)
        )
        cos[rows_ok] = cos_ok
    # a row with a non-finite mismatch has no meaningful cosine: count it as 0 (never as agreement)
    cos = np.where(np.isnan(cos), 0.0, cos)

    noise = float(((a - r)[finite] ** 2).sum())
    signal = float((r[finite] ** 2).sum())
    if bad.any():
        sqnr = -math.inf
    elif noise == 0:
        sqnr = math.inf
    else:
        sqnr = 10 * math.log10(signal / noise) if signal > 0 else -math.inf

    width = r.shape[1]
    r_top = np.where(np.isnan(r), -np.inf, r)
    a_top = np.where(np.isnan(a), -np.inf, a)
    top1_agree = (np.argmax(r_top, axis=1) == np.argmax(a_top, axis=1)) & rows_ok
    k = min(5, width)
    top5_agree = (_topk_sets(r_top, k) == _topk_sets(a_top, k)).all(axis=1) & rows_ok
    kl = math.inf if not rows_ok.all() else 0.0
    if rows_ok.any() and kl == 0.0:
        p = _softmax(r[rows_ok])
        q = _softmax(a[rows_ok])
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(p > 0, p * (np.log(p) - np.log(np.maximum(q, 1e-300))), 0.0)
        kl = float(max(terms.sum(axis=1).max(), 0.0))
    return SliceMetrics(
        n=int(r.size),
        samples=int(r.shape[0]),
        max_abs=max_abs,
        mean_abs=mean_abs,
        p99_abs=p99_abs,
        max_rel=max_rel,
        mean_rel=mean_rel,
        p99_rel=p99_rel,
        cosine_min=float(cos.min()) if cos.size else nan,
        cosine_mean=float(cos.mean()) if cos.size else nan,
        sqnr_db=sqnr,
        top1=float(top1_agree.mean()) if r.shape[0] else nan,
        top5=float(top5_agree.mean()) if r.shape[0] else nan,
        kl_max=kl,
        nonfinite_mismatch=int(bad.sum()),
        ref_nonfinite=int((~np.isfinite(r)).sum()),
        max_abs_ref=_nan_to(float(np.abs(r[np.isfinite(r)]).max()) if np.isfinite(r).any() else nan, 0.0),
    )


def tolerance_violations(ref: np.ndarray, out: np.ndarray, atol: float | np.ndarray, rtol: float) -> int:
    """Positions where |out − ref| > atol + rtol·|ref|, counting every non-finite mismatch.

    Args:
        ref: the reference values.
        out: the produced values, ``ref``'s shape.
        atol: the absolute bound: a number, or an array broadcasting against ``ref`` (one bound
            per sample, shape (N, 1)).
        rtol: the bound relative to |ref|.
    """
    r = np.asarray(ref, dtype=np.float64)
    a = np.asarray(out, dtype=np.float64)
    bad = nonfinite_mismatch(r, a)
    with np.errstate(invalid="ignore"):
        over = np.abs(a - r) > atol + rtol * np.abs(r)
    return int((bad | (over & ~bad & np.isfinite(r) & np.isfinite(a))).sum())


def rounding_atol(ref: np.ndarray, ref64: np.ndarray, factor: float) -> np.ndarray:
    """Per-sample atol, shape (N, 1): ``factor`` × max|ref − ref64| over the sample's values
    (the model's own fp32 rounding) + 1e-6 × max(1, max|ref64|) of that sample.

    Args:
        ref: the eager fp32 outputs, (N, ...).
        ref64: the eager float64 outputs on the same inputs, ``ref``'s shape.
        factor: how many times the rounding to allow.
    """
    r = np.asarray(ref, dtype=np.float64).reshape(ref.shape[0], -1)
    r64 = np.asarray(ref64, dtype=np.float64).reshape(ref64.shape[0], -1)
    with np.errstate(invalid="ignore"):
        spread = np.nan_to_num(np.abs(r - r64), nan=0.0, posinf=0.0).max(axis=1)
        scale = np.maximum(1.0, np.nan_to_num(np.abs(r64), nan=0.0, posinf=0.0).max(axis=1))
    return (factor * spread + 1e-6 * scale)[:, None]


def per_class_max_abs(ref: np.ndarray, out: np.ndarray) -> list[float]:
    """Largest |out − ref| per class (last axis); NaN where a non-finite mismatch occurs.

    Args:
        ref: the reference outputs, classes on the last axis.
        out: the produced outputs, ``ref``'s shape.
    """
    r = np.asarray(ref, dtype=np.float64).reshape(-1, ref.shape[-1])
    a = np.asarray(out, dtype=np.float64).reshape(-1, out.shape[-1])
    bad = np.asarray(nonfinite_mismatch(r, a).any(axis=0), dtype=bool)
    with np.errstate(invalid="ignore"):
        diff = np.where(np.isfinite(r) & np.isfinite(a), np.abs(a - r), 0.0).max(axis=0)
    return [float("nan") if bool(bad[i]) else float(diff[i]) for i in range(diff.shape[0])]


def head_slices(num_classes: int, kept: Sequence[int], new: Sequence[int]) -> list[ClassSlice]:
    """``all`` plus the non-empty ``kept`` and ``new`` slices of the head spec.

    Args:
        num_classes: the head's number of classes (the ``all`` slice).
        kept: the indices of the kept classes.
        new: the indices of the new classes.
    """
    slices = [ClassSlice("all", tuple(range(num_classes)))]
    if kept:
        slices.append(ClassSlice("kept", tuple(kept)))
    if new:
        slices.append(ClassSlice("new", tuple(new)))
    return slices
