"""torch -> ONNX (an ``onnx_ir.Model`` in memory): the dynamo exporter first, TorchScript if it fails."""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch
from torch import nn

from converters.onnx.preflight import DYNAMO_MIN_OPSET
from toolkit.errors import ExportError, InternalError

if TYPE_CHECKING:
    import onnx_ir

INPUT_NAME = "images"
OUTPUT_NAME = "logits"
BATCH_DIM = "batch"
MAX_BATCH = 4096


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Keep the exporters' own progress prints and log chatter off the user's terminal."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "onnxscript", "torch._dynamo")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def reason(exc: BaseException) -> str:
    """The one useful line of an exporter error: the op that has no translation, and its node.

    Args:
        exc: the exporter's exception.
    """
    text = str(exc)
    op = re.search(r"No ONNX function found for <OpOverload\(op='([^']+)'", text)
    node = re.search(r"Error when translating node %(\S+)", text)
    if op:
        return f"no ONNX translation for {op.group(1)}" + (f" (node '{node.group(1)}')" if node else "")
    legacy = re.search(r"Exporting the operator '([^']+)' to ONNX opset version (\d+) is not supported", text)
    if legacy:
        return f"no ONNX translation for {legacy.group(1)} at opset {legacy.group(2)}"
    summary = re.search(r"## Exception summary\s+(.+)", text)
    line = summary.group(1) if summary else next((ln for ln in text.splitlines() if ln.strip()), type(exc).__name__)
    return re.sub(r"\x1b\[[0-9;]*m", "", line).strip()[:300]


def _dynamo(module: nn.Module, example: torch.Tensor, opset: int | None, dynamic_batch: bool) -> onnx_ir.Model:
    shapes = ({0: torch.export.Dim(BATCH_DIM, min=1, max=MAX_BATCH)},) if dynamic_batch else None
    with _quiet():
        program = torch.onnx.export(
            module,
            (example,),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=shapes,
            opset_version=opset,
            optimize=False,
            verbose=False,
            report=False,
        )
    if program is None:  # the dynamo path always returns a program; None means torch's API changed
        raise InternalError("torch.onnx.export(dynamo=True) returned no program")
    model: onnx_ir.Model = program.model
    return model


def _torchscript(module: nn.Module, example: torch.Tensor, opset: int | None, dynamic_batch: bool) -> onnx_ir.Model:
    import onnx
    import onnx_ir as ir

    buffer = io.BytesIO()
    axes = {INPUT_NAME: {0: BATCH_DIM}, OUTPUT_NAME: {0: BATCH_DIM}} if dynamic_batch else None
    with _quiet():
        torch.onnx.export(
            module,
            (example,),
            buffer,  # type: ignore[arg-type]  # the TorchScript exporter takes a file object
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes=axes,
            opset_version=opset,
            do_constant_folding=True,
        )
    return ir.serde.deserialize_model(onnx.load_from_string(buffer.getvalue()))


def to_onnx(
    module: nn.Module, example: torch.Tensor, *, opset: int | None, dynamic_batch: bool
) -> tuple[onnx_ir.Model, str, list[str]]:
    """Export ``module`` (already in eval mode) called on ``example``; returns model, exporter, warnings.

    The dynamo exporter (``torch.export`` based) is tried first unless ``opset`` is below what it
    writes; if it fails or cannot write ``opset``, the TorchScript exporter runs and a warning
    says why. Both failing raises ``ExportError`` naming the op each could not translate.

    Args:
        module: the model, already in eval mode.
        example: an input it is called on.
        opset: the opset to write, or None: the exporter's default.
        dynamic_batch: name axis 0 ``batch``; False fixes the batch size.
    """
    notes: list[str] = []
    dynamo_why = ""
    if opset is None or opset >= DYNAMO_MIN_OPSET:
        try:
            model = _dynamo(module, example, opset, dynamic_batch)
            produced = model.opset_imports.get("")
            if opset is None or produced == opset:
                return model, "dynamo", notes
            dynamo_why = f"it wrote opset {produced} instead of {opset}"
        except Exception as exc:  # torch.export/onnx raise many types; the reason is kept and reported
            dynamo_why = reason(exc)
    try:
        model = _torchscript(module, example, opset, dynamic_batch)
    except Exception as exc:  # same: every failure becomes one ExportError naming both reasons
        raise ExportError(
            "cannot export to ONNX: "
            + (f"dynamo exporter: {dynamo_why}; " if dynamo_why else f"opset {opset}: ")
            + f"TorchScript exporter: {reason(exc)}",
            hint="replace the unsupported layer, choose another opset, or export a .pt2 package (export_pt2)",
        ) from exc
    if dynamo_why:  # below opset 18 the TorchScript exporter is the plan (preflight says so), not a fallback
        message = f"dynamo exporter failed ({dynamo_why}); used the TorchScript exporter"
        warnings.warn(message, stacklevel=3)
        notes.append(message)
    return model, "torchscript", notes


def count_nodes(model: onnx_ir.Model) -> int:
    """Nodes in the main graph and every subgraph and local function.

    Args:
        model: the ONNX model (``onnx_ir``).
    """
    import onnx_ir as ir

    total = sum(1 for _ in ir.traversal.RecursiveGraphIterator(model.graph))
    for function in model.functions.values():
        total += sum(1 for _ in ir.traversal.RecursiveGraphIterator(function))
    return total


def optimize(model: onnx_ir.Model) -> onnx_ir.Model:
    """Constant folding, dead-code removal and pattern rewrites with onnxscript's optimizer.

    Args:
        model: the ONNX model (``onnx_ir``).
    """
    import onnxscript.optimizer

    with _quiet():
        optimized: onnx_ir.Model = onnxscript.optimizer.optimize(model)
    return optimized
