"""Tolerance presets, overrides and the verdict."""

from __future__ import annotations

import numpy as np
import pytest

from converters.compare.failure import Failure
from converters.compare.metrics import ClassSlice, slice_metrics, tolerance_violations
from converters.compare.tolerance import PRESETS, judge, resolve_preset, with_overrides
from toolkit.errors import InvalidArgumentError


def test_preset_follows_precision_unless_given() -> None:
    assert resolve_preset(None, "fp16") == "fp16"
    assert resolve_preset(None, "int8") == "int8"
    assert resolve_preset(None, "fp32") == "fp32"
    assert resolve_preset("fp32", "fp16") == "fp32"
    with pytest.raises(InvalidArgumentError, match="unknown preset"):
        resolve_preset("fp8", "fp32")


def test_overrides_replace_atol_and_rtol() -> None:
    tol = with_overrides(PRESETS["fp32"], atol=0.5)
    assert tol.atol == 0.5 and tol.rtol == PRESETS["fp32"].rtol
    assert "overridden" in tol.source
    with pytest.raises(InvalidArgumentError):
        with_overrides(PRESETS["fp32"], rtol=-1.0)


def _judge(ref: np.ndarray, out: np.ndarray, preset: str) -> list[Failure]:
    tol = PRESETS[preset]
    sl = ClassSlice("new", (0, 1, 2))
    atol = tol.atol_for("new")
    v = tolerance_violations(ref, out, atol if atol is not None else np.inf, tol.rtol)
    return judge("logits", sl, slice_metrics(ref, out), v, tol, batch_size=4)


def test_fp32_preset_fails_with_numbers() -> None:
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((4, 3))
    fails = _judge(ref, ref + 1e-2, "fp32")
    assert len(fails) == 1
    f = fails[0]
    assert (f.kind, f.metric, f.output, f.class_slice, f.batch_size) == ("parity", "max_abs", "logits", "new", 4)
    assert f.value == pytest.approx(1e-2) and f.bound is not None and f.value > f.bound
    # the human line carries the numbers
    assert "'logits'[new classes [0:3]] at batch 4" in f.message
    assert "max|Δ| 1.000e-02" in f.message and "cosine" in f.message and "top-1" in f.message
    assert _judge(ref, ref + 1e-6, "fp32") == []


def test_int8_preset_gates_on_top1_and_sqnr_not_atol() -> None:
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((200, 3)) * 5
    small_noise = ref + rng.standard_normal(ref.shape) * 0.05  # far above any atol, SQNR ~ 40 dB
    assert _judge(ref, small_noise, "int8") == []
    shuffled = ref[:, ::-1]  # top-1 survives only where the middle class wins
    fails = _judge(ref, shuffled, "int8")
    assert {f.metric for f in fails} == {"top1", "sqnr_db"}
    top1 = next(f for f in fails if f.metric == "top1")
    assert top1.value is not None and top1.bound == 0.9 and top1.value < 0.9


def test_nan_fails_every_preset() -> None:
    ref = np.ones((2, 3))
    out = ref.copy()
    out[0, 1] = np.nan
    for preset in PRESETS:
        assert any(f.metric == "nonfinite" and f.value == 1 for f in _judge(ref, out, preset)), preset


def test_fp32_bound_widens_by_the_models_own_rounding_only() -> None:
    """An ill-conditioned model (logits ~1e4, eager fp32 itself ~1e-3 of the scale off float64):
    an export as accurate as eager passes; a 1% error of one logit still fails; a model whose
    fixed bound holds never pays for the float64 pass."""
    from converters.compare import compare_outputs

    rng = np.random.default_rng(0)
    r64 = rng.standard_normal((8, 10)) * 1e4
    ref32 = r64 + rng.standard_normal(r64.shape) * 5.0  # eager fp32's own rounding
    export = r64 + rng.standard_normal(r64.shape) * 5.0  # as far from float64 as eager is
    calls = []

    def rounding() -> dict[str, np.ndarray]:
        calls.append(1)
        return {"logits": r64}

    slices = [ClassSlice("all", tuple(range(10)))]
    tol = PRESETS["fp32"]
    ok = compare_outputs({"logits": ref32}, {"logits": export}, slices, tol, batch_size=8, rounding=rounding)
    assert not ok.failures and calls
    bug = export.copy()
    bug[3, 4] += 0.01 * abs(r64[3, 4]) + 1e3
    bad = compare_outputs({"logits": ref32}, {"logits": bug}, slices, tol, batch_size=8, rounding=rounding)
    assert [f.metric for f in bad.failures] == ["max_abs"]
    assert "model's own fp32 rounding" in bad.failures[0].message
    # without the float64 twin the fixed bound alone judges (and fails) the accurate export
    plain = compare_outputs({"logits": ref32}, {"logits": export}, slices, tol, batch_size=8)
    assert plain.failures
    calls.clear()
    small = rng.standard_normal((8, 10))
    compare_outputs({"logits": small}, {"logits": small + 1e-7}, slices, tol, batch_size=8, rounding=rounding)
    assert not calls


def test_bf16_has_its_own_preset_eight_times_fp16s_bounds() -> None:
    """bfloat16 rounds 8x coarser than float16: a bf16 artifact is judged by fp16's bounds x 8,
    chosen from its precision; a deviation beyond them still fails."""
    assert resolve_preset(None, "bf16") == "bf16" and resolve_preset(None, "fp16") == "fp16"
    assert PRESETS["bf16"].atol == 8 * PRESETS["fp16"].atol and PRESETS["bf16"].rtol == 8 * PRESETS["fp16"].rtol
    ref = np.ones((4, 3))
    rounding = ref + 0.1  # within bf16's 0.16 + 0.08: outside fp16's 0.02 + 0.01
    assert _judge(ref, rounding, "bf16") == [] and _judge(ref, rounding, "fp16") != []
    assert _judge(ref, ref + 0.5, "bf16") != []
