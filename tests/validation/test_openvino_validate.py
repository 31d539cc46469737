"""``validate`` with OpenVINO: IRs, ``.onnx`` run by OpenVINO beside ONNX Runtime, bf16, a planted fault."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from validation import validate

QUICK = {"samples": 8, "batch_sizes": (1, 4), "latency": False, "reference_cache": None}


@pytest.fixture(scope="module")
def ir(digits_model_dir: Path, onnx_fp32: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from converters.openvino.export import export_openvino

    out = tmp_path_factory.mktemp("ir") / "model.xml"
    export_openvino(onnx_fp32, out, model_dir=digits_model_dir)
    return out


def test_ir_and_both_runtimes_of_the_onnx_side_by_side(digits_model_dir: Path, onnx_fp32: Path, ir: Path) -> None:
    report = validate(digits_model_dir, [onnx_fp32, ir], runtimes=("onnxruntime", "openvino"), **QUICK)
    rows = {a.name: a for a in report.artifacts}
    assert set(rows) == {"model.onnx", "model.onnx [openvino]", "model.xml"}
    assert {rows[n].kind for n in rows} == {"onnxruntime", "openvino"}
    assert all(a.status == "pass" for a in report.artifacts), [(a.name, a.status) for a in report.artifacts]
    assert report.to_json()["settings"]["runtimes"] == ["onnxruntime", "openvino"]


def test_bf16_inference_is_judged_with_its_preset(digits_model_dir: Path, ir: Path) -> None:
    from converters.openvino import _runtime

    if "bf16" not in _runtime.supported_precisions("CPU"):
        pytest.skip("this CPU has no bf16 (AMX or AVX512-BF16)")
    report = validate(digits_model_dir, [ir], ov_precision="bf16", **QUICK)
    (row,) = report.artifacts
    assert row.precision == "bf16" and row.status == "pass" and row.name == "model.xml [bf16]"
    assert row.preset == "bf16"


def test_a_planted_head_fault_in_an_ir_is_caught_on_the_new_classes(
    digits_model_dir: Path, onnx_fp32: Path, tmp_path: Path
) -> None:
    """An IR whose new-class row 8 is perturbed (written by OpenVINO directly, as another tool
    would, so no rehead export refuses it first): validate fails it on the new-class slice."""
    from converters.openvino import _runtime
    from tests.validation.conftest import edit_initializer, head_initializer

    def perturb(w: np.ndarray) -> None:
        w[8] += 0.05

    bad = edit_initializer(onnx_fp32, tmp_path / "bad.onnx", head_initializer(onnx_fp32, "weight"), perturb)
    xml = tmp_path / "bad.xml"
    # fp32 weights (OpenVINO's save_model compresses them to fp16 unless told not to)
    _runtime.openvino().save_model(_runtime.core().read_model(str(bad)), str(xml), compress_to_fp16=False)
    for precision in ("f32", "bf16") if "bf16" in _runtime.supported_precisions("CPU") else ("f32",):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # no rehead record: lineage cannot be checked (said as a warning)
            report = validate(digits_model_dir, [xml], ov_precision=precision, **QUICK)
        (row,) = report.artifacts
        assert row.status == "fail", precision  # the bf16 preset's wider bounds still catch it
        failed = {f.class_slice for f in row.parity.failures if f.class_slice}
        assert any("new" in s for s in failed) and not any(s.startswith("kept") for s in failed), (precision, failed)


def test_unknown_runtime_and_precision_are_bad_input(digits_model_dir: Path, onnx_fp32: Path) -> None:
    from toolkit.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="runtime"):
        validate(digits_model_dir, [onnx_fp32], runtimes=("tvm",), **QUICK)
    with pytest.raises(InvalidArgumentError, match="inference precision"):
        validate(digits_model_dir, [onnx_fp32], ov_precision="int4", **QUICK)
