"""The fp16 or INT8 variant of a checked fp32 ONNX graph, judged against eager with its precision's
preset (``make_variant``): onnxconverter-common for fp16; static QDQ INT8, or with targets the
accuracy-aware search (``converters.int8.search``), which also returns its decision."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from converters.int8.record import Int8Decision
from converters.onnx import checks as _checks
from converters.onnx._job import ExportJob
from converters.onnx.torch_export import INPUT_NAME
from toolkit.errors import InternalError


@dataclasses.dataclass(frozen=True)
class Variant:
    """A checked variant: its file, its numbers, its notes (the search's summary, a failed
    verdict, a low agreement) and the accuracy-aware search's decision (None without a search)."""

    path: Path
    checks: dict[str, float]
    notes: list[str]
    decision: Int8Decision | None


def make_variant(job: ExportJob, fp32: Path, location: str | None, reference: np.ndarray) -> Variant:
    """Write the fp16 or INT8 variant of the checked fp32 graph ``fp32`` into a folder beside it
    and judge it against eager (``reference``: eager's logits on ``job.images``).

    Args:
        job: the export (its options say which variant).
        fp32: the checked fp32 graph, in the staging folder.
        location: the name of the variant's external-data file (the fp32 graph's), or None.
        reference: eager's logits on the check images.
    """
    precision = job.options.precision
    folder = fp32.parent / precision
    folder.mkdir()
    target = folder / fp32.name
    decision = _convert(job, fp32, target, location, folder)
    with job.steps.step("check", f"ONNX Runtime vs eager, {precision} preset"):
        _checks.check_model_file(target, num_classes=_num_classes(fp32), stage=folder)
        run = _checks.ort_runner(_checks.session(target))
        parity, checks = _checks.check_parity(
            run, reference, job.images, job.config, precision=precision, batch_sizes=job.options.batch_sizes,
            net=job.net,
        )
        if job.calib_x is not None:
            checks["top1_agreement_calibration"] = _checks.agreement(run, job.net, job.model_input(job.calib_x[:64]))
        checks["parity_passed"] = float(parity.passed)
        note = _checks.variant_note(parity, precision)
    notes = [decision.summary()] if decision is not None else []
    notes += [note] if note else []
    return Variant(target, checks, notes + _agreement_notes(checks, precision), decision)


def _convert(job: ExportJob, fp32: Path, target: Path, location: str | None, folder: Path) -> Int8Decision | None:
    """Write the variant at ``target`` (``folder``: scratch space); the search's decision, if any."""
    options = job.options
    if options.fp16:
        from converters.onnx.fp16 import convert_fp16

        with job.steps.step("fp16", "onnxconverter-common, fp32 inputs/outputs"):
            convert_fp16(fp32, target, external=location)
        return None
    if job.calib_x is None:  # prepare() loads calibration samples whenever int8 is asked for
        raise InternalError("INT8 variant asked for without calibration samples")
    samples = job.model_input(job.calib_x)
    targets = options.int8_targets()
    if targets is not None and job.held is not None:
        from converters.int8.search import search_int8

        return search_int8(
            fp32,
            target,
            samples,
            job.held,
            targets,
            head_module=job.config.head.module,
            work=folder,
            method=options.calib_method,
            input_name=INPUT_NAME,
            external=location,
            target=options.int8_target,
            speed=options.speed_rule,
            steps=job.steps,
        )
    from converters.int8.quantize import quantize_int8

    what = f"static QDQ for {options.int8_target}, per-channel, {options.calib_method} on {len(samples)} images"
    with job.steps.step("quantise", what):
        quantize_int8(
            fp32,
            target,
            samples,
            method=options.calib_method,
            input_name=INPUT_NAME,
            external=location,
            work=folder,
            target=options.int8_target,
        )
    return None


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
