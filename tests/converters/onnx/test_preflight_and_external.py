"""Preflight lint findings and external-data location checks."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from converters_testmodels import Int64BufferNet, TinyNet
from onnx import TensorProto, helper

import converters
from converters.onnx.external import check_location_name
from converters.onnx.preflight import check_graph
from toolkit.errors import ArtifactError
from toolkit.records import HeadSpec, ModelConfig


def _codes(found: list[converters.Finding]) -> dict[str, str]:
    return {f.code: f.severity for f in found}


def test_clean_model_has_no_findings() -> None:
    assert converters.preflight(TinyNet().eval(), None, None) == []


def test_train_mode_is_reported_as_handled() -> None:
    found = converters.preflight(TinyNet().train(), None, 18)
    assert _codes(found) == {"train-mode": "info"}


def test_int64_weights_warn_and_wide_ones_stop() -> None:
    assert _codes(converters.preflight(Int64BufferNet().eval(), None, None)) == {"int64-weights": "warning"}
    wide = converters.preflight(Int64BufferNet(wide=True).eval(), None, None)
    assert _codes(wide) == {"int64-weights": "error"} and wide[0].node == "table"


@pytest.mark.parametrize("opset", [0, 6, 99, 18.0, True])
def test_bad_opset_is_an_error(opset: object) -> None:
    assert _codes(converters.preflight(TinyNet().eval(), None, opset))["opset-range"] == "error"  # type: ignore[arg-type]


def test_record_head_must_exist_in_module() -> None:
    config = ModelConfig("py:x:y", HeadSpec.identity("classifier", "linear", 16, 10), tuple("abcdefghij"))
    assert _codes(converters.preflight(TinyNet().eval(), config, None)) == {"record-mismatch": "error"}


def test_op_newer_than_the_opset_is_named_with_its_node() -> None:
    import onnx_ir as ir

    node = helper.make_node("LayerNormalization", ["x", "s"], ["y"], name="norm_7")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor("s", TensorProto.FLOAT, [4], np.ones(4, np.float32))],
    )
    model = ir.serde.deserialize_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    (finding,) = [f for f in check_graph(model, 13) if f.severity == "error"]
    assert finding.code == "unsupported-op" and finding.node == "norm_7" and "LayerNormalization" in finding.message


def test_model_over_two_gib_goes_to_external_data(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setattr(sys.modules["converters.onnx.preflight"], "EXTERNAL_THRESHOLD", 1000)
    assert _codes(converters.preflight(TinyNet().eval(), None, None)) == {"external-data": "info"}


@pytest.mark.parametrize("name", ["", "..", "../secret.data", "/etc/passwd", "sub/w.data", "a\\b.data", "C:evil"])
def test_unsafe_location_names_are_refused(name: str) -> None:
    with pytest.raises(ArtifactError):
        check_location_name(name)


def _external_model(folder: Path, location: str) -> Path:
    """A one-initializer model whose weights live in external data named ``location``."""
    weight = onnx.numpy_helper.from_array(np.ones(256, np.float32), "w")  # raw data: can go external
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [256])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [256])],
        [weight],
    )
    path = folder / "m.onnx"
    onnx.save_model(
        helper.make_model(graph), str(path), save_as_external_data=True, location="w.data", size_threshold=0
    )
    model = onnx.load(str(path), load_external_data=False)
    for entry in model.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = location
    onnx.save_model(model, str(path))
    return path


def test_safe_external_data_passes(tmp_path: Path) -> None:
    path = _external_model(tmp_path, "w.data")
    assert converters.check_external_data(path) == [tmp_path / "w.data"]


@pytest.mark.parametrize("location", ["../w.data", "/tmp/w.data", "sub/w.data"])
def test_traversal_and_absolute_locations_are_refused_on_load(tmp_path: Path, location: str) -> None:
    path = _external_model(tmp_path, location)
    with pytest.raises(ArtifactError, match="external-data location"):
        converters.check_external_data(path)
    with pytest.raises(ArtifactError):
        converters.read_onnx_metadata(path)


def test_symlinked_data_file_is_refused(tmp_path: Path) -> None:
    path = _external_model(tmp_path, "w.data")
    os.replace(tmp_path / "w.data", tmp_path / "real.data")
    (tmp_path / "w.data").symlink_to(tmp_path / "real.data")
    with pytest.raises(ArtifactError, match="symlink"):
        converters.check_external_data(path)


def test_missing_data_file_is_refused(tmp_path: Path) -> None:
    path = _external_model(tmp_path, "w.data")
    (tmp_path / "w.data").unlink()
    with pytest.raises(ArtifactError, match="missing"):
        converters.check_external_data(path)


def test_preflight_does_not_run_the_model() -> None:
    net = TinyNet().eval()
    calls = []
    net.register_forward_hook(lambda *a: calls.append(a))
    converters.preflight(net, None, None)
    assert calls == []
