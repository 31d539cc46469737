"""Parity of real ONNX exports against the eager model: correct, planted faults, fp16, batch sizes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from toolkit.errors import GateFailedError, InputShapeError
from validation.suite import validate


def _parity(model_dir: Path, artifact: object, **options: object):  # type: ignore[no-untyped-def]
    options.setdefault("samples", 8)
    options.setdefault("batch_sizes", (1, 4))
    report = validate(model_dir, [artifact], latency=False, progress=False, **options)  # type: ignore[arg-type, list-item]
    return report, report.artifacts[0]


def _slice(artifact, name: str):  # type: ignore[no-untyped-def]
    return [r for b in artifact.parity.batches for r in b.results if r.slice.name == name]


def test_correct_export_passes_with_every_slice(digits_model_dir: Path, onnx_fp32: Path) -> None:
    report, art = _parity(digits_model_dir, onnx_fp32, data="digits")
    assert art.precision == "fp32" and art.preset == "fp32"
    assert art.parity_status == "pass", art.failures
    names = {r.slice.name for b in art.parity.batches for r in b.results}
    assert names == {"all", "kept", "new"}
    new = _slice(art, "new")[0]
    assert new.slice.indices == (7, 8, 9)
    assert new.metrics.max_abs < 1e-4 and new.metrics.top1 == 1.0
    assert report.inputs["source"] == "digits"
    report.raise_for_status()


def test_auto_preset_calibrates_an_envelope_and_passes(digits_model_dir: Path, onnx_fp32: Path) -> None:
    _, art = _parity(digits_model_dir, onnx_fp32, preset="auto")
    tol = art.parity.tolerance
    assert tol.preset == "auto" and set(tol.slice_atol) == {"all", "kept", "new"}
    assert "fp64" in tol.source
    assert 0 < tol.atol < 1e-3  # derived from PyTorch's own float32 spread, not the 1e-4 preset
    assert art.parity_status == "pass", art.failures


def test_planted_new_row_mismatch_names_the_new_slice(digits_model_dir: Path, onnx_bad_new_row: Path) -> None:
    report, art = _parity(digits_model_dir, onnx_bad_new_row)
    assert art.parity_status == "fail"
    assert art.parity.failures, "a perturbed head row must fail"
    assert all(f.kind == "parity" and f.class_slice in ("new", "all") for f in art.parity.failures)
    assert any(f.class_slice == "new" and f.metric == "max_abs" for f in art.parity.failures)
    assert {b.batch_size for b in art.parity.batches if b.failures} == {1, 4}
    # the perturbed row is class 8: every failing slice names it as its worst class
    assert all(f.worst_class == 8 and f.worst_class_name == "8" for f in art.parity.failures)
    for kept in _slice(art, "kept"):
        assert not kept.failures and kept.metrics.max_abs < 1e-4  # the kept classes stay clean
    assert min(r.metrics.top1 for r in _slice(art, "kept")) == 1.0
    loc = art.parity.localisation
    assert loc is not None and loc["status"] == "localised" and loc["module"] == "fc", loc
    # one line: the first failure (naming the worst class, a new one) and how many more there are
    with pytest.raises(GateFailedError, match=r"worst class 8 '8' \(\+3 more\)$"):
        report.raise_for_status()


def test_auto_preset_also_catches_the_planted_row(digits_model_dir: Path, onnx_bad_new_row: Path) -> None:
    _, art = _parity(digits_model_dir, onnx_bad_new_row, preset="auto", localise=False)
    assert art.parity_status == "fail"
    assert any(f.class_slice == "new" for f in art.parity.failures)


def test_planted_nan_fails(digits_model_dir: Path, onnx_nan: Path) -> None:
    _, art = _parity(digits_model_dir, onnx_nan, localise=False)
    assert art.parity_status == "fail"
    nonfinite = [f for f in art.parity.failures if f.metric == "nonfinite"]
    assert nonfinite and all(f.kind == "parity" and f.value and f.value > 0 for f in nonfinite)
    # the NaN sits in kept class 2
    assert any(f.class_slice == "kept" and f.worst_class == 2 for f in nonfinite)


def test_fp16_passes_fp16_preset_and_fails_fp32(digits_model_dir: Path, onnx_fp16: Path) -> None:
    _, art = _parity(digits_model_dir, onnx_fp16)
    assert art.precision == "fp16" and art.preset == "fp16"
    assert art.parity_status == "pass", art.failures
    worst = art.parity.worst("all")
    assert worst is not None and worst.max_abs > 1e-4  # fp16 really is less exact than fp32
    _, strict = _parity(digits_model_dir, onnx_fp16, preset="fp32", localise=False)
    assert strict.parity_status == "fail"
    assert strict.parity.tolerance.atol == 1e-4
    assert any(f.metric == "max_abs" and f.bound is not None and f.bound >= 1e-4 for f in strict.parity.failures)
    _, auto = _parity(digits_model_dir, onnx_fp16, preset="auto", localise=False)
    assert auto.parity_status == "pass", auto.failures


def test_eager_autocast_row(digits_model_dir: Path) -> None:
    _, art = _parity(digits_model_dir, "eager:bf16", localise=False)
    assert art.kind == "eager" and art.precision == "bf16" and art.preset == "bf16"
    assert art.parity_status == "pass", art.failures
    _, strict = _parity(digits_model_dir, "eager:bf16", preset="fp32")
    assert strict.parity_status == "fail"
    assert strict.parity.localisation["status"] == "could not localise"


# --- bad inputs: rows 15, 16, 17 -------------------------------------------------------------------


def test_nan_inputs_fail_parity(digits_model_dir: Path, onnx_fp32: Path, tmp_path: Path) -> None:
    x = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)
    x[1, 0, 0, 0] = np.nan
    x[2, 1, 3, 3] = np.inf
    np.savez(tmp_path / "inputs.npz", images=x)
    _, art = _parity(digits_model_dir, onnx_fp32, data=str(tmp_path / "inputs.npz"), localise=False)
    assert art.parity_status == "fail"
    first = art.parity.failures[0]
    assert first.kind == "inputs" and first.metric == "nonfinite" and first.value == 2.0
    assert "parity inputs hold 2 NaN/Inf values" in first.message  # the message says it in words too
    assert any(f.kind == "parity" and f.metric == "nonfinite" for f in art.parity.failures)


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (np.zeros((2, 3, 32, 32), dtype=np.float64), "dtype float64"),
        (np.zeros((3, 32, 32), dtype=np.float32), "rank 3"),
        (np.zeros((2, 1, 32, 32), dtype=np.float32), "1 channels"),
        (np.zeros((2, 32, 32, 3), dtype=np.float32), "32 channels"),
        (np.zeros((2, 3, 28, 28), dtype=np.float32), "28x28"),
    ],
)
def test_wrong_inputs_name_expected_shape_and_dtype(
    digits_model_dir: Path, onnx_fp32: Path, tmp_path: Path, array: np.ndarray, expected: str
) -> None:
    np.savez(tmp_path / "bad.npz", images=array)
    with pytest.raises(InputShapeError) as info:
        _parity(digits_model_dir, onnx_fp32, data=str(tmp_path / "bad.npz"))
    assert expected in info.value.message
    assert "float32[N,3,32,32] (NCHW)" in info.value.message
    assert info.value.exit_code == 2


def test_dynamic_batch_one_max_and_max_plus_one(digits_model_dir: Path, onnx_fp32: Path) -> None:
    _, art = _parity(digits_model_dir, onnx_fp32, samples=9, batch_sizes=(1, 8, 9))
    assert [b.batch_size for b in art.parity.batches] == [1, 8, 9]
    assert art.parity_status == "pass", art.failures
    assert all(not b.failures for b in art.parity.batches)


def test_fixed_batch_artifact_refuses_another_batch(digits_model_dir: Path, onnx_fixed_batch: Path) -> None:
    _, art = _parity(digits_model_dir, onnx_fixed_batch, samples=5, batch_sizes=(2,))
    assert art.parity_status == "pass", art.failures  # the short last batch is padded, not dropped
    with pytest.raises(InputShapeError, match="fixed batch size of 2; batch size 4 was asked for") as info:
        _parity(digits_model_dir, onnx_fixed_batch, batch_sizes=(4,))
    # the library names the keyword argument at fault; the CLI turns it into its flag
    assert info.value.param == "batch_sizes" and "use batch size 2" in info.value.hint


def test_int8_artifact_gated_on_top1_and_sqnr(digits_model_dir: Path, tmp_path: Path) -> None:
    from converters import export_onnx

    path = tmp_path / "model-int8.onnx"
    export_onnx(digits_model_dir, path, int8=True, calib="digits", progress=False)  # 128 seeded images
    _, art = _parity(digits_model_dir, path, data="digits", samples=64, batch_sizes=(8,), localise=False)
    assert art.precision == "int8" and art.preset == "int8"
    assert art.parity.tolerance.atol is None  # no element-wise bound for int8
    assert art.parity_status == "pass", art.failures
    worst = art.parity.worst("all")
    assert worst is not None and worst.max_abs > 1e-3 and worst.sqnr_db >= 15.0
    _, strict = _parity(digits_model_dir, path, data="digits", samples=64, batch_sizes=(8,), preset="fp32",
                        localise=False)
    assert strict.parity_status == "fail"
