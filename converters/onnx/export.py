"""``export_onnx``: a model directory to a checked, optimised, self-describing ONNX file.

Steps: preflight lint -> export (dynamo, else TorchScript) -> optimise -> graph lint -> write into
a hidden staging folder -> onnx.checker + shape inference + ONNX Runtime vs eager at batch 1
and 3 -> optional fp16 / INT8 variant -> metadata -> atomic move into place. Any failure leaves
the previous artifact untouched and no partial file behind.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from converters.onnx import checks as _checks
from converters.onnx._place import place, stamp_metadata
from converters.result import ExportResult, TensorInfo
from converters._source import eval_mode, resolve_source
from converters.onnx.torch_export import INPUT_NAME, count_nodes, to_onnx
from converters.onnx.torch_export import optimize as run_optimizer
from converters.onnx.bake import BakedPreprocess, to_uint8_nhwc
from converters.int8.calibration import calibration_samples, choose_calibration, heldout_samples, recorded_data
from converters.check_inputs import default_check_inputs
from converters.compare import DEFAULT_BATCH_SIZES
from converters.onnx.external import EXTERNAL_THRESHOLD, check_external_data, new_location
from converters.int8.quantize import CALIB_METHODS, check_target
from converters.int8.record import Int8Decision, Int8Targets, decision_path
from converters.int8.search import Heldout
from converters.onnx.metadata import build_metadata
from converters.onnx.preflight import Finding, check_graph, preflight
from toolkit import _atomic
from toolkit._args import positive_int
from toolkit._text import listing
from toolkit.errors import ExportError, InternalError, InvalidArgumentError
from toolkit.models.model_dir import LoadedModel
from toolkit.progress import Progress
from toolkit.records import ModelConfig

_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(uint8)": "uint8",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(int8)": "int8",
}


def _check_args(
    fp16: bool,
    int8: bool,
    calib_samples: int,
    calib_method: str,
    int8_target: str,
) -> None:
    if fp16 and int8:
        raise InvalidArgumentError("fp16 and int8 exclude each other", hint="export one variant per file", param="int8")
    positive_int(calib_samples, "calib_samples", example="calib_samples=128")
    if calib_method not in CALIB_METHODS:
        raise InvalidArgumentError(
            f"unknown calibration method '{calib_method}'",
            hint=f"calib_method is one of {', '.join(CALIB_METHODS)}",
            param="calib_method",
        )
    check_target(int8_target)


def _tensor_infos(items: list[Any]) -> tuple[TensorInfo, ...]:
    return tuple(
        TensorInfo(
            i.name,
            tuple(d if isinstance(d, (int, str)) else "?" for d in i.shape),
            _ORT_TYPES.get(i.type, i.type),
        )
        for i in items
    )


def _raise_errors(findings: list[Finding]) -> None:
    bad = [f for f in findings if f.severity == "error"]
    if bad:
        first = bad[0]
        more = f" (also: {listing([f.one_line() for f in bad[1:]], limit=2, sep='; ')})" if len(bad) > 1 else ""
        raise ExportError(
            f"preflight: {first.code}{f' at {first.node}' if first.node else ''}: {first.message}{more}",
            hint=first.hint or "fix the model before exporting",
            param=first.param or None,
        )


def _weights_bytes(module: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()])


def export_onnx(
    source: str | os.PathLike[str] | LoadedModel,
    path: str | os.PathLike[str],
    *,
    opset: int | None = None,
    dynamic_batch: bool = True,
    fp16: bool = False,
    int8: bool = False,
    calib: str | os.PathLike[str] | None = None,
    calib_samples: int = 128,
    calib_method: str = "minmax",
    int8_target: str = "cpu",
    bake_preprocess: bool = False,
    optimize: bool = True,
    overwrite: bool = False,
    progress: bool = False,
    external_data: bool | None = None,
    min_agreement: float | None = None,
    new_class_min_agreement: float | None = None,
    max_fp32_nodes: int | None = None,
    heldout: str | os.PathLike[str] | None = None,
    heldout_samples: int = 256,
    speed_rule: bool = True,
) -> ExportResult:
    """Export a model directory (or ``LoadedModel``) to ONNX at ``path``; return what was written.

    Input ``images``: float32 NCHW (or uint8 NHWC at the model's input size with
    ``bake_preprocess``); output ``logits``: float32 [batch, num_classes], also for fp16/INT8.
    ``opset`` None takes the exporter's default; ``dynamic_batch`` names axis 0 ``batch``.
    ``fp16``: fp16 weights and compute, fp32 I/O. ``int8``: static QDQ INT8 with per-channel
    weights, calibrated on ``calib_samples`` train-split images from ``calib`` (``"digits"`` or
    an image folder; None, the default: the fine-tuning data the model directory's lineage
    records, and ``InvalidArgumentError`` when it records none) with ``calib_method``
    (``minmax``, ``entropy``, ``percentile``);
    ``int8_target`` ``cpu`` (uint8 asymmetric activations: fastest in ONNX Runtime on x86) or
    ``tensorrt`` (int8 symmetric activations, zero point 0, as TensorRT requires).
    ``optimize`` runs onnxscript's optimiser. ``external_data`` None puts weights in a data file
    beside the model only when over 2 GiB. ``progress`` (default False) prints each step and its
    time on stderr. Raises ``OutputExistsError`` if ``path`` exists and
    not ``overwrite``; ``ExportError`` (before anything is written) if the model cannot be exported.
    """
    start = time.perf_counter()
    _check_args(fp16, int8, calib_samples, calib_method, int8_target)
    targets = _targets(int8, min_agreement, new_class_min_agreement, max_fp32_nodes, heldout, heldout_samples)
    out = _atomic.check_output(path, overwrite=overwrite)
    loaded = resolve_source(source)
    module, config = loaded.module, loaded.config
    prep = config.preprocessing
    steps = Progress(f"export {out.name}", enabled=progress)
    findings = preflight(module, config, opset)  # before eval_mode: it reports a model left in train mode
    _raise_errors(findings)
    notes = [f.one_line() for f in findings]
    with eval_mode(module):
        net: nn.Module = BakedPreprocess(module, prep).eval() if bake_preprocess else module
        # the same inputs and batch sizes as ``rehead validate`` by default: held-out images of the
        # data the lineage records, else the seeded random images (converters.check_inputs)
        checked = default_check_inputs(config)
        images = checked.images
        if checked.note and recorded_data(config) is not None:
            notes.append(f"checked on random inputs only: {checked.note}")
        if bake_preprocess:
            images = np.ascontiguousarray(to_uint8_nhwc(torch.from_numpy(images), prep).numpy())
        example = torch.from_numpy(images[: 2 if dynamic_batch else 1])

        calibration = choose_calibration(calib, config) if int8 else None
        calib_x = calibration_samples(calibration.source, config, calib_samples) if calibration else None
        held = None
        if targets is not None and calibration is not None:
            source_held = heldout if heldout is not None else calibration.source
            held = _heldout(source_held, config, heldout_samples, net, bake=bake_preprocess, prep=prep)
        with steps.step("export"):
            model, exporter, export_notes = to_onnx(
                net, example, opset=opset, dynamic_batch=dynamic_batch
            )
        notes += export_notes
        nodes_before = count_nodes(model)
        if optimize:
            with steps.step("optimise"):
                model = run_optimizer(model)
        nodes_after = count_nodes(model)
        graph_findings = check_graph(model, opset)
        _raise_errors(graph_findings)
        notes += [f.one_line() for f in graph_findings]
        big = _weights_bytes(module) > EXTERNAL_THRESHOLD if external_data is None else external_data
        input_spec = {
            "name": INPUT_NAME,
            "layout": "NHWC" if bake_preprocess else "NCHW",
            "dtype": "uint8" if bake_preprocess else "float32",
            "baked_preprocessing": bake_preprocess,
            "size": list(prep.input_size),
            "channels": prep.channels,
            "dynamic_batch": dynamic_batch,
        }
        precision = "fp16" if fp16 else "int8" if int8 else "fp32"
        batches = DEFAULT_BATCH_SIZES if dynamic_batch else (1,)
        stage = _atomic.staging_dir(out)
        try:
            import onnx_ir as ir

            location = new_location(out.name) if big else None
            final = stage / out.name
            ir.save(model, os.fspath(final), external_data=location)
            with steps.step(
                "check", "onnx.checker, shapes, ONNX Runtime vs eager at batch " + "/".join(map(str, batches))
            ):
                _checks.check_model_file(final, num_classes=config.num_classes, stage=stage)
                reference = _checks.eager_outputs(net, images)
                parity, checks = _checks.check_parity(
                    _checks.ort_runner(_checks.session(final)),
                    reference,
                    images,
                    config,
                    precision="fp32",
                    batch_sizes=batches,
                    net=net,
                )
                _checks.require_parity(parity, what="the exported fp32 graph")
            decision: Int8Decision | None = None
            if fp16 or int8:
                final, variant_checks, variant_notes, decision = _variant(
                    final,
                    stage,
                    location,
                    fp16=fp16,
                    calib_x=calib_x,
                    net=net,
                    images=images,
                    reference=reference,
                    config=config,
                    batches=batches,
                    steps=steps,
                    calib_method=calib_method,
                    int8_target=int8_target,
                    bake=bake_preprocess,
                    prep=prep,
                    search=(targets, held) if targets is not None and held is not None else None,
                    speed_rule=speed_rule,
                )
                checks = {f"fp32_{k}": v for k, v in checks.items()} | variant_checks
                notes += variant_notes + _agreement_notes(variant_checks, precision)
            if decision is not None and decision.chosen == "fp32":
                precision = "fp32"  # the search found no INT8 variant faster than the fp32 graph
            quantization = None
            if calibration is not None and calib_x is not None:  # both set exactly when int8
                quantization = {
                    "format": "QDQ",
                    "target": int8_target,
                    "calibration": calibration.source,
                    "calibration_from": calibration.origin,
                    "samples": len(calib_x),
                    "method": calib_method,
                    "per_channel": True,
                    "activations": "int8 symmetric" if int8_target == "tensorrt" else "uint8 asymmetric",
                    "weights": "int8 symmetric",
                }
                if decision is not None:
                    quantization["search"] = decision.to_json()
            meta = build_metadata(config, precision=precision, input_spec=input_spec, quantization=quantization)
            stamp_metadata(final, meta)
            check_external_data(final)
            sess = _checks.session(final)
            inputs, outputs = _tensor_infos(sess.get_inputs()), _tensor_infos(sess.get_outputs())
            final_opset = _opset(final)
            del sess
            sidecar = decision_path(out)
            if decision is not None:  # staged first, moved in right after the model
                _atomic.write_text(stage / sidecar.name, json.dumps(decision.to_json(), indent=2) + "\n")
            written = place(final, out, location, overwrite=overwrite)
            if decision is not None:
                os.replace(stage / sidecar.name, sidecar)
            elif sidecar.exists():  # an earlier accuracy-aware export's decision: no longer this model's
                sidecar.unlink()
        except Exception as exc:
            _atomic.raise_if_out_of_room(exc, out)
            raise
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    size = out.stat().st_size + sum((out.parent / name).stat().st_size for name in written)
    return ExportResult(
        path=out,
        format="onnx" if precision == "fp32" else f"onnx-{precision}",
        size_bytes=size,
        opset=final_opset,
        nodes_before=nodes_before,
        nodes_after=nodes_after,
        inputs=inputs,
        outputs=outputs,
        exporter=exporter,
        seconds=time.perf_counter() - start,
        warnings=tuple(notes),
        external_data=tuple(written),
        checks=checks,
        int8_search=decision,
    )


def _targets(
    int8: bool,
    min_agreement: float | None,
    new_class_min_agreement: float | None,
    max_fp32_nodes: int | None,
    heldout: object,
    heldout_samples: int,
) -> Int8Targets | None:
    """The accuracy-aware search's targets, or None when ``min_agreement`` is not set."""
    if min_agreement is None:
        stray = {"new_class_min_agreement": new_class_min_agreement, "max_fp32_nodes": max_fp32_nodes,
                 "heldout": heldout}
        given = [k for k, v in stray.items() if v is not None]
        if given:
            raise InvalidArgumentError(
                f"{given[0]} applies to accuracy-aware INT8 only", hint="set min_agreement (and int8) too",
                param=given[0],
            )
        return None
    if not int8:
        raise InvalidArgumentError(
            "min_agreement asks for accuracy-aware INT8, but int8 is off", hint="add int8=True (--int8)",
            param="min_agreement",
        )
    positive_int(heldout_samples, "heldout_samples", example="heldout_samples=256")
    return Int8Targets(min_agreement, new_class_min_agreement, max_fp32_nodes)


def _variant(
    fp32: Path,
    stage: Path,
    location: str | None,
    *,
    fp16: bool,
    calib_x: torch.Tensor | None,
    net: nn.Module,
    images: np.ndarray,
    reference: np.ndarray,
    config: ModelConfig,
    batches: tuple[int, ...],
    steps: Progress,
    calib_method: str,
    int8_target: str,
    bake: bool,
    prep: Any,
    search: tuple[Int8Targets, Heldout] | None = None,
    speed_rule: bool = True,
) -> tuple[Path, dict[str, float], list[str], Int8Decision | None]:
    """Write the fp16 or INT8 variant of the checked fp32 model; judge it against eager with its
    precision's preset. Returns the file, the numbers, the notes (a failed verdict) and, with
    ``search`` (targets and held-out data), the accuracy-aware search's decision."""
    folder = stage / ("fp16" if fp16 else "int8")
    folder.mkdir()
    target = folder / fp32.name
    decision = None
    if fp16:
        from converters.onnx.fp16 import convert_fp16

        with steps.step("fp16", "onnxconverter-common, fp32 inputs/outputs"):
            convert_fp16(fp32, target, external=location)
    else:
        from converters.int8.quantize import quantize_int8

        if calib_x is None:  # export_onnx loads calibration samples whenever int8 is asked for
            raise InternalError("INT8 variant asked for without calibration samples")
        samples = to_uint8_nhwc(calib_x, prep) if bake else calib_x
        what = f"static QDQ for {int8_target}, per-channel, {calib_method} on {len(samples)} images"
        if search is not None:
            from converters.int8.search import search_int8

            targets, held = search
            decision = search_int8(
                fp32,
                target,
                np.ascontiguousarray(samples.numpy()),
                held,
                targets,
                head_module=config.head.module,
                work=folder,
                method=calib_method,
                input_name=INPUT_NAME,
                external=location,
                target=int8_target,
                speed=speed_rule,
                steps=steps,
            )
        else:
            with steps.step("quantise", what):
                quantize_int8(
                    fp32,
                    target,
                    np.ascontiguousarray(samples.numpy()),
                    method=calib_method,
                    input_name=INPUT_NAME,
                    external=location,
                    work=folder,
                    target=int8_target,
                )
    precision = "fp16" if fp16 else "int8"
    with steps.step("check", f"ONNX Runtime vs eager, {precision} preset"):
        _checks.check_model_file(target, num_classes=_num_classes(fp32), stage=folder)
        run = _checks.ort_runner(_checks.session(target))
        parity, checks = _checks.check_parity(
            run, reference, images, config, precision=precision, batch_sizes=batches, net=net
        )
        if calib_x is not None:
            real = to_uint8_nhwc(calib_x[:64], prep) if bake else calib_x[:64]
            checks["top1_agreement_calibration"] = _checks.agreement(run, net, np.ascontiguousarray(real.numpy()))
        checks["parity_passed"] = float(parity.passed)
        note = _checks.variant_note(parity, precision)
    notes = [note] if note else []
    if decision is not None:
        notes.insert(0, decision.summary())
    return target, checks, notes, decision


def _heldout(
    source: str | os.PathLike[str], config: ModelConfig, n: int, net: nn.Module, *, bake: bool, prep: Any
) -> Heldout:
    """Held-out images (the model's input form), their labels and eager's logits on them."""
    x, labels, where = heldout_samples(source, config, n)
    images = np.ascontiguousarray((to_uint8_nhwc(x, prep) if bake else x).numpy())
    return Heldout(
        images=images,
        labels=labels.numpy(),
        reference=_checks.eager_outputs(net, images),
        new_classes=config.head.new_indices,
        kept_classes=config.head.kept_indices,
        source=where,
    )


def _opset(path: Path) -> int | None:
    import onnx

    imports = onnx.load(os.fspath(path), load_external_data=False).opset_import
    return next((int(o.version) for o in imports if o.domain in ("", "ai.onnx")), None)


def _num_classes(path: Path) -> int:
    import onnx

    dims = onnx.load(os.fspath(path), load_external_data=False).graph.output[0].type.tensor_type.shape.dim
    return int(dims[1].dim_value)


def _agreement_notes(checks: dict[str, float], precision: str) -> list[str]:
    notes = []
    labels = {"top1_agreement_random": "on random inputs", "top1_agreement_calibration": "on calibration images"}
    for key, where in labels.items():  # both keys are the all-classes slice
        if key in checks and checks[key] < 0.9:
            notes.append(
                f"{precision}: top-1 agreement with eager (all classes, {where}) is {checks[key]:.1%}; "
                "validate on real data before shipping (rehead validate)"
            )
    return notes
