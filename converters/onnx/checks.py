"""Checks run on the written model before it is moved into place: checker, shapes, parity with eager.

Parity is judged by the shared comparison layer (``converters.compare``) with the preset of the
artifact's precision, on the same default inputs and batch sizes ``rehead validate`` uses, so
that an export which passes here passes ``validate`` with default settings, and the reverse.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from converters.compare import (
    PRESETS,
    ClassSlice,
    ParityResult,
    compare_outputs,
    head_slices,
    parity_result,
    resolve_preset,
)
from converters.onnx.ort import open_session
from toolkit.errors import ArtifactError, ExportError, InternalError
from toolkit.records import ModelConfig

#: images run through eager at once for the reference
_REFERENCE_CHUNK = 32


def check_model_file(path: Path, *, num_classes: int, stage: Path) -> None:
    """``onnx.checker`` (full check) and strict shape inference; the output must be [*, num_classes].

    Args:
        path: the exported ``.onnx``.
        num_classes: the model's number of classes.
        stage: a scratch folder for the shape-inferred copy.
    """
    import onnx

    try:
        onnx.checker.check_model(os.fspath(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise InternalError(
            f"the exported model fails onnx.checker: {str(exc).splitlines()[0]}",
            hint="this is a bug in rehead or the exporter: report it with the traceback; "
            "another opset may work meanwhile",
        ) from exc
    inferred = stage / f"{path.stem}.shapes.onnx"
    try:
        onnx.shape_inference.infer_shapes_path(
            os.fspath(path), os.fspath(inferred), check_type=True, strict_mode=True, data_prop=True
        )
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError) as exc:
        raise InternalError(
            f"shape inference fails on the exported model: {str(exc).splitlines()[0]}",
            hint="this is a bug in rehead or the exporter: report it with the traceback; "
            "another opset may work meanwhile",
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
    """An ONNX Runtime CPU session on the written model (``converters.onnx.ort.open_session``).

    Args:
        path: the written ``.onnx``.
        threads: intra-op threads (default None: ONNX Runtime's choice).
    """
    try:
        return open_session(path, threads=threads, name=path.name)
    except ArtifactError as exc:
        raise ExportError(
            exc.message.replace("cannot load", "cannot load the exported model"),
            hint="choose an opset this ONNX Runtime supports (opset=...)",
            param="opset",
        ) from exc


def ort_runner(sess: Any) -> Callable[[np.ndarray], np.ndarray]:
    """A function running ``sess`` on one batch; a failure names the batch size.

    Args:
        sess: an ONNX Runtime session.
    """
    name = sess.get_inputs()[0].name

    def run(x: np.ndarray) -> np.ndarray:
        try:
            out: np.ndarray = sess.run(None, {name: x})[0]
        except Exception as exc:  # ORT's RuntimeException: most often a Reshape that hard-coded the batch
            raise ExportError(
                f"ONNX Runtime fails at batch {x.shape[0]}: {str(exc).splitlines()[0][:300]}",
                hint="a layer may hard-code the batch size (reshape/view with a literal)",
            ) from exc
        return np.asarray(out, dtype=np.float32)

    return run


def eager_outputs(net: nn.Module, images: np.ndarray, *, float64: bool = False) -> np.ndarray:
    """A model's outputs in chunks of 32: float32 logits (the parity reference), or float64 logits
    (the model's own fp32 rounding is the difference between the two).

    Args:
        net: the eager module.
        images: its inputs.
        float64: run a float64 copy of ``net`` instead (default False).
    """
    import copy

    model = copy.deepcopy(net).double() if float64 else net
    parts = []
    with torch.inference_mode():
        for start in range(0, len(images), _REFERENCE_CHUNK):
            x = torch.from_numpy(np.ascontiguousarray(images[start : start + _REFERENCE_CHUNK]))
            out = model(x.double() if float64 and x.is_floating_point() else x)
            parts.append(out.double().numpy() if float64 else out.float().numpy())
    return np.concatenate(parts)


def check_parity(
    run: Callable[[np.ndarray], np.ndarray],
    reference: np.ndarray,
    images: np.ndarray,
    config: ModelConfig,
    *,
    precision: str,
    batch_sizes: Sequence[int],
    net: nn.Module,
) -> tuple[ParityResult, dict[str, float]]:
    """Judge ``run`` against the eager ``reference`` on ``images`` at each batch size with the
    preset of ``precision``, per class slice, exactly as ``rehead validate`` does by default.
    Returns the verdict and the numbers recorded in ``ExportResult.checks``.

    Args:
        run: the artifact on one batch.
        reference: eager's logits on ``images``.
        images: the check inputs.
        config: the model's config (its class slices and names).
        precision: the artifact's precision, which picks the preset.
        batch_sizes: the batch sizes to run at.
        net: the eager module that made ``reference``, run in float64 only if the fp32 bound must be
            widened by the model's own rounding (``Tolerance.rounding_factor``).
    """
    memo: dict[str, np.ndarray] = {}

    def rounding() -> dict[str, np.ndarray]:
        if "logits" not in memo:
            memo["logits"] = eager_outputs(net, images, float64=True)
        return memo

    slices = head_slices(config.num_classes, config.head.kept_indices, config.head.new_indices)
    return judge_run(
        run,
        reference,
        images,
        precision=precision,
        slices=slices,
        class_names=config.class_names,
        batch_sizes=batch_sizes,
        rounding=rounding,
    )


def judge_run(
    run: Callable[[np.ndarray], np.ndarray],
    reference: np.ndarray,
    images: np.ndarray,
    *,
    precision: str,
    slices: Sequence[ClassSlice],
    class_names: Sequence[str] | None,
    batch_sizes: Sequence[int],
    rounding: Callable[[], dict[str, np.ndarray]] | None = None,
) -> tuple[ParityResult, dict[str, float]]:
    """``run`` on ``images`` at each batch size against ``reference``, judged per slice by the
    preset of ``precision`` (``compare_outputs``). A fixed-batch graph gets its last chunk padded
    with repeated samples whose outputs are dropped.

    Args:
        run: the artifact on one batch.
        reference: eager's logits on ``images``.
        images: the check inputs.
        precision: the artifact's precision, which picks the preset.
        slices: the class slices to judge.
        class_names: the class names, for messages (or None).
        batch_sizes: the batch sizes to run at.
        rounding: see ``compare_outputs`` (default None).
    """
    tol = PRESETS[resolve_preset(None, precision)]
    batches = []
    checks: dict[str, float] = {}
    for bs in batch_sizes:
        parts = []
        for start in range(0, len(images), bs):
            chunk = images[start : start + bs]
            real = len(chunk)
            if real < bs:  # a fixed-batch graph: pad with repeated samples, drop their outputs
                chunk = np.concatenate([chunk, np.resize(images, (bs - real, *images.shape[1:]))])
            parts.append(run(chunk)[:real])
        produced = np.concatenate(parts)
        if produced.shape != reference.shape:
            raise ExportError(
                f"the artifact returned shape {produced.shape} at batch {bs}, the reference {reference.shape}",
                hint="a layer may hard-code the batch size (reshape/view with a literal)",
            )
        batch = compare_outputs(
            {"logits": reference},
            {"logits": produced},
            slices,
            tol,
            batch_size=bs,
            class_names=class_names,
            rounding=rounding,
        )
        batches.append(batch)
        checks[f"max_abs_diff_b{bs}"] = float(np.max(np.abs(produced.astype(np.float64) - reference)))
        checks[f"top1_agreement_b{bs}"] = float(np.mean(produced.argmax(1) == reference.argmax(1)))
    checks["max_abs_ref"] = float(np.max(np.abs(reference)))
    checks["top1_agreement_random"] = min(v for k, v in checks.items() if k.startswith("top1_agreement_b"))
    return parity_result(tol, batches), checks


def summary(result: ParityResult) -> str:
    """The first failure's message and how many more there are (one line).

    Args:
        result: the parity verdict.
    """
    if result.passed:
        return "passed"
    more = len(result.failures) - 1
    return result.failures[0].message + (f" (+{more} more failures)" if more else "")


def require_parity(result: ParityResult, *, what: str) -> None:
    """Refuse an fp32 graph (or pt2 package) that does not match eager within the fp32 preset:
    it computes something else, a defect of the exporter (``InternalError``, nothing written).

    Args:
        result: the parity verdict.
        what: what was checked, for the message.
    """
    if not result.passed:
        raise InternalError(
            f"{what} does not match eager within the {result.tolerance.preset} preset: {summary(result)}",
            hint="the exported graph computes something else: report it with the traceback",
        )


def variant_note(result: ParityResult, precision: str) -> str | None:
    """A failed fp16/INT8 verdict on the default inputs, as a note for the export's warnings.

    The variant is still written: losing precision is a property of the model at that precision,
    not an exporter defect, and INT8 is judged best on real images. ``rehead validate`` with
    default settings reaches the same verdict (same inputs, same preset), so the note says so.

    Args:
        result: the variant's parity verdict.
        precision: the variant's precision (``fp16``, ``int8``).
    """
    if result.passed:
        return None
    return (
        f"{precision} variant fails the {result.tolerance.preset} preset on the default random inputs "
        f"(as 'rehead validate' with defaults will): {summary(result)}; validate it on real images"
    )


def agreement(run: Callable[[np.ndarray], np.ndarray], net: nn.Module, x: np.ndarray) -> float:
    """Top-1 agreement of ``run`` with eager on real samples (in chunks of 32).

    Args:
        run: the artifact on one batch.
        net: the eager module.
        x: the samples, in the graph's input form.
    """
    same = 0
    for start in range(0, len(x), _REFERENCE_CHUNK):
        part = x[start : start + _REFERENCE_CHUNK]
        same += int((run(part).argmax(1) == eager_outputs(net, part).argmax(1)).sum())
    return same / max(1, len(x))
