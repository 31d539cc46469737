"""``rehead lint --target tensorrt``: an ONNX file against TensorRT's ONNX parser and builder, on CPU.

``lint_onnx(path, target="tensorrt")`` lints an ONNX file on disk for a runtime that is not
here: what TensorRT's ONNX parser and builder will refuse or need (op coverage against
``converters.tensorrt.ops``, opset range, dynamic input dimensions here; INT64 weights, size and
external data in ``lint_weights``; Q/DQ placement in ``lint_qdq``), read with ``onnx`` only,
external data never loaded. Findings are ``converters.onnx.preflight.Finding`` records.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from converters.onnx.preflight import DYNAMO_MIN_OPSET, Finding
from converters.tensorrt import ops as trt_ops
from converters.tensorrt._lint_common import DEFAULT_DOMAINS, constants
from converters.tensorrt.lint_qdq import check_qdq
from converters.tensorrt.lint_weights import check_int64, check_size
from toolkit.errors import ArtifactError, InvalidArgumentError

if TYPE_CHECKING:
    import onnx

LINT_TARGETS = ("tensorrt",)
_SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}
# Custom-op domains that say which runtime the op was meant for: the hint differs, the verdict not.
_CUSTOM_HINTS = {
    "com.microsoft": "an ONNX Runtime contrib op: TensorRT has no importer for it; export without "
    "ONNX Runtime's graph optimisations, or register a TensorRT plugin of that name",
    "trt": "a TensorRT plugin op: the library that registers the plugin must be loaded before parsing",
    "trt.plugins": "a TensorRT plugin op: the library that registers the plugin must be loaded before parsing",
}
# Restrictions this lint checks itself (Q/DQ: lint_qdq; Reduce* axes: _trt_ops), so not repeated as info.
_CHECKED_RESTRICTIONS = frozenset({"QuantizeLinear", "DequantizeLinear"})


def lint_onnx(
    path: str | os.PathLike[str], *, target: str = "tensorrt", trt_version: str | None = None
) -> list[Finding]:
    """Lint the ONNX file at ``path`` for ``target``: what its parser and builder will refuse
    (``error``), need told or handle poorly (``warning``) or need in the build configuration
    (``info``). Errors first. Nothing is run and external data is not read.

    Raises ``InvalidArgumentError`` for an unknown ``target`` and ``ArtifactError`` for a file
    that is missing or not an ONNX model.

    Args:
        path: the ONNX file.
        target: the runtime to lint for (only ``tensorrt`` today, the default).
        trt_version: the TensorRT whose ONNX parser support table to use
            (``converters.tensorrt.ops.table_for``; None, the default: the installed TensorRT's,
            else 10.15's).
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
    found += check_int64(model)
    found += _trt_inputs(model)
    found += check_qdq(model)
    found += check_size(model, model_path)
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
        if entry.domain in DEFAULT_DOMAINS:
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


def _trt_ops(model: onnx.ModelProto, table: trt_ops.OpTable) -> list[Finding]:
    from converters.onnx import graph

    local = graph.local_functions(model)
    # Constant outputs anywhere (subgraphs and functions included) count as constant axes too.
    consts = set(constants(model.graph)) | {
        out for node in graph.nodes(model) if node.op_type == "Constant" for out in node.output
    }
    seen: dict[tuple[str, str], list[str]] = {}
    dynamic_axes: list[onnx.NodeProto] = []
    for node in graph.nodes(model):  # the parser imports model-local functions node by node
        if (node.domain, node.op_type) in local:
            continue
        domain = "" if node.domain in DEFAULT_DOMAINS else node.domain
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
