"""``lint_onnx(path, target="tensorrt")`` and ``rehead lint``: each finding on a real graph.

Small graphs are built with ``onnx.helper``; the QDQ variants are rehead's own INT8 exports
(``int8_target`` ``cpu``: uint8 asymmetric, ``tensorrt``: int8 symmetric). Nothing here needs
TensorRT: the lint reads the graph only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import converters
from converters.onnx.preflight import Finding
from converters.tensorrt import ops as trt_ops
from converters.tensorrt.lint import lint_onnx
from toolkit.cli import main
from toolkit.errors import ArtifactError, InvalidArgumentError

# --- graph builders ----------------------------------------------------------------------------


def _save(model: onnx.ModelProto, path: Path) -> Path:
    # serialised as is: onnx.save would try to write external data that these tests only point at
    path.write_bytes(model.SerializeToString())
    return path


def _graph_model(
    path: Path,
    nodes: Sequence[onnx.NodeProto],
    *,
    inits: Sequence[onnx.TensorProto] = (),
    shape: Sequence[int | str | None] = ("batch", 3, 8, 8),
    outputs: Sequence[str] = ("y",),
    opset: int | None = 20,
    functions: Sequence[onnx.FunctionProto] = (),
    extra_opsets: Sequence[tuple[str, int]] = (),
) -> Path:
    """A model with one float input ``x`` of ``shape`` (None: a dim with neither size nor name)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, None)
    for dim in shape:
        new = x.type.tensor_type.shape.dim.add()
        if isinstance(dim, int):
            new.dim_value = dim
        elif isinstance(dim, str):
            new.dim_param = dim
    outs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in outputs]
    graph = helper.make_graph(list(nodes), "g", [x], outs, initializer=list(inits))
    imports = [helper.make_opsetid("", opset)] if opset is not None else []
    imports += [helper.make_opsetid(domain, version) for domain, version in extra_opsets]
    model = helper.make_model(graph, opset_imports=imports, functions=list(functions))
    return _save(model, path)


def _relu(path: Path, **kwargs: object) -> Path:
    return _graph_model(path, [helper.make_node("Relu", ["x"], ["y"], name="act")], **kwargs)  # type: ignore[arg-type]


def _codes(found: list[Finding]) -> dict[str, str]:
    return {f.code: f.severity for f in found}


def _by_code(found: list[Finding], code: str) -> list[Finding]:
    return [f for f in found if f.code == code]


def _blocking(found: list[Finding]) -> list[Finding]:
    return [f for f in found if f.severity in ("error", "warning")]


# --- the op list is data from onnx-tensorrt ------------------------------------------------------


def test_op_list_is_consistent_data() -> None:
    assert trt_ops.SUPPORTED_OPS.isdisjoint(trt_ops.UNSUPPORTED_OPS)
    assert {"Conv", "Gemm", "QuantizeLinear", "DequantizeLinear", "Attention"} <= trt_ops.SUPPORTED_OPS
    assert {"Unique", "ConvInteger", "QLinearConv", "SequenceAt"} <= trt_ops.UNSUPPORTED_OPS
    assert set(trt_ops.RESTRICTIONS) <= trt_ops.SUPPORTED_OPS
    assert set(trt_ops.UNSUPPORTED_NOTES) <= trt_ops.UNSUPPORTED_OPS
    assert trt_ops.MIN_OPSET < trt_ops.MAX_OPSET and trt_ops.TENSORRT_VERSION.startswith("10.")
    # every supported op is a real ONNX op (the table would not list a typo that onnx knows)
    known = {s.name for s in onnx.defs.get_all_schemas_with_history()}
    legacy = {"ImageScaler", "ParametricSoftplus", "ScaledTanh", "Scatter", "Upsample"}  # removed from ONNX
    assert trt_ops.SUPPORTED_OPS - known <= legacy


# --- rehead's own exports ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exports(custom_model_dir: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """fp32, INT8 for cpu (uint8 asymmetric) and INT8 for tensorrt (int8 symmetric) of TinyNet."""
    model_dir = custom_model_dir("make_tiny")
    out = tmp_path_factory.mktemp("lint_exports")
    paths = {"fp32": converters.export_onnx(model_dir, out / "fp32.onnx", progress=False).path}
    for target in ("cpu", "tensorrt"):
        result = converters.export_onnx(
            model_dir,
            out / f"{target}.onnx",
            int8=True,
            int8_target=target,
            calib="digits",
            calib_samples=16,
            progress=False,
        )
        paths[target] = result.path
    return paths


def test_clean_fp32_export_has_nothing_blocking(exports: dict[str, Path]) -> None:
    found = lint_onnx(exports["fp32"])
    assert _blocking(found) == [], [f.one_line() for f in found]
    batch = _by_code(found, "dynamic-batch")
    assert len(batch) == 1 and batch[0].severity == "info" and batch[0].node == "images"


def test_cpu_int8_export_is_uint8_asymmetric_and_refused(exports: dict[str, Path]) -> None:
    found = lint_onnx(exports["cpu"])
    uint8 = _by_code(found, "qdq-uint8")
    assert uint8 and all(f.severity == "error" for f in uint8)
    assert {f.node for f in uint8} >= {"images_QuantizeLinear", "images_DequantizeLinear"}
    assert "int8_target='tensorrt'" in uint8[0].hint
    assert found[0].severity == "error"  # errors come first


def test_tensorrt_int8_export_is_symmetric(exports: dict[str, Path]) -> None:
    found = lint_onnx(exports["tensorrt"])
    assert not _by_code(found, "qdq-uint8") and not _by_code(found, "qdq-zero-point")
    assert not _by_code(found, "q-without-dq") and not _by_code(found, "qdq-weight-axis")
    # biases stay float for TensorRT: its parser refuses a DequantizeLinear of INT32
    assert not _by_code(found, "qdq-dtype")
    assert not [f for f in found if f.severity == "error"]


# --- op coverage ---------------------------------------------------------------------------------


def test_unsupported_op_is_an_error_naming_node_and_op(tmp_path: Path) -> None:
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="act"),
        helper.make_node("Flatten", ["r"], ["f"], name="flat"),
        helper.make_node("Unique", ["f"], ["y"], name="dedupe"),
    ]
    found = lint_onnx(_graph_model(tmp_path / "m.onnx", nodes))
    [finding] = _by_code(found, "unsupported-op")
    assert finding.severity == "error" and finding.node == "dedupe" and "'Unique'" in finding.message
    assert trt_ops.TENSORRT_VERSION in finding.message


def test_op_missing_from_the_list_is_an_error(tmp_path: Path) -> None:
    nodes = [helper.make_node("NoSuchOp", ["x"], ["y"], name="mystery")]
    [finding] = _by_code(lint_onnx(_graph_model(tmp_path / "m.onnx", nodes)), "unknown-op")
    assert finding.severity == "error" and finding.node == "mystery"


@pytest.mark.parametrize(("domain", "hint"), [("com.microsoft", "ONNX Runtime"), ("trt", "plugin"), ("acme", "plugin")])
def test_custom_domain_needs_a_plugin(tmp_path: Path, domain: str, hint: str) -> None:
    nodes = [helper.make_node("FusedThing", ["x"], ["y"], name="fused", domain=domain)]
    path = _graph_model(tmp_path / "m.onnx", nodes, extra_opsets=[(domain, 1)])
    [finding] = _by_code(lint_onnx(path), "custom-op")
    assert finding.severity == "error" and finding.node == "fused" and domain in finding.message
    assert hint in finding.hint


def test_local_function_is_not_custom_but_its_body_is_checked(tmp_path: Path) -> None:
    body = [helper.make_node("Unique", ["a"], ["b"], name="inner")]
    function = helper.make_function("local", "Block", ["a"], ["b"], body, [helper.make_opsetid("", 20)])
    nodes = [helper.make_node("Block", ["x"], ["y"], name="call", domain="local")]
    path = _graph_model(tmp_path / "m.onnx", nodes, functions=[function], extra_opsets=[("local", 1)])
    found = lint_onnx(path)
    assert not _by_code(found, "custom-op")
    assert [f.node for f in _by_code(found, "unsupported-op")] == ["inner"]


def test_reduce_axes_from_a_tensor_is_an_error(tmp_path: Path) -> None:
    shape_node = helper.make_node("Shape", ["x"], ["s"], name="shape")
    const_axes = numpy_helper.from_array(np.array([2, 3], dtype=np.int64), "axes")
    dynamic = [shape_node, helper.make_node("ReduceMean", ["x", "s"], ["y"], name="mean")]
    found = lint_onnx(_graph_model(tmp_path / "d.onnx", dynamic, opset=18))
    assert [(f.node, f.severity) for f in _by_code(found, "reduce-axes")] == [("mean", "error")]
    constant = [helper.make_node("ReduceMean", ["x", "axes"], ["y"], name="mean")]
    path = _graph_model(tmp_path / "c.onnx", constant, inits=[const_axes], opset=18)
    assert not _by_code(lint_onnx(path), "reduce-axes")


# --- opset ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("opset", [trt_ops.MIN_OPSET - 1, trt_ops.MAX_OPSET + 1])
def test_opset_outside_the_parser_range_is_an_error(tmp_path: Path, opset: int) -> None:
    found = lint_onnx(_relu(tmp_path / "m.onnx", opset=opset))
    assert _codes(found)["opset-range"] == "error"
    assert str(opset) in _by_code(found, "opset-range")[0].message


def test_opset_inside_the_range_and_missing_opset(tmp_path: Path) -> None:
    assert not _by_code(lint_onnx(_relu(tmp_path / "a.onnx", opset=trt_ops.MAX_OPSET)), "opset-range")
    assert _codes(lint_onnx(_relu(tmp_path / "b.onnx", opset=None)))["opset-missing"] == "error"


# --- INT64 initializers --------------------------------------------------------------------------


def _int64_model(path: Path, values: np.ndarray) -> Path:
    table = numpy_helper.from_array(values.astype(np.int64), "table")
    nodes = [
        helper.make_node("Cast", ["table"], ["t"], to=TensorProto.FLOAT, name="cast"),
        helper.make_node("ReduceSum", ["t"], ["s"], keepdims=0, name="sum"),
        helper.make_node("Add", ["x", "s"], ["y"], name="add"),
    ]
    return _graph_model(path, nodes, inits=[table])


def test_int64_weights_warn_and_wide_values_are_an_error(tmp_path: Path) -> None:
    narrow = _by_code(lint_onnx(_int64_model(tmp_path / "a.onnx", np.arange(128))), "int64-weights")
    assert [(f.node, f.severity) for f in narrow] == [("table", "warning")]
    wide = _by_code(lint_onnx(_int64_model(tmp_path / "b.onnx", np.arange(128) * 2**40)), "int64-weights")
    assert [(f.node, f.severity) for f in wide] == [("table", "error")] and "INT32 range" in wide[0].message


def test_int64_shape_constants_are_not_weights(tmp_path: Path) -> None:
    # Slice's "to the end" INT64_MAX is a shape constant TensorRT clamps, not a weight
    found = lint_onnx(_int64_model(tmp_path / "a.onnx", np.array([2**62, 1])))
    assert not _by_code(found, "int64-weights")


def test_int64_values_in_external_data_are_not_read(tmp_path: Path) -> None:
    model = onnx.load(_int64_model(tmp_path / "m.onnx", np.arange(128) * 2**40))
    onnx.save_model(model, tmp_path / "m.onnx", save_as_external_data=True, location="m.data", size_threshold=0)
    (tmp_path / "m.data").write_bytes(b"\xff" * 8)  # not the weights: the lint must not read them
    [finding] = _by_code(lint_onnx(tmp_path / "m.onnx"), "int64-weights")
    assert finding.severity == "warning" and "external data" in finding.message


# --- dynamic input dimensions --------------------------------------------------------------------


def test_dynamic_batch_is_info_and_dynamic_spatial_is_a_warning(tmp_path: Path) -> None:
    found = lint_onnx(_relu(tmp_path / "m.onnx", shape=("batch", 3, "height", "width")))
    assert _codes(found)["dynamic-batch"] == "info"
    [spatial] = _by_code(found, "dynamic-dim")
    assert spatial.severity == "warning" and "'height'" in spatial.message and "'width'" in spatial.message
    assert "min/opt/max" in spatial.message


def test_dims_without_size_or_name_warn(tmp_path: Path) -> None:
    found = lint_onnx(_relu(tmp_path / "m.onnx", shape=(1, 3, None, 8)))
    [unknown] = _by_code(found, "unknown-dim")
    assert unknown.severity == "warning" and "[2]" in unknown.message
    assert not _by_code(found, "dynamic-batch") and not _by_code(found, "dynamic-dim")


def test_static_input_has_no_dimension_finding(tmp_path: Path) -> None:
    assert lint_onnx(_relu(tmp_path / "m.onnx", shape=(1, 3, 8, 8))) == []


# --- Q/DQ placement ------------------------------------------------------------------------------


def _scalar(name: str, value: float | int, dtype: type) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(value, dtype=dtype), name)


def _qdq_model(
    path: Path, *, zero: onnx.TensorProto, after_q: str = "DequantizeLinear", consumer: str = "Relu"
) -> Path:
    """x -> Q -> (DQ | after_q) -> consumer -> y."""
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"], name="quant")]
    if after_q == "DequantizeLinear":
        nodes.append(helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["dq"], name="dequant"))
        nodes.append(helper.make_node(consumer, ["dq"], ["y"], name="user"))
    else:
        nodes.append(helper.make_node(after_q, ["q"], ["y"], name="user"))
    return _graph_model(path, nodes, inits=[_scalar("s", 0.05, np.float32), zero])


def test_uint8_qdq_is_an_error(tmp_path: Path) -> None:
    found = lint_onnx(_qdq_model(tmp_path / "m.onnx", zero=_scalar("zp", 128, np.uint8)))
    assert {(f.node, f.severity) for f in _by_code(found, "qdq-uint8")} == {("quant", "error"), ("dequant", "error")}


def test_non_zero_int8_zero_point_is_an_error(tmp_path: Path) -> None:
    found = lint_onnx(_qdq_model(tmp_path / "m.onnx", zero=_scalar("zp", 3, np.int8)))
    assert {f.node for f in _by_code(found, "qdq-zero-point")} == {"quant", "dequant"}
    clean = lint_onnx(_qdq_model(tmp_path / "c.onnx", zero=_scalar("zp", 0, np.int8)))
    assert not _by_code(clean, "qdq-zero-point") and not _by_code(clean, "qdq-uint8")


def test_quantize_without_dequantize_is_an_error(tmp_path: Path) -> None:
    found = lint_onnx(_qdq_model(tmp_path / "m.onnx", zero=_scalar("zp", 0, np.int8), after_q="Cast"))
    [finding] = _by_code(found, "q-without-dq")
    assert finding.severity == "error" and finding.node == "quant" and "Cast" in finding.message


def test_quantize_as_graph_output_is_an_error(tmp_path: Path) -> None:
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["y"], name="quant")]
    path = _graph_model(tmp_path / "m.onnx", nodes, inits=[_scalar("s", 0.05, np.float32), _scalar("zp", 0, np.int8)])
    [finding] = _by_code(lint_onnx(path), "q-without-dq")
    assert "graph output" in finding.message


def test_dequantize_into_an_op_tensorrt_does_not_fuse_warns(tmp_path: Path) -> None:
    found = lint_onnx(_qdq_model(tmp_path / "m.onnx", zero=_scalar("zp", 0, np.int8), consumer="Softmax"))
    [finding] = _by_code(found, "qdq-unfused")
    assert finding.severity == "warning" and finding.node == "dequant" and "Softmax 'user'" in finding.message
    fused = lint_onnx(_qdq_model(tmp_path / "f.onnx", zero=_scalar("zp", 0, np.int8), consumer="Relu"))
    assert not _by_code(fused, "qdq-unfused")


def _conv_weight_model(path: Path, axis: int, bias_dtype: type = np.float32) -> Path:
    weight = numpy_helper.from_array(np.ones((4, 3, 3, 3), dtype=np.int8), "w_q")
    per_channel = 4 if axis == 0 else 3
    scales = numpy_helper.from_array(np.full(per_channel, 0.1, dtype=np.float32), "w_s")
    zeros = numpy_helper.from_array(np.zeros(per_channel, dtype=np.int8), "w_zp")
    inits = [weight, scales, zeros]
    nodes = [helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_zp"], ["w"], axis=axis, name="w_dq")]
    conv_inputs = ["x", "w"]
    if bias_dtype is np.int32:
        inits += [
            numpy_helper.from_array(np.zeros(4, dtype=np.int32), "b_q"),
            numpy_helper.from_array(np.full(4, 0.01, dtype=np.float32), "b_s"),
        ]
        nodes.append(helper.make_node("DequantizeLinear", ["b_q", "b_s"], ["b"], axis=0, name="b_dq"))
        conv_inputs.append("b")
    nodes.append(helper.make_node("Conv", conv_inputs, ["y"], name="conv"))
    return _graph_model(path, nodes, inits=inits)


def test_conv_weights_quantized_off_the_output_channel_axis_warn(tmp_path: Path) -> None:
    [finding] = _by_code(lint_onnx(_conv_weight_model(tmp_path / "a.onnx", axis=1)), "qdq-weight-axis")
    assert finding.severity == "warning" and finding.node == "w_dq" and "axis 1" in finding.message
    assert not _by_code(lint_onnx(_conv_weight_model(tmp_path / "b.onnx", axis=0)), "qdq-weight-axis")


def test_int32_bias_dequantize_is_an_error(tmp_path: Path) -> None:
    found = lint_onnx(_conv_weight_model(tmp_path / "m.onnx", axis=0, bias_dtype=np.int32))
    assert [(f.node, f.severity) for f in _by_code(found, "qdq-dtype")] == [("b_dq", "error")]
    assert "INT32" in _by_code(found, "qdq-dtype")[0].message


# --- size and external data ----------------------------------------------------------------------


def _external_model(folder: Path, location: str) -> Path:
    """A Gemm model whose weight lives in external data at ``location`` (nothing is written there)."""
    weight = numpy_helper.from_array(np.ones((4, 4), dtype=np.float32), "w")
    weight.ClearField("float_data")
    weight.ClearField("raw_data")
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "64")):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    nodes = [helper.make_node("Gemm", ["x", "w"], ["y"], name="fc")]
    return _graph_model(folder / "m.onnx", nodes, inits=[weight], shape=("batch", 4))


def test_external_data_beside_the_model_is_info(tmp_path: Path) -> None:
    (tmp_path / "m.data").write_bytes(b"\0" * 64)
    found = lint_onnx(_external_model(tmp_path, "m.data"))
    assert _codes(found)["external-data"] == "info" and not _blocking(found)


def test_model_and_data_over_2gib_warn_without_reading_the_data(tmp_path: Path) -> None:
    with open(tmp_path / "big.data", "wb") as handle:
        handle.truncate(3 * 1024**3)  # sparse: no disk used, and reading it would take seconds
    found = lint_onnx(_external_model(tmp_path, "big.data"))
    [finding] = _by_code(found, "model-size")
    assert finding.severity == "warning" and "file path" in finding.message


@pytest.mark.parametrize(
    ("location", "reason"),
    [("../outside.data", ".."), ("/etc/passwd", "absolute"), ("C:\\w.data", "absolute"), ("", "empty")],
)
def test_external_data_location_escaping_the_folder_is_an_error(tmp_path: Path, location: str, reason: str) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "outside.data").write_bytes(b"\0" * 64)
    [finding] = _by_code(lint_onnx(_external_model(tmp_path / "model", location)), "external-data-location")
    assert finding.severity == "error" and reason in finding.message


def test_external_data_symlink_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "secret.data").write_bytes(b"\0" * 64)
    os.symlink(tmp_path / "secret.data", tmp_path / "model" / "w.data")
    [finding] = _by_code(lint_onnx(_external_model(tmp_path / "model", "w.data")), "external-data-location")
    assert finding.severity == "error" and "symlink" in finding.message


def test_missing_external_data_is_an_error(tmp_path: Path) -> None:
    [finding] = _by_code(lint_onnx(_external_model(tmp_path, "gone.data")), "external-data-missing")
    assert finding.severity == "error" and finding.node == "gone.data"


# --- refused inputs ------------------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"not an onnx model at all \xff\xfe", b""])
def test_a_file_that_is_not_onnx_is_an_artifact_error(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "m.onnx").write_bytes(content)
    with pytest.raises(ArtifactError) as info:
        lint_onnx(tmp_path / "m.onnx")
    assert info.value.exit_code == 2


def test_a_missing_file_is_an_artifact_error(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="does not exist"):
        lint_onnx(tmp_path / "absent.onnx")


def test_unknown_target_names_the_parameter(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        lint_onnx(_relu(tmp_path / "m.onnx"), target="openvino")
    assert info.value.param == "target"


# --- the command ---------------------------------------------------------------------------------


def test_cli_clean_export_exits_0(exports: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", str(exports["fp32"])]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert any(line.startswith("info dynamic-batch [images]") for line in lines)
    assert "0 error(s)" in lines[-1] and trt_ops.TENSORRT_VERSION in lines[-1]


def test_cli_unsupported_op_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _graph_model(tmp_path / "m.onnx", [helper.make_node("Unique", ["x"], ["y"], name="dedupe")])
    assert main(["lint", str(path), "--target", "tensorrt"]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("error unsupported-op [dedupe]") and "will not build" in lines[-1]


def test_cli_non_onnx_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.onnx").write_text("hello\n")
    assert main(["lint", str(tmp_path / "notes.onnx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rehead: error: ")


def test_cli_unknown_target_exits_2_naming_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", str(_relu(tmp_path / "m.onnx")), "--target", "openvino"]) == 2
    assert "flag: --target" in capsys.readouterr().err


def test_cli_json_is_the_findings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _qdq_model(tmp_path / "m.onnx", zero=_scalar("zp", 128, np.uint8))
    assert main(["lint", str(path), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data == [
        {"code": f.code, "severity": f.severity, "message": f.message, "node": f.node, "hint": f.hint, "param": f.param}
        for f in lint_onnx(path)
    ]
    assert {"qdq-uint8", "dynamic-batch"} <= {entry["code"] for entry in data}


# --- one table per TensorRT version (--trt-version, or the installed one) --------------------------------


def test_tables_per_version_follow_the_release_notes() -> None:
    base = trt_ops.table_for("10.15")
    assert base.version == "10.15" and trt_ops.table_for("10.8").version == "10.15"
    assert "DFT" in base.unsupported and "Swish" not in base.supported and base.max_opset == 24
    v110, v112, v115 = (trt_ops.table_for(v) for v in ("11.0", "11.2.1.2", "11.5"))
    assert "Swish" in v110.supported and "DFT" in v110.unsupported  # Swish in 11.0, DFT from 11.2
    assert "DFT" in v112.supported and "DFT" not in v112.unsupported and "5D" in v112.restrictions["GridSample"]
    assert (v110.max_opset, v112.max_opset, v115.max_opset) == (24, 24, 25)  # opset 25 from 11.5
    assert "omitted" not in v112.restrictions["Squeeze"] and "when given" in v115.restrictions["Squeeze"]
    assert trt_ops.table_for("11.9").version == "11.5"  # past the last table: the last, and it says which
    for table in (v110, v112, v115):
        assert table.supported.isdisjoint(table.unsupported) and set(table.restrictions) <= table.supported
    for bad in ("12.0", "9.3", "eleven", "11"):
        with pytest.raises(InvalidArgumentError) as info:
            trt_ops.table_for(bad)
        assert info.value.param == "trt_version"


def test_lint_reads_the_table_of_the_version_asked(tmp_path: Path) -> None:
    dft = _graph_model(tmp_path / "dft.onnx", [helper.make_node("DFT", ["x"], ["y"], name="spectrum")])
    on_10 = _by_code(lint_onnx(dft, trt_version="10.15"), "unsupported-op")
    assert len(on_10) == 1 and "TensorRT 10.15's" in on_10[0].message
    assert not _by_code(lint_onnx(dft, trt_version="11.2"), "unsupported-op")
    assert _by_code(lint_onnx(dft, trt_version="11.1"), "unsupported-op")
    opset25 = _relu(tmp_path / "o25.onnx", opset=25)
    assert "TensorRT 11.4's" in _by_code(lint_onnx(opset25, trt_version="11.4"), "opset-range")[0].message
    assert not _by_code(lint_onnx(opset25, trt_version="11.5"), "opset-range")


def test_cli_trt_version(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dft = _graph_model(tmp_path / "dft.onnx", [helper.make_node("DFT", ["x"], ["y"], name="spectrum")])
    assert main(["lint", str(dft), "--trt-version", "11.2"]) == 0
    assert "against TensorRT 11.2's ONNX parser list" in capsys.readouterr().out
    assert main(["lint", str(dft), "--trt-version", "10.15"]) == 1
    assert main(["lint", str(dft), "--trt-version", "13.0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no ONNX parser table for TensorRT 13.0" in err[0] and "--trt-version" in err[0]
