"""``export_onnx``: a model directory to a checked, optimised, self-describing ONNX file.

Steps, one function each: preflight lint -> inputs (``converters.onnx._job.prepare``) -> export
(dynamo, else TorchScript) -> optimise -> graph lint -> write into a hidden staging folder
(``toolkit._atomic.publish``) -> onnx.checker + shape inference + ONNX Runtime vs eager at batch
1 and 3 -> optional fp16 / INT8 variant (``converters.onnx.variant``) -> metadata -> publish:
the external data and the INT8 decision first, the model last. Any failure leaves the previous
artifact untouched and no partial file behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from converters._source import eval_mode, resolve_source
from converters.int8.record import Int8Decision, decision_path
from converters.onnx import checks as _checks
from converters.onnx._job import ExportJob, prepare
from converters.onnx.external import (
    EXTERNAL_THRESHOLD,
    check_external_data,
    check_location_name,
    external_locations,
    new_location,
    orphan_data_files,
)
from converters.onnx.metadata import build_metadata, stamp_metadata
from converters.onnx.options import OnnxExportOptions
from converters.onnx.preflight import Finding, check_graph, preflight
from converters.onnx.torch_export import INPUT_NAME, count_nodes, to_onnx
from converters.onnx.torch_export import optimize as run_optimizer
from converters.onnx.variant import make_variant
from converters.result import ExportResult, TensorInfo
from toolkit import _atomic
from toolkit._text import listing
from toolkit.errors import ArtifactError, ExportError
from toolkit.models.model_dir import LoadedModel
from toolkit.progress import Progress

_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(uint8)": "uint8",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(int8)": "int8",
}


@dataclasses.dataclass(frozen=True)
class _Graph:
    """The traced and optimised graph (an ``onnx_ir.Model``), who traced it, and its notes."""

    model: Any
    exporter: str
    nodes_before: int
    nodes_after: int
    notes: list[str]


@dataclasses.dataclass(frozen=True)
class _Staged:
    """What the staging folder holds once checked: the model's precision, its numbers, the INT8
    decision, its inputs and outputs, its opset, its external-data files and the variant's notes."""

    precision: str
    checks: dict[str, float]
    decision: Int8Decision | None
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    opset: int | None
    data: tuple[str, ...]
    notes: list[str]


def export_onnx(
    source: str | os.PathLike[str] | LoadedModel,
    path: str | os.PathLike[str],
    *,
    options: OnnxExportOptions | None = None,
    overwrite: bool = False,
    progress: bool = False,
    **settings: Any,
) -> ExportResult:
    """Export a model directory (or ``LoadedModel``) to ONNX at ``path``; return what was written.

    Input ``images``: float32 NCHW (or uint8 NHWC at the model's input size with
    ``bake_preprocess``); output ``logits``: float32 [batch, num_classes], also for fp16/INT8.
    The graph is checked against eager as ``rehead validate`` would (same default inputs and
    batch sizes) before it is published; an INT8 export with ``min_agreement`` also writes its
    decision beside the model (``<path>.int8.json``).

    Args:
        source: a model directory or a ``LoadedModel``.
        path: the ``.onnx`` file to write; its external data (``external_data``) goes beside it.
        options: what to make (``OnnxExportOptions``: opset, dynamic batch, fp16/INT8,
            calibration, baked preprocessing, accuracy-aware INT8 targets...); default: its defaults.
        overwrite: replace an existing ``path`` (default False).
        progress: print each step and its time on stderr (default False).
        **settings: fields of ``OnnxExportOptions`` (``int8=True, calib="digits"``), applied
            over ``options``.

    Raises:
        InvalidArgumentError: settings that contradict each other (before anything runs).
        OutputExistsError: ``path`` exists and not ``overwrite``.
        ExportError: the model cannot be exported (before anything is written).
        GateFailedError: no INT8 graph meets the ``min_agreement`` targets.
    """
    start = time.perf_counter()
    options = (options or OnnxExportOptions()).replace(**settings)
    out = _atomic.check_output(path, overwrite=overwrite)
    loaded = resolve_source(source)
    steps = Progress(f"export {out.name}", enabled=progress)
    notes = _lint(preflight(loaded.module, loaded.config, options.opset))  # before eval_mode: it reports train mode
    with eval_mode(loaded.module):
        job, input_notes = prepare(loaded.module, loaded.config, options, steps)
        graph = _trace(job)
        with _atomic.publish(out, overwrite=overwrite, owned=_owned(out)) as stage:
            staged = _stage(job, graph.model, stage / out.name)
    for orphan in orphan_data_files(out):  # data files of runs killed before their .onnx was in place
        orphan.unlink(missing_ok=True)
    return ExportResult(
        path=out,
        format="onnx" if staged.precision == "fp32" else f"onnx-{staged.precision}",
        size_bytes=out.stat().st_size + sum((out.parent / name).stat().st_size for name in staged.data),
        opset=staged.opset,
        nodes_before=graph.nodes_before,
        nodes_after=graph.nodes_after,
        inputs=staged.inputs,
        outputs=staged.outputs,
        exporter=graph.exporter,
        seconds=time.perf_counter() - start,
        warnings=(*notes, *input_notes, *graph.notes, *staged.notes),
        external_data=staged.data,
        checks=staged.checks,
        int8_search=staged.decision,
    )


def _lint(findings: list[Finding]) -> list[str]:
    """Raise ``ExportError`` for the first error among ``findings``; the notes of the rest."""
    bad = [f for f in findings if f.severity == "error"]
    if bad:
        first = bad[0]
        more = f" (also: {listing([f.one_line() for f in bad[1:]], limit=2, sep='; ')})" if len(bad) > 1 else ""
        raise ExportError(
            f"preflight: {first.code}{f' at {first.node}' if first.node else ''}: {first.message}{more}",
            hint=first.hint or "fix the model before exporting",
            param=first.param or None,
        )
    return [f.one_line() for f in findings]


def _trace(job: ExportJob) -> _Graph:
    """Export the network to an ONNX graph, optimise it, lint the graph."""
    options = job.options
    example = torch.from_numpy(job.images[: 2 if options.dynamic_batch else 1])
    with job.steps.step("export"):
        model, exporter, notes = to_onnx(job.net, example, opset=options.opset, dynamic_batch=options.dynamic_batch)
    nodes_before = count_nodes(model)
    if options.optimize:
        with job.steps.step("optimise"):
            model = run_optimizer(model)
    notes = [*notes, *_lint(check_graph(model, options.opset))]
    return _Graph(model, exporter, nodes_before, count_nodes(model), notes)


def _owned(out: Path) -> list[str]:
    """The files beside ``out`` that publishing it replaces or removes: the INT8 decision, and
    the previous model's data files (the new model's have fresh names)."""
    owned = [decision_path(out).name]
    if out.exists():
        with contextlib.suppress(ArtifactError):
            owned += [check_location_name(name) for name in external_locations(out)]
    return owned


def _stage(job: ExportJob, model: Any, final: Path) -> _Staged:
    """Write ``model`` at ``final`` in the staging folder, check it, replace it by its checked
    variant, stamp the model's record and stage the INT8 decision: all but publishing."""
    import onnx_ir as ir

    options = job.options
    location = new_location(final.name) if _external(job) else None
    ir.save(model, os.fspath(final), external_data=location)
    reference, checks = _check_fp32(job, final)
    notes: list[str] = []
    decision = None
    if options.fp16 or options.int8:
        variant = make_variant(job, final, location, reference)
        _promote(variant.path, final, location)
        checks = {f"fp32_{k}": v for k, v in checks.items()} | variant.checks
        notes, decision = variant.notes, variant.decision
    # the search may find no INT8 variant faster than the fp32 graph
    precision = "fp32" if decision is not None and decision.chosen == "fp32" else options.precision
    quantization = _quantization(job, decision)
    meta = build_metadata(job.config, precision=precision, input_spec=_input_spec(job), quantization=quantization)
    stamp_metadata(final, meta)
    data = tuple(p.name for p in check_external_data(final))
    sess = _checks.session(final)
    inputs, outputs = _tensor_infos(sess.get_inputs()), _tensor_infos(sess.get_outputs())
    del sess
    if decision is not None:  # a companion: published with the model, just before it
        (final.parent / decision_path(final).name).write_text(json.dumps(decision.to_json(), indent=2) + "\n")
    return _Staged(precision, checks, decision, inputs, outputs, _opset(final), data, notes)


def _external(job: ExportJob) -> bool:
    """Whether the weights go to a data file: as asked, else only past the protobuf limit."""
    if job.options.external_data is not None:
        return job.options.external_data
    return _weights_bytes(job.module) > EXTERNAL_THRESHOLD


def _check_fp32(job: ExportJob, final: Path) -> tuple[np.ndarray, dict[str, float]]:
    """onnx.checker, shape inference, ONNX Runtime vs eager (fp32 preset); eager's logits and the numbers."""
    batches = job.options.batch_sizes
    with job.steps.step(
        "check", "onnx.checker, shapes, ONNX Runtime vs eager at batch " + "/".join(map(str, batches))
    ):
        _checks.check_model_file(final, num_classes=job.config.num_classes, stage=final.parent)
        reference = _checks.eager_outputs(job.net, job.images)
        parity, checks = _checks.check_parity(
            _checks.ort_runner(_checks.session(final)),
            reference,
            job.images,
            job.config,
            precision="fp32",
            batch_sizes=batches,
            net=job.net,
        )
        _checks.require_parity(parity, what="the exported fp32 graph")
    return reference, checks


def _promote(variant: Path, final: Path, location: str | None) -> None:
    """Put the checked variant, and its data file, in the fp32 graph's place in the staging folder."""
    if location is not None:
        data = final.parent / location
        data.unlink(missing_ok=True)  # the fp32 graph's weights
        if (variant.parent / location).exists():
            os.replace(variant.parent / location, data)
    os.replace(variant, final)


def _input_spec(job: ExportJob) -> dict[str, Any]:
    bake, prep = job.options.bake_preprocess, job.config.preprocessing
    return {
        "name": INPUT_NAME,
        "layout": "NHWC" if bake else "NCHW",
        "dtype": "uint8" if bake else "float32",
        "baked_preprocessing": bake,
        "size": list(prep.input_size),
        "channels": prep.channels,
        "dynamic_batch": job.options.dynamic_batch,
    }


def _quantization(job: ExportJob, decision: Int8Decision | None) -> dict[str, Any] | None:
    """How the INT8 graph was made (``rehead.quantization``), or None for fp32/fp16."""
    if job.calibration is None or job.calib_x is None:  # both set exactly when int8
        return None
    options = job.options
    tensorrt = options.int8_target == "tensorrt"
    quantization: dict[str, Any] = {
        "format": "QDQ",
        "target": options.int8_target,
        "calibration": job.calibration.source,
        "calibration_from": job.calibration.origin,
        "samples": len(job.calib_x),
        "method": options.calib_method,
        "per_channel": True,
        "activations": "int8 symmetric" if tensorrt else "uint8 asymmetric",
        "weights": "int8 symmetric",
    }
    if decision is not None:
        quantization["search"] = decision.to_json()
    return quantization


def _tensor_infos(items: list[Any]) -> tuple[TensorInfo, ...]:
    return tuple(
        TensorInfo(
            i.name,
            tuple(d if isinstance(d, (int, str)) else "?" for d in i.shape),
            _ORT_TYPES.get(i.type, i.type),
        )
        for i in items
    )


def _weights_bytes(module: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()])


def _opset(path: Path) -> int | None:
    import onnx

    imports = onnx.load(os.fspath(path), load_external_data=False).opset_import
    return next((int(o.version) for o in imports if o.domain in ("", "ai.onnx")), None)
