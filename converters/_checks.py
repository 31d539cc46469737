"""Checks run on the written model before it is moved into place: checker, shapes, ONNX Runtime vs eager."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from toolkit.errors import ExportError, require

# fp32 ONNX Runtime vs eager: a reordered sum differs by ~1e-6 relative; a wrong graph by O(1).
FP32_TOLERANCE = 1e-3


def check_model_file(path: Path, *, num_classes: int, stage: Path) -> None:
    """``onnx.checker`` (full check) and strict shape inference; the output must be [*, num_classes]."""
    import onnx

    try:
        onnx.checker.check_model(os.fspath(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(
            f"the exported model fails onnx.checker: {str(exc).splitlines()[0]}",
            hint="report this with --debug; try another --opset meanwhile",
        ) from exc
    inferred = stage / f"{path.stem}.shapes.onnx"
    try:
        onnx.shape_inference.infer_shapes_path(
            os.fspath(path), os.fspath(inferred), check_type=True, strict_mode=True, data_prop=True
        )
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError) as exc:
        raise ExportError(
            f"shape inference fails on the exported model: {str(exc).splitlines()[0]}",
            hint="report this with --debug; try another --opset meanwhile",
        ) from exc
    graph = onnx.load(os.fspath(inferred), load_external_data=False).graph
    inferred.unlink(missing_ok=True)
    dims = graph.output[0].type.tensor_type.shape.dim
    if len(dims) != 2 or (dims[1].HasField("dim_value") and dims[1].dim_value != num_classes):
        shape = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in dims]
        raise ExportError(
            f"the exported output has shape {shape}, expected [batch, {num_classes}]",
            hint="the model's forward must return the logits tensor only",
        )


def session(path: Path, *, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session on the model file (external data is read beside it)."""
    ort: Any = require("onnxruntime", purpose="checking exported models")
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph/NotImplemented types
        raise ExportError(
            f"ONNX Runtime cannot load the exported model: {str(exc).splitlines()[0][:300]}",
            hint="choose an --opset ONNX Runtime supports, or report this with --debug",
        ) from exc


def run(sess: Any, x: np.ndarray) -> np.ndarray:
    name = sess.get_inputs()[0].name
    try:
        out: np.ndarray = sess.run(None, {name: x})[0]
    except Exception as exc:  # ORT's RuntimeException: most often a Reshape that hard-coded the batch
        raise ExportError(
            f"ONNX Runtime fails at batch {x.shape[0]}: {str(exc).splitlines()[0][:300]}",
            hint="a layer may hard-code the batch size (reshape/view with a literal)",
        ) from exc
    return out.astype(np.float32)


def compare(
    sess: Any,
    module: nn.Module,
    make_input: Callable[[int], torch.Tensor],
    batches: Sequence[int],
) -> dict[str, float]:
    """Run ONNX Runtime and eager on the same inputs at each batch size; max|Δ| and top-1 agreement."""
    checks: dict[str, float] = {}
    agree, total = 0, 0
    for batch in batches:
        x = make_input(batch)
        with torch.inference_mode():
            ref = module(x).float().numpy()
        out = run(sess, x.numpy())
        if out.shape != ref.shape:
            raise ExportError(
                f"ONNX Runtime returned shape {out.shape} at batch {batch}, eager {ref.shape}",
                hint="a layer may hard-code the batch size (reshape/view with a literal)",
            )
        diff = float(np.max(np.abs(out - ref))) if np.isfinite(out).all() else float("inf")
        checks[f"max_abs_diff_b{batch}"] = diff
        checks[f"max_abs_ref_b{batch}"] = float(np.max(np.abs(ref)))
        agree += int((out.argmax(1) == ref.argmax(1)).sum())
        total += batch
    checks["top1_agreement_random"] = agree / total
    return checks


def require_close(checks: dict[str, float], batches: Sequence[int]) -> None:
    """Fail the export when fp32 ONNX Runtime and eager differ beyond ``FP32_TOLERANCE`` (scaled)."""
    for batch in batches:
        diff, scale = checks[f"max_abs_diff_b{batch}"], max(1.0, checks[f"max_abs_ref_b{batch}"])
        if not diff <= FP32_TOLERANCE * scale:
            raise ExportError(
                f"'logits' at batch {batch}: ONNX Runtime vs eager max|Δ| {diff:.3g} > {FP32_TOLERANCE * scale:.3g}",
                hint="the exported graph computes something else; rerun with --debug and report it",
            )


def agreement(sess: Any, module: nn.Module, x: torch.Tensor, *, chunk: int = 32) -> float:
    """Top-1 agreement of ONNX Runtime with eager on real samples ``x``."""
    same = 0
    for start in range(0, len(x), chunk):
        part = x[start : start + chunk]
        with torch.inference_mode():
            ref = module(part).float().numpy()
        same += int((run(sess, part.numpy()).argmax(1) == ref.argmax(1)).sum())
    return same / max(1, len(x))
