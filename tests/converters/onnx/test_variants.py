"""fp16 and INT8 variants: they run at any batch, keep fp32 I/O, and agree with eager on held-out digits."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import torch
from converters_testutil import digits_test, ort_run

import converters
from toolkit.errors import DataError, ExportError, InvalidArgumentError, ReheadError
from toolkit.models.model_dir import load_model_dir


def _agreement(model_dir: Path, onnx_path: Path) -> float:
    x, _ = digits_test(model_dir)
    with torch.inference_mode():
        ref = load_model_dir(model_dir).module(x)
    return (ort_run(onnx_path, x).argmax(1) == ref.argmax(1)).float().mean().item()


def test_fp16_keeps_fp32_io_and_agrees(trained_tiny_dir: Path, tmp_path: Path) -> None:
    result = converters.export_onnx(trained_tiny_dir, tmp_path / "m.onnx", fp16=True, progress=False)
    assert result.format == "onnx-fp16"
    assert [(t.name, t.dtype) for t in (*result.inputs, *result.outputs)] == [
        ("images", "float32"),
        ("logits", "float32"),
    ]
    graph = onnx.load(str(result.path)).graph
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in graph.initializer)
    assert converters.read_onnx_metadata(result.path)["precision"] == "fp16"
    assert ort_run(result.path, torch.randn(17, 3, 16, 16)).shape == (17, 10)
    assert _agreement(trained_tiny_dir, result.path) >= 0.99


@pytest.mark.parametrize("method", ["minmax", "entropy", "percentile"])
def test_int8_qdq_agrees_on_held_out_digits(trained_tiny_dir: Path, tmp_path: Path, method: str) -> None:
    result = converters.export_onnx(
        trained_tiny_dir,
        tmp_path / "m.onnx",
        int8=True,
        calib="digits",
        calib_samples=64,
        calib_method=method,
        progress=False,
    )
    assert result.format == "onnx-int8"
    ops = {n.op_type for n in onnx.load(str(result.path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # QDQ format, what TensorRT reads
    assert result.outputs[0].dtype == "float32"
    assert converters.read_onnx_metadata(result.path)["precision"] == "int8"
    assert ort_run(result.path, torch.randn(3, 3, 16, 16)).shape == (3, 10)
    assert _agreement(trained_tiny_dir, result.path) >= 0.9


def test_int8_with_baked_preprocessing(trained_tiny_dir: Path, tmp_path: Path) -> None:
    result = converters.export_onnx(
        trained_tiny_dir, tmp_path / "m.onnx", int8=True, bake_preprocess=True, calib_samples=32, progress=False
    )
    assert result.inputs[0].dtype == "uint8"
    assert result.checks["top1_agreement_calibration"] >= 0.8
    # no calib given: the digits that trained_tiny_dir's lineage records
    quant = converters.read_onnx_metadata(result.path)["quantization"]
    assert quant["calibration"] == "digits" and quant["calibration_from"] == "lineage: digits"


def test_int8_calibration_folder_with_only_a_test_split_is_refused(trained_tiny_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "calib" / "test" / "0").mkdir(parents=True)
    with pytest.raises(DataError, match="test split"):
        converters.export_onnx(
            trained_tiny_dir, tmp_path / "m.onnx", int8=True, calib=tmp_path / "calib", progress=False
        )
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize(
    ("kwargs", "param", "error"),
    [
        ({"fp16": True, "int8": True}, "int8", InvalidArgumentError),
        ({"int8": True, "calib_samples": 0}, "calib_samples", InvalidArgumentError),
        ({"int8": True, "calib_samples": True}, "calib_samples", InvalidArgumentError),
        ({"int8": True, "calib_method": "median"}, "calib_method", InvalidArgumentError),
        ({"int8": True, "int8_target": "npu"}, "int8_target", InvalidArgumentError),
        ({"int8": True, "calib": "/nonexistent/images"}, "calib", DataError),
        ({"opset": 99}, "opset", ExportError),
    ],
)
def test_bad_arguments_name_the_keyword_not_a_cli_flag(
    trained_tiny_dir: Path, tmp_path: Path, kwargs: dict[str, object], param: str, error: type[Exception]
) -> None:
    with pytest.raises(error) as caught:
        converters.export_onnx(trained_tiny_dir, tmp_path / "m.onnx", progress=False, **kwargs)  # type: ignore[arg-type]
    exc = caught.value
    assert isinstance(exc, ReheadError) and exc.exit_code == 2 and exc.param == param
    assert "--" not in exc.one_line()  # the CLI adds its flag names; the library says the keyword
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("target", "dtype"), [("cpu", onnx.TensorProto.UINT8), ("tensorrt", onnx.TensorProto.INT8)])
def test_int8_target_sets_activation_type_and_zero_points(
    trained_tiny_dir: Path, tmp_path: Path, target: str, dtype: int
) -> None:
    result = converters.export_onnx(
        trained_tiny_dir, tmp_path / "m.onnx", int8=True, calib_samples=32, int8_target=target, progress=False
    )
    model = onnx.load(str(result.path))
    inits = {i.name: i for i in model.graph.initializer}
    # the activation quantizers: QuantizeLinear nodes whose input is not a weight
    zero_points = [
        inits[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in inits
    ]
    assert zero_points and {z.data_type for z in zero_points} == {dtype}
    if target == "tensorrt":
        assert all(not onnx.numpy_helper.to_array(z).any() for z in zero_points)  # zero point 0
    assert converters.read_onnx_metadata(result.path)["quantization"]["target"] == target


def test_library_export_prints_nothing_by_default(
    trained_tiny_dir: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # progress defaults to False; the exporters' and quantizer's own chatter is kept off the terminal too
    converters.export_onnx(trained_tiny_dir, tmp_path / "m.onnx", int8=True, calib_samples=32)
    out, err = capfd.readouterr()
    assert out == "" and err == ""
