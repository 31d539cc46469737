"""Localisation helpers, and artifacts with preprocessing baked in (uint8 NHWC input)."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from validation.localise import _scopes
from validation.suite import validate


def test_scopes_from_torchscript_node_names() -> None:
    node = onnx.helper.make_node("Conv", ["x", "w"], ["y"], name="/layer1/layer1.0/conv1/Conv")
    assert _scopes(node) == ["layer1", "layer1.0", "layer1.0.conv1"]
    node = onnx.helper.make_node("Gemm", ["x", "w"], ["y"], name="/fc/Gemm")
    assert _scopes(node) == ["fc"]
    assert _scopes(onnx.helper.make_node("Relu", ["x"], ["y"], name="node_relu_1")) == []


def test_scopes_from_dynamo_metadata() -> None:
    node = onnx.helper.make_node("Relu", ["x"], ["y"], name="node_relu_1")
    entry = node.metadata_props.add()
    entry.key = "pkg.torch.onnx.name_scopes"
    entry.value = "['', 'layer1', 'layer1.0', 'layer1.0.relu', 'relu_1']"
    assert _scopes(node) == ["layer1", "layer1.0", "layer1.0.relu"]


@pytest.fixture(scope="module")
def onnx_baked(digits_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from converters import export_onnx

    out = tmp_path_factory.mktemp("baked") / "baked.onnx"
    export_onnx(digits_model_dir, out, bake_preprocess=True, progress=False)
    return out


def test_baked_preprocessing_artifact_sees_the_same_pixels(digits_model_dir: Path, onnx_baked: Path) -> None:
    report = validate(
        digits_model_dir, [onnx_baked], data="digits", samples=6, batch_sizes=(1, 3), latency=False,
        progress=False,
    )
    art = report.artifacts[0]
    assert art.parity_status == "pass", art.failures
    assert "uint8 pixel grid" in report.inputs["source"]
