"""The TensorRT lint's Q/DQ checks: what TensorRT's INT8 path refuses or runs in float.

TensorRT quantizes symmetrically to int8 only (no uint8, zero points 0), needs every
QuantizeLinear paired with a DequantizeLinear, reads only activation types in a DequantizeLinear
(an INT32 bias fails to parse), quantizes Conv weights per output channel, and runs in INT8 only
the ops a DequantizeLinear fuses into (``INT8_FUSED_OPS``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from converters.onnx.preflight import Finding
from converters.tensorrt._lint_common import DEFAULT_DOMAINS, constants, element_count, is_external

if TYPE_CHECKING:
    import onnx

# Ops TensorRT runs in INT8 right after a DequantizeLinear (the TensorRT developer guide's Q/DQ
# fusion and propagation rules): weighted layers take the DQ into their INT8 kernel, Add (a
# residual) and Relu fuse into that kernel, and pooling, Concat and pure data movement commute
# with quantization, so TensorRT moves the DQ past them. A DQ feeding anything else makes that
# op run in float: the Q/DQ pair before it costs accuracy and buys no speed.
INT8_FUSED_OPS = frozenset(
    {
        "Conv",
        "ConvTranspose",
        "Gemm",
        "MatMul",
        "Add",
        "Relu",
        "MaxPool",
        "AveragePool",
        "GlobalAveragePool",
        "GlobalMaxPool",
        "Concat",
        "Reshape",
        "Flatten",
        "Transpose",
        "QuantizeLinear",
    }
)
# DequantizeLinear input types the parser takes (the table's "Supported Types" for the op);
# anything else, INT32 biases included, fails with "only activation types allowed".
_TRT_DQ_TYPES = frozenset({"INT8", "INT4", "FLOAT8E4M3FN", "FLOAT4E2M1"})


def _attr_int(node: onnx.NodeProto, name: str, default: int) -> int:
    for attr in node.attribute:
        if attr.name == name:
            return int(attr.i)
    return default


def check_qdq(model: onnx.ModelProto) -> list[Finding]:
    """Q/DQ findings of the main graph: uint8 or non-zero zero points, DQ of a non-activation type,
    a Q without its DQ, a DQ feeding an op TensorRT does not run in INT8, Conv weights quantized
    along another axis than 0.

    Args:
        model: the loaded model (external data not loaded).
    """
    import onnx
    from onnx import numpy_helper

    graph = model.graph
    consts = constants(graph)
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {v.name for v in graph.output}
    symmetric_hint = "re-export with int8_target='tensorrt' (symmetric int8, zero points 0)"
    found: list[Finding] = []
    for node in graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear") or node.domain not in DEFAULT_DOMAINS:
            continue
        name = node.name or node.op_type
        zero = consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        data = consts.get(node.input[0]) if node.op_type == "DequantizeLinear" else None
        types = {t.data_type for t in (zero, data) if t is not None}
        if onnx.TensorProto.UINT8 in types:
            found.append(
                Finding(
                    "qdq-uint8",
                    "error",
                    f"{node.op_type} uses uint8: TensorRT quantizes to symmetric int8 only",
                    node=name,
                    hint=symmetric_hint,
                )
            )
        elif data is not None and onnx.TensorProto.DataType.Name(data.data_type) not in _TRT_DQ_TYPES:
            kind = onnx.TensorProto.DataType.Name(data.data_type)
            found.append(
                Finding(
                    "qdq-dtype",
                    "error",
                    f"DequantizeLinear reads the {kind} constant '{node.input[0]}'; TensorRT's parser takes "
                    "INT8, INT4, FP8 or FP4 only ('only activation types allowed')",
                    node=name,
                    hint="keep biases in float when quantizing for TensorRT (ONNX Runtime: QuantizeBias=False)",
                )
            )
        elif zero is not None and not is_external(zero) and bool(numpy_helper.to_array(zero).any()):
            found.append(
                Finding(
                    "qdq-zero-point",
                    "error",
                    f"{node.op_type} has a non-zero zero point: TensorRT quantizes symmetrically only",
                    node=name,
                    hint=symmetric_hint,
                )
            )
        if node.op_type == "QuantizeLinear":
            found += _check_q_output(node, name, consumers, outputs)
        else:
            found += _check_dq_output(node, name, consts, consumers)
    return found


def _check_q_output(
    node: onnx.NodeProto, name: str, consumers: dict[str, list[onnx.NodeProto]], outputs: set[str]
) -> list[Finding]:
    users = consumers.get(node.output[0], [])
    others = sorted({u.op_type for u in users if u.op_type != "DequantizeLinear"})
    if users and not others and node.output[0] not in outputs:
        return []
    what = (
        "is a graph output"
        if node.output[0] in outputs
        else f"feeds {', '.join(others)}"
        if others
        else "feeds nothing"
    )
    return [
        Finding(
            "q-without-dq",
            "error",
            f"QuantizeLinear's output {what}, not a DequantizeLinear: TensorRT needs each Q paired with a DQ",
            node=name,
            hint="place a DequantizeLinear right after every QuantizeLinear",
        )
    ]


def _check_dq_output(
    node: onnx.NodeProto,
    name: str,
    consts: dict[str, onnx.TensorProto],
    consumers: dict[str, list[onnx.NodeProto]],
) -> list[Finding]:
    found: list[Finding] = []
    weight = consts.get(node.input[0])
    scale = consts.get(node.input[1]) if len(node.input) > 1 else None
    per_channel = scale is not None and element_count(scale) > 1
    for user in consumers.get(node.output[0], []):
        user_name = user.name or user.op_type
        if user.op_type not in INT8_FUSED_OPS:
            found.append(
                Finding(
                    "qdq-unfused",
                    "warning",
                    f"DequantizeLinear feeds {user.op_type} '{user_name}', which TensorRT does not run in INT8: "
                    "it runs in float and the Q/DQ pair before it costs accuracy for nothing",
                    node=name,
                    hint="quantize only the inputs of ops TensorRT fuses (Conv, Gemm, MatMul, Add, pooling)",
                )
            )
        if (
            user.op_type == "Conv"
            and weight is not None
            and per_channel
            and len(user.input) > 1
            and user.input[1] == node.output[0]
        ):
            axis = _attr_int(node, "axis", 1)
            if axis < 0:
                axis += len(weight.dims)
            if axis != 0:
                found.append(
                    Finding(
                        "qdq-weight-axis",
                        "warning",
                        f"Conv '{user_name}' weights are quantized per channel along axis {axis}; TensorRT "
                        "quantizes Conv weights per output channel (axis 0) only",
                        node=name,
                        hint="quantize Conv weights per output channel (axis 0)",
                    )
                )
    return found
