"""``OnnxExportOptions``: the ONNX export's settings declared once, built by the CLI from the
flags given, read by ``export_onnx``; contradicting settings refused when the record is made.
The CLI's other export records (``Pt2ExportOptions``, ``BuildOptions``) are built the same way."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

import converters
from converters.int8 import quantize
from converters.onnx.options import CALIB_METHODS, OnnxExportOptions, check_target
from converters.openvino.options import OpenVinoExportOptions
from converters.tensorrt import build, refit
from converters.tensorrt.options import DEFAULT_DEVICE, BuildOptions
from toolkit.cli import main
from toolkit.errors import ArtifactError, InvalidArgumentError


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What ``rehead export onnx|pt2|tensorrt`` and ``rehead refit`` pass to the library (nothing
    is exported)."""
    calls: list[dict[str, Any]] = []

    def fake(source: object, path: object, **kwargs: Any) -> None:
        calls.append({"source": source, "path": path, **kwargs})

    monkeypatch.setattr(converters, "export_onnx", fake)
    monkeypatch.setattr(converters, "export_pt2", fake)
    monkeypatch.setattr(build, "export_tensorrt", lambda onnx, path, options, **kwargs: fake(onnx, path,
                        options=options, **kwargs))  # fmt: skip
    monkeypatch.setattr(refit, "refit_engine", lambda engine, onnx, path, **kwargs: fake(onnx, path, **kwargs))
    return calls


def test_the_cli_without_flags_builds_the_records_defaults(tmp_path: Path, captured: list[dict[str, Any]]) -> None:
    """The CLI writes no default of its own: a flag left out is the record's default."""
    assert main(["export", "onnx", str(tmp_path), "-o", str(tmp_path / "m.onnx")]) == 0
    assert main(["export", "pt2", str(tmp_path), "-o", str(tmp_path / "m.pt2")]) == 0
    assert main(["export", "tensorrt", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "m.engine")]) == 0
    assert main(["refit", str(tmp_path / "m.engine"), str(tmp_path / "m.onnx"), "-o", str(tmp_path / "n.engine")]) == 0
    onnx, pt2, engine, refitted = captured
    assert onnx["options"] == OnnxExportOptions() and not onnx["overwrite"] and onnx["progress"]
    assert pt2["options"] == converters.Pt2ExportOptions() and not pt2["overwrite"]
    assert engine["options"] == BuildOptions() and engine["device"] == DEFAULT_DEVICE
    assert refitted["device"] == DEFAULT_DEVICE and not refitted["allow_mismatch"]


def test_the_int8_choices_are_declared_with_the_options() -> None:
    """``quantize`` reads the choices the record checks (one declaration, in the light module)."""
    assert quantize.CALIB_METHODS is CALIB_METHODS and quantize.check_target is check_target
    with pytest.raises(InvalidArgumentError, match="unknown INT8 target 'gpu'") as caught:
        check_target("gpu")
    assert caught.value.param == "int8_target"


def test_the_cli_copies_each_flag_given(tmp_path: Path, captured: list[dict[str, Any]]) -> None:
    args = ["--opset", "17", "--no-dynamic-batch", "--int8", "--calib", "digits", "--calib-samples", "7",
            "--calib-method", "entropy", "--int8-target", "tensorrt", "--bake-preprocess", "--no-optimize",
            "--external-data", "--min-agreement", "0.9", "--new-class-min-agreement", "0.8", "--max-fp32-nodes", "3",
            "--heldout", "held", "--heldout-samples", "9", "--no-speed-rule", "--overwrite"]  # fmt: skip
    assert main(["export", "onnx", str(tmp_path), "-o", str(tmp_path / "m.onnx"), *args]) == 0
    assert captured[0]["options"] == OnnxExportOptions(
        opset=17, dynamic_batch=False, int8=True, calib="digits", calib_samples=7, calib_method="entropy",
        int8_target="tensorrt", bake_preprocess=True, optimize=False, external_data=True, min_agreement=0.9,
        new_class_min_agreement=0.8, max_fp32_nodes=3, heldout="held", heldout_samples=9, speed_rule=False,
    )  # fmt: skip
    assert captured[0]["overwrite"]
    assert main(["export", "pt2", str(tmp_path), "-o", str(tmp_path / "m.pt2"), "--no-dynamic-batch",
                 "--device", "cuda:1"]) == 0  # fmt: skip
    assert captured[1]["options"] == converters.Pt2ExportOptions(dynamic_batch=False, device="cuda:1")


@pytest.mark.parametrize(
    ("settings", "param"),
    [
        ({"fp16": True, "int8": True}, "int8"),
        ({"calib_samples": 0}, "calib_samples"),
        ({"calib_method": "median"}, "calib_method"),
        ({"int8_target": "gpu"}, "int8_target"),
        ({"min_agreement": 0.9}, "min_agreement"),
        ({"int8": True, "heldout": "somewhere"}, "heldout"),
        ({"int8": True, "min_agreement": 0.9, "heldout_samples": 0}, "heldout_samples"),
    ],
)
def test_contradicting_settings_are_refused_when_the_record_is_made(settings: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        OnnxExportOptions(**settings)
    assert caught.value.param == param
    with pytest.raises(InvalidArgumentError):
        OnnxExportOptions().replace(**settings)


def test_the_record_round_trips_through_json() -> None:
    options = OnnxExportOptions(int8=True, calib=Path("/data/calib"), min_agreement=0.99, max_fp32_nodes=4)
    data = options.to_json()
    assert data["schema_version"] == 1 and data["calib"] == "/data/calib" and data["calib_samples"] == 128
    assert OnnxExportOptions.from_json(data) == dataclasses.replace(options, calib="/data/calib")
    assert options.precision == "int8" and options.int8_targets() is not None
    assert OnnxExportOptions().int8_targets() is None and OnnxExportOptions(fp16=True).precision == "fp16"
    with pytest.raises(ArtifactError, match="schema_version"):
        OnnxExportOptions.from_json({**data, "schema_version": 2})
    with pytest.raises(ArtifactError, match="unknown field"):
        OnnxExportOptions.from_json({**data, "colour": "blue"})
    pt2 = converters.Pt2ExportOptions(device="cuda")
    assert converters.Pt2ExportOptions.from_json(pt2.to_json()) == pt2
    ov = OpenVinoExportOptions(compress_to_fp16=True, check_precision="bf16")
    assert OpenVinoExportOptions.from_json(ov.to_json()) == ov and ov.replace(threads=2).threads == 2
    for record in (pt2, ov):  # every options record is as strict as the ONNX one
        with pytest.raises(ArtifactError, match="unknown field"):
            type(record).from_json({**record.to_json(), "colour": "blue"})
        with pytest.raises(ArtifactError, match="schema_version 2"):
            type(record).from_json({**record.to_json(), "schema_version": 2})


def test_an_unknown_keyword_is_a_type_error(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="colour"):
        converters.export_onnx(tmp_path, tmp_path / "m.onnx", colour="blue")
    assert list(tmp_path.iterdir()) == []
