"""Pre-export lint: the known ways an export goes wrong, caught before any file is written.

``preflight(module, config, opset)`` looks at the module (train mode, INT64 weights, size)
before export; ``check_graph(model, opset)`` checks the in-memory exported model after it:
every node's op against the opset, and INT64 initializers. Findings with severity ``error``
stop the export.

``lint_onnx(path, target="tensorrt")`` lints an ONNX file on disk for a runtime that is not
here: what TensorRT's ONNX parser and builder will refuse or need (op coverage against
``converters.tensorrt.ops``, opset range, INT64 weights, dynamic input dimensions, Q/DQ placement,
size and external data), read with ``onnx`` only, external data never loaded.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from converters.tensorrt import ops as trt_ops
from converters.onnx.external import EXTERNAL_THRESHOLD, TWO_GIB, _all_tensors
from toolkit.errors import ArtifactError, InvalidArgumentError
from toolkit.records import ModelConfig

if TYPE_CHECKING:
    import onnx
    import onnx_ir

MIN_OPSET = 7
DYNAMO_MIN_OPSET = 18
_INT32_MAX = 2**31 - 1
# INT64 initializers at most this many elements are shape constants, not weights.
_SHAPE_CONSTANT_MAX = 64


@dataclasses.dataclass(frozen=True)
class Finding:
    """One lint result. ``severity``: ``info`` (handled by rehead, e.g. train mode fixed by
    exporting in eval), ``warning`` (exported, but a backend may suffer) or ``error`` (stops the
    export). ``node`` names the module, tensor or graph node concerned; ``param`` the keyword
    argument at fault (``opset``), if any."""

    code: str
    severity: str
    message: str
    node: str = ""
    hint: str = ""
    param: str = ""

    def one_line(self) -> str:
        where = f" [{self.node}]" if self.node else ""
        hint = f"; hint: {self.hint}" if self.hint else ""
        return f"{self.severity} {self.code}{where}: {self.message}{hint}"


def max_opset() -> int:
    """The newest ONNX opset the installed ``onnx`` package knows."""
    import onnx

    return int(onnx.defs.onnx_opset_version())


def _check_opset(opset: Any) -> list[Finding]:
    if opset is None:
        return []
    top = max_opset()
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= top:
        return [
            Finding(
                "opset-range",
                "error",
                f"opset {opset!r} is not an integer within {MIN_OPSET}-{top}",
                hint=f"choose an opset between {DYNAMO_MIN_OPSET} and {top}, or leave opset None for the exporter's",
                param="opset",
            )
        ]
    if opset < DYNAMO_MIN_OPSET:
        return [
            Finding(
                "opset-legacy",
                "info",
                f"opset {opset} is below {DYNAMO_MIN_OPSET}, the oldest the dynamo exporter writes; "
                "the TorchScript exporter is used",
                hint=f"use opset={DYNAMO_MIN_OPSET} or newer for the maintained exporter",
                param="opset",
            )
        ]
    return []


def _check_module(module: nn.Module) -> list[Finding]:
    found: list[Finding] = []
    training = [name or "<root>" for name, sub in module.named_modules() if sub.training]
    if training:
        found.append(
            Finding(
                "train-mode",
                "info",
                f"{len(training)} submodules are in train mode; exported in eval mode, modes restored after",
                node=training[0],
                hint="call model.eval() before exporting",
            )
        )
    total = 0
    for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
        total += tensor.numel() * tensor.element_size()
        if name.endswith("num_batches_tracked") or tensor.dtype != torch.int64:
            continue  # BatchNorm's step counter is not used in eval and never reaches the graph
        wide = tensor.numel() > 0 and int(tensor.abs().max()) > _INT32_MAX
        found.append(
            Finding(
                "int64-weights",
                "error" if wide else "warning",
                f"INT64 tensor of shape {tuple(tensor.shape)}"
                + (" holds values beyond INT32 range" if wide else "; TensorRT casts INT64 weights to INT32"),
                node=name,
                hint="store it as int32 (or float) in the model",
            )
        )
    if total > EXTERNAL_THRESHOLD:
        found.append(
            Finding(
                "external-data",
                "info",
                f"weights take {total / 1024**3:.2f} GiB, over protobuf's 2 GiB: "
                "saved as external data beside the .onnx",
            )
        )
    return found


def check_graph(graph: onnx_ir.Model, opset: int | None) -> list[Finding]:
    """Check an exported model: its opset, each node's op at that opset, INT64 initializers."""
    import onnx
    import onnx_ir as ir

    found: list[Finding] = []
    produced = graph.opset_imports.get("", graph.opset_imports.get("ai.onnx"))
    if produced is None:
        return [Finding("opset-missing", "error", "the graph imports no default ONNX opset")]
    if opset is not None and produced != opset:
        found.append(
            Finding(
                "opset-mismatch",
                "error",
                f"the graph has opset {produced}, asked for {opset}",
                hint="choose another opset",
                param="opset",
            )
        )
    local = {(key[0], key[1]) for key in graph.functions}
    seen: set[tuple[str, str]] = set()
    for node in ir.traversal.RecursiveGraphIterator(graph.graph):
        domain = "" if node.domain in ("", "ai.onnx") else node.domain
        key = (domain, node.op_type)
        if key in seen or key in local:
            continue
        seen.add(key)
        name = node.name or node.op_type
        if domain == "":
            try:
                onnx.defs.get_schema(node.op_type, produced, "")
            except onnx.defs.SchemaError:
                found.append(
                    Finding(
                        "unsupported-op",
                        "error",
                        f"op '{node.op_type}' is not in ONNX opset {produced}",
                        node=name,
                        hint="choose a newer opset or change the layer",
                        param="opset",
                    )
                )
        elif domain == "com.microsoft":
            found.append(
                Finding(
                    "contrib-op",
                    "warning",
                    f"op '{node.op_type}' is an ONNX Runtime contrib op (com.microsoft)",
                    node=name,
                    hint="TensorRT and other runtimes may not run it",
                )
            )
        else:
            found.append(
                Finding(
                    "unsupported-op",
                    "error",
                    f"op '{domain}::{node.op_type}' is not standard ONNX",
                    node=name,
                    hint="replace the custom op or register an ONNX translation",
                )
            )
    for init_name, value in graph.graph.initializers.items():
        shape = value.shape
        count = 1
        for dim in shape.dims if shape is not None else ():
            count *= dim if isinstance(dim, int) else 1
        if value.dtype == ir.DataType.INT64 and count > _SHAPE_CONSTANT_MAX:
            found.append(
                Finding(
                    "int64-weights",
                    "warning",
                    f"INT64 initializer of {count} elements; TensorRT casts INT64 weights to INT32",
                    node=init_name,
                )
            )
    return found


def preflight(module: nn.Module, config: ModelConfig | None, opset: int | None) -> list[Finding]:
    """Lint ``module`` for an export at ``opset`` (the exported graph: ``check_graph``).

    ``opset`` None means the exporter's default. Returns every finding; the caller raises
    ``ExportError`` on any ``error``. ``config`` (the model directory's record, or None for a
    bare module) is checked against the module: its head must exist there.
    """
    found = _check_opset(opset)
    found += _check_module(module)
    if config is not None and config.head.module not in dict(module.named_modules()):
        found.append(
            Finding(
                "record-mismatch",
                "error",
                f"the record's head '{config.head.module}' is not a submodule of the model",
                node=config.head.module,
                hint="export the module together with its own config.json",
            )
        )
    return found


# --- lint_onnx: an ONNX file against a runtime that is not installed here --------------------

LINT_TARGETS = ("tensorrt",)
_SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}
_DEFAULT_DOMAINS = ("", "ai.onnx")
# Custom-op domains that say which runtime the op was meant for: the hint differs, the verdict not.
_CUSTOM_HINTS = {
    "com.microsoft": "an ONNX Runtime contrib op: TensorRT has no importer for it; export without "
    "ONNX Runtime's graph optimisations, or register a TensorRT plugin of that name",
    "trt": "a TensorRT plugin op: the library that registers the plugin must be loaded before parsing",
    "trt.plugins": "a TensorRT plugin op: the library that registers the plugin must be loaded before parsing",
}
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
# Restrictions this lint checks itself (Q/DQ: _trt_qdq; Reduce* axes: _trt_ops), so not repeated as info.
_CHECKED_RESTRICTIONS = frozenset({"QuantizeLinear", "DequantizeLinear"})
# DequantizeLinear input types the parser takes (the table's "Supported Types" for the op);
# anything else, INT32 biases included, fails with "only activation types allowed".
_TRT_DQ_TYPES = frozenset({"INT8", "INT4", "FLOAT8E4M3FN", "FLOAT4E2M1"})


def lint_onnx(
    path: str | os.PathLike[str], *, target: str = "tensorrt", trt_version: str | None = None
) -> list[Finding]:
    """Lint the ONNX file at ``path`` for ``target`` (only ``tensorrt`` today): what its parser
    and builder will refuse (``error``), need told or handle poorly (``warning``) or need in the
    build configuration (``info``). Errors first. Nothing is run and external data is not read.
    ``trt_version`` picks the parser's support table (``converters.tensorrt.ops.table_for``; default:
    the installed TensorRT's, else 10.15's).

    Raises ``InvalidArgumentError`` for an unknown ``target`` and ``ArtifactError`` for a file
    that is missing or not an ONNX model.
    """
    if target not in LINT_TARGETS:
        raise InvalidArgumentError(
            f"unknown lint target {target!r}", hint=f"target is one of: {', '.join(LINT_TARGETS)}", param="target"
        )
    table = trt_ops.table_for(trt_version)
    model_path = Path(path)
    model = _load_for_lint(model_path)
    found = _trt_opset(model, table)
    found += _trt_ops(model, table)
    found += _trt_int64(model)
    found += _trt_inputs(model)
    found += _trt_qdq(model)
    found += _trt_size(model, model_path)
    return sorted(found, key=lambda f: _SEVERITY_ORDER.get(f.severity, 3))


def _load_for_lint(model_path: Path) -> onnx.ModelProto:
    import onnx

    if not model_path.is_file():
        raise ArtifactError(f"ONNX model '{model_path}' does not exist or is not a file", hint="check the path")
    try:
        model = onnx.load(os.fspath(model_path), load_external_data=False)
    except Exception as exc:  # DecodeError, OSError, ValueError...: all mean "not a readable model"
        raise ArtifactError(
            f"cannot read ONNX model '{model_path}': {type(exc).__name__}: {exc}",
            hint="pass an .onnx file written by an ONNX exporter",
        ) from exc
    # protobuf parses an empty file, and some other bytes, as an empty ModelProto
    if model.ir_version == 0 or not model.HasField("graph"):
        raise ArtifactError(
            f"'{model_path}' is not an ONNX model (no IR version or no graph)",
            hint="pass an .onnx file written by an ONNX exporter",
        )
    return model


def _default_opset(model: onnx.ModelProto) -> int | None:
    for entry in model.opset_import:
        if entry.domain in _DEFAULT_DOMAINS:
            return int(entry.version)
    return None


def _trt_opset(model: onnx.ModelProto, table: trt_ops.OpTable) -> list[Finding]:
    opset = _default_opset(model)
    low, high = table.min_opset, table.max_opset
    if opset is None:
        return [Finding("opset-missing", "error", "the model imports no default ONNX opset")]
    if not low <= opset <= high:
        return [
            Finding(
                "opset-range",
                "error",
                f"opset {opset} is outside {low}-{high}, the range TensorRT "
                f"{table.version}'s ONNX parser reads",
                hint=f"re-export with an opset between {max(low, DYNAMO_MIN_OPSET)} and {high}",
                param="opset",
            )
        ]
    return []


def _walk(nodes: Iterable[onnx.NodeProto]) -> Iterator[onnx.NodeProto]:
    """``nodes`` and the nodes of their subgraphs (If, Loop, Scan bodies), recursively."""
    for node in nodes:
        yield node
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _walk(attr.g.node)
            for sub in attr.graphs:
                yield from _walk(sub.node)


def _all_nodes(model: onnx.ModelProto) -> Iterator[onnx.NodeProto]:
    yield from _walk(model.graph.node)
    for function in model.functions:  # the parser imports model-local functions node by node
        yield from _walk(function.node)


def _trt_ops(model: onnx.ModelProto, table: trt_ops.OpTable) -> list[Finding]:
    local = {(f.domain, f.name) for f in model.functions}
    # Constant outputs anywhere (subgraphs and functions included) count as constant axes too.
    consts = set(_constants(model.graph)) | {
        out for node in _all_nodes(model) if node.op_type == "Constant" for out in node.output
    }
    seen: dict[tuple[str, str], list[str]] = {}
    dynamic_axes: list[onnx.NodeProto] = []
    for node in _all_nodes(model):
        if (node.domain, node.op_type) in local:
            continue
        domain = "" if node.domain in _DEFAULT_DOMAINS else node.domain
        seen.setdefault((domain, node.op_type), []).append(node.name or node.op_type)
        axes = node.input[1] if not domain and node.op_type.startswith("Reduce") and len(node.input) > 1 else ""
        if axes and axes not in consts:
            dynamic_axes.append(node)
    version = table.version
    found: list[Finding] = []
    for (domain, op), names in seen.items():
        where = names[0]
        count = f" ({len(names)} nodes)" if len(names) > 1 else ""
        if domain:
            found.append(
                Finding(
                    "custom-op",
                    "error",
                    f"op '{domain}::{op}'{count} is not standard ONNX: TensorRT's parser needs a plugin for it",
                    node=where,
                    hint=_CUSTOM_HINTS.get(domain, "register a TensorRT plugin of that name, or change the layer"),
                )
            )
        elif op in table.unsupported:
            note = table.unsupported_notes.get(op)
            found.append(
                Finding(
                    "unsupported-op",
                    "error",
                    f"op '{op}'{count} is unsupported by TensorRT {version}'s ONNX parser",
                    node=where,
                    hint=note or "change the layer, or register a TensorRT plugin of that name",
                )
            )
        elif op not in table.supported:
            found.append(
                Finding(
                    "unknown-op",
                    "error",
                    f"op '{op}'{count} is not in TensorRT {version}'s ONNX parser list",
                    node=where,
                    hint="change the layer, or register a TensorRT plugin of that name",
                )
            )
        elif op in table.restrictions and op not in _CHECKED_RESTRICTIONS and not op.startswith("Reduce"):
            found.append(
                Finding(
                    "op-restriction",
                    "info",
                    f"op '{op}'{count} is supported with a restriction: {table.restrictions[op]}",
                    node=where,
                )
            )
    for node in dynamic_axes:
        found.append(
            Finding(
                "reduce-axes",
                "error",
                f"{node.op_type} takes its axes from tensor '{node.input[1]}', not an initializer: "
                "TensorRT's parser needs them constant",
                node=node.name or node.op_type,
                hint="make the axes a constant (initializer) in the export",
            )
        )
    return found


def _element_count(tensor: onnx.TensorProto) -> int:
    count = 1
    for dim in tensor.dims:
        count *= int(dim)
    return count


def _is_external(tensor: onnx.TensorProto) -> bool:
    import onnx

    return bool(tensor.data_location == onnx.TensorProto.EXTERNAL)


def _trt_int64(model: onnx.ModelProto) -> list[Finding]:
    import onnx
    from onnx import numpy_helper

    found: list[Finding] = []
    for tensor in _all_tensors(model.graph):
        # Small INT64 tensors are shape constants (Reshape targets, Slice ends of INT64_MAX):
        # TensorRT handles those, and clamps the conventional "to the end" values itself.
        if tensor.data_type != onnx.TensorProto.INT64 or _element_count(tensor) <= _SHAPE_CONSTANT_MAX:
            continue
        name = tensor.name or "<constant>"
        count = _element_count(tensor)
        narrow = "TensorRT runs most layers without INT64 and narrows INT64 weights to INT32"
        if _is_external(tensor):
            found.append(
                Finding(
                    "int64-weights",
                    "warning",
                    f"INT64 initializer of {count} elements; {narrow}; its values sit in external data, "
                    "not read here, so their range is unchecked",
                    node=name,
                    hint="store it as int32 (or float) in the model",
                )
            )
            continue
        values = numpy_helper.to_array(tensor)
        wide = values.size > 0 and int(abs(values).max()) > _INT32_MAX
        found.append(
            Finding(
                "int64-weights",
                "error" if wide else "warning",
                f"INT64 initializer of {count} elements"
                + (" holds values beyond INT32 range" if wide else f"; {narrow}"),
                node=name,
                hint="store it as int32 (or float) in the model",
            )
        )
    return found


def _trt_inputs(model: onnx.ModelProto) -> list[Finding]:
    initializers = {t.name for t in model.graph.initializer}
    found: list[Finding] = []
    for value in model.graph.input:
        if value.name in initializers or not value.type.HasField("tensor_type"):
            continue  # old IR versions list initializers as inputs too
        tensor_type = value.type.tensor_type
        if not tensor_type.HasField("shape"):
            found.append(
                Finding(
                    "unknown-dim",
                    "warning",
                    f"input '{value.name}' has no shape: TensorRT's build needs its rank and min/opt/max sizes",
                    node=value.name,
                    hint="export with a known input rank",
                )
            )
            continue
        named: list[str] = []
        unknown: list[int] = []
        for axis, dim in enumerate(tensor_type.shape.dim):
            if dim.HasField("dim_value") and dim.dim_value > 0:
                continue
            if not dim.dim_param:
                unknown.append(axis)
            elif axis == 0:
                found.append(
                    Finding(
                        "dynamic-batch",
                        "info",
                        f"input '{value.name}' has a dynamic batch axis '{dim.dim_param}': the optimisation "
                        "profile needs a min/opt/max batch size",
                        node=value.name,
                    )
                )
            else:
                named.append(f"{axis} ('{dim.dim_param}')")
        if named:
            found.append(
                Finding(
                    "dynamic-dim",
                    "warning",
                    f"input '{value.name}' has dynamic non-batch axes {', '.join(named)}: the build needs explicit "
                    "min/opt/max sizes for each, and kernels are tuned for the opt size only",
                    node=value.name,
                    hint="export with a fixed input size unless the engine must take several",
                )
            )
        if unknown:
            found.append(
                Finding(
                    "unknown-dim",
                    "warning",
                    f"input '{value.name}' has axes {unknown} with neither a size nor a name: the build needs "
                    "min/opt/max sizes for them, and nothing says what they mean",
                    node=value.name,
                    hint="export with named dynamic axes or fixed sizes",
                )
            )
    return found


def _constants(graph: onnx.GraphProto) -> dict[str, onnx.TensorProto]:
    """Initializers and Constant-node outputs of ``graph``, by tensor name."""
    found = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in _DEFAULT_DOMAINS and node.output:
            for attr in node.attribute:
                if attr.name == "value" and attr.HasField("t"):
                    found[node.output[0]] = attr.t
    return found


def _attr_int(node: onnx.NodeProto, name: str, default: int) -> int:
    for attr in node.attribute:
        if attr.name == name:
            return int(attr.i)
    return default


def _trt_qdq(model: onnx.ModelProto) -> list[Finding]:
    import onnx
    from onnx import numpy_helper

    graph = model.graph
    consts = _constants(graph)
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {v.name for v in graph.output}
    symmetric_hint = "re-export with int8_target='tensorrt' (symmetric int8, zero points 0)"
    found: list[Finding] = []
    for node in graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear") or node.domain not in _DEFAULT_DOMAINS:
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
        elif zero is not None and not _is_external(zero) and bool(numpy_helper.to_array(zero).any()):
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
    per_channel = scale is not None and _element_count(scale) > 1
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


def _location_problem(location: str, folder: Path) -> str | None:
    """Why an external-data ``location`` may not be used (None: it is a file inside ``folder``)."""
    if not location:
        return "is empty"
    windows = PureWindowsPath(location)
    if PurePosixPath(location).is_absolute() or windows.is_absolute() or windows.drive:
        return "is an absolute path"
    if ".." in location.replace("\\", "/").split("/"):
        return "climbs out of the model's folder ('..')"
    target = folder / location
    if target.is_symlink():
        return "is a symlink"
    if not target.resolve().is_relative_to(folder.resolve()):
        return "resolves outside the model's folder"
    return None


def _trt_size(model: onnx.ModelProto, model_path: Path) -> list[Finding]:
    folder = model_path.parent
    locations: list[str] = []
    for tensor in _all_tensors(model.graph):
        if _is_external(tensor):
            location = {e.key: e.value for e in tensor.external_data}.get("location", "")
            if location not in locations:
                locations.append(location)
    found: list[Finding] = []
    total = model_path.stat().st_size
    for location in locations:
        problem = _location_problem(location, folder)
        if problem is not None:
            found.append(
                Finding(
                    "external-data-location",
                    "error",
                    f"external-data location '{location}' {problem}",
                    node=location,
                    hint="keep the data file beside the .onnx under a plain name (re-export with rehead)",
                )
            )
        elif not (folder / location).is_file():
            found.append(
                Finding(
                    "external-data-missing",
                    "error",
                    f"external-data file '{location}' is missing beside the model",
                    node=location,
                    hint="copy the data file beside the .onnx file (they travel together)",
                )
            )
        else:
            total += (folder / location).stat().st_size  # size only: the data is never read
    if total > TWO_GIB:
        found.append(
            Finding(
                "model-size",
                "warning",
                f"model and external data take {total / 1024**3:.2f} GiB, over protobuf's 2 GiB: parse it "
                "from its file path (not from bytes in memory) with the data files beside it",
                hint="build from the .onnx path so the parser finds the external data",
            )
        )
    elif locations:
        found.append(
            Finding(
                "external-data",
                "info",
                f"weights sit in {len(locations)} external-data file(s): parse from the file path, "
                "with the data beside the .onnx",
            )
        )
    return found
