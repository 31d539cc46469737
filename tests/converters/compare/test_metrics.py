"""Error metrics per class slice: exact numbers on small hand-made arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from converters.compare.metrics import (
    ClassSlice,
    head_slices,
    nonfinite_mismatch,
    per_class_max_abs,
    slice_metrics,
    tolerance_violations,
)


def test_identical_outputs_are_perfect() -> None:
    ref = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 0.0]], dtype=np.float32)
    m = slice_metrics(ref, ref.copy())
    assert m.max_abs == 0 and m.mean_abs == 0 and m.max_rel == 0
    assert m.sqnr_db == math.inf
    assert m.top1 == 1.0 and m.top5 == 1.0
    assert m.cosine_min == pytest.approx(1.0)
    assert m.kl_max == pytest.approx(0.0, abs=1e-15)
    assert m.nonfinite_mismatch == 0


def test_known_errors() -> None:
    ref = np.array([[1.0, 2.0, 4.0]])
    out = np.array([[1.0, 2.5, 3.0]])
    m = slice_metrics(ref, out)
    assert m.max_abs == pytest.approx(1.0)
    assert m.mean_abs == pytest.approx(0.5)
    assert m.max_rel == pytest.approx(0.25)
    assert m.sqnr_db == pytest.approx(10 * math.log10(21 / 1.25))
    cos = (1 + 5 + 12) / (math.sqrt(21) * math.sqrt(1 + 6.25 + 9))
    assert m.cosine_min == pytest.approx(cos)
    assert m.top1 == 1.0  # arg-max is class 2 on both sides
    p = np.exp(ref[0]) / np.exp(ref[0]).sum()
    q = np.exp(out[0]) / np.exp(out[0]).sum()
    assert m.kl_max == pytest.approx(float((p * np.log(p / q)).sum()))


def test_top1_disagreement_counted() -> None:
    ref = np.array([[0.0, 1.0], [1.0, 0.0]])
    out = np.array([[1.0, 0.0], [1.0, 0.0]])
    assert slice_metrics(ref, out).top1 == 0.5


def test_nan_never_counts_as_equal() -> None:
    ref = np.array([[np.nan, 1.0], [1.0, 2.0]])
    out = ref.copy()
    m = slice_metrics(ref, out)
    assert m.nonfinite_mismatch == 1
    assert m.ref_nonfinite == 1
    assert m.top1 == 0.5  # the row holding NaN does not agree
    assert m.sqnr_db == -math.inf
    assert tolerance_violations(ref, out, atol=1.0, rtol=1.0) == 1


def test_infinities_equal_only_with_the_same_sign() -> None:
    ref = np.array([np.inf, -np.inf, np.inf, 1.0])
    out = np.array([np.inf, np.inf, 1.0, 1.0])
    assert nonfinite_mismatch(ref, out).tolist() == [False, True, True, False]


def test_tolerance_violations_use_atol_plus_rtol() -> None:
    ref = np.array([1.0, 10.0, 100.0])
    out = np.array([1.05, 10.5, 100.5])
    # bounds 0.01 + 0.01*|ref| = 0.02, 0.11, 1.01 -> the first two exceed
    assert tolerance_violations(ref, out, atol=0.01, rtol=0.01) == 2


def test_per_class_max_abs_marks_nan_classes() -> None:
    ref = np.array([[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]])
    out = np.array([[0.1, 1.0, np.nan], [0.0, 1.3, 2.0]])
    values = per_class_max_abs(ref, out)
    assert values[0] == pytest.approx(0.1)
    assert values[1] == pytest.approx(0.3)
    assert math.isnan(values[2])


def test_head_slices_and_labels() -> None:
    slices = head_slices(10, tuple(range(7)), (7, 8, 9))
    assert [s.name for s in slices] == ["all", "kept", "new"]
    assert slices[2].label() == "new classes [7:10]"
    assert ClassSlice("new", (1, 5)).label() == "new classes [1,5]"
    assert [s.name for s in head_slices(4, (0, 1, 2, 3), ())] == ["all", "kept"]
