"""Pre-export lint: the known ways an export goes wrong, caught before any file is written.

``preflight(module, config, opset)`` looks at the module (train mode, INT64 weights, size)
before export; ``check_graph(model, opset)`` checks the in-memory exported model after it:
every node's op against the opset, and INT64 initializers. Findings with severity ``error``
stop the export. (The lint of an ONNX file for TensorRT, ``rehead lint --target tensorrt``, is
``converters.tensorrt.lint``; it reports the same ``Finding`` records.)
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from converters.onnx.external import EXTERNAL_THRESHOLD
from toolkit.records import ModelConfig

if TYPE_CHECKING:
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
    """Check an exported model: its opset, each node's op at that opset, INT64 initializers.

    Args:
        graph: the exported model (``onnx_ir``).
        opset: the opset asked for, or None (the exporter's default).
    """
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
    """Lint ``module`` for an export (the exported graph: ``check_graph``).

    Returns every finding; the caller raises ``ExportError`` on any ``error``.

    Args:
        module: the model to export.
        config: the model directory's record, or None for a bare module; checked against the module
            (its head must exist there).
        opset: the opset to export at; None means the exporter's default.
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
