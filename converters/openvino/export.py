"""``export_openvino``: an OpenVINO IR (``.xml`` + ``.bin``) from rehead's ONNX, checked, self-describing.

Steps: the source ONNX (given, its lineage checked against the model directory; or exported
first from the model directory, fp32 or INT8 QDQ, by ``export_onnx`` into the staging folder's
scratch space) -> ``Core.read_model`` (OpenVINO's ONNX frontend: no model-conversion tool, so no
telemetry; an INT8 QDQ graph is read as it is) -> rehead's record into the IR's runtime info
(``<rt_info><rehead><record>``: the ONNX's metadata plus what OpenVINO made) -> ``save_model``
(weights in fp16 with ``compress_to_fp16``) -> the IR run by OpenVINO against eager per class
slice at each check batch size, judged like ``rehead validate`` -> ``.bin`` then ``.xml``
published together (``toolkit._atomic.publish``). Any failure leaves the previous IR as it was.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from converters._source import eval_mode, resolve_source
from converters.check_inputs import default_check_inputs
from converters.compare import DEFAULT_BATCH_SIZES
from converters.onnx import checks as _checks
from converters.openvino import _runtime
from converters.openvino.artifact import RT_KEY, bin_path, stamp_weights
from converters.openvino.options import OpenVinoExportOptions
from converters.result import ExportResult, TensorInfo
from toolkit import _atomic
from toolkit.errors import ArtifactError, GateFailedError, InvalidArgumentError
from toolkit.models.model_dir import LoadedModel
from toolkit.progress import Progress


def export_openvino(
    source: str | os.PathLike[str] | LoadedModel,
    path: str | os.PathLike[str],
    *,
    model_dir: str | os.PathLike[str] | LoadedModel | None = None,
    options: OpenVinoExportOptions | None = None,
    onnx_options: Any = None,
    overwrite: bool = False,
    progress: bool = False,
) -> ExportResult:
    """Write an OpenVINO IR at ``path`` (``.xml``, its ``.bin`` beside it); return what was written.

    Args:
        source: rehead's ``.onnx`` (fp32, fp16 or INT8 QDQ), or a model directory (or
            ``LoadedModel``), which is exported to ONNX first with ``onnx_options``.
        path: the ``.xml`` to write.
        model_dir: the model directory an ``.onnx`` source came from (its eager model is the
            reference; its weights must be those the ONNX records). Not used for a model directory
            source.
        options: ``OpenVinoExportOptions`` (fp16 weights, the check's inference precision).
        onnx_options: ``converters.onnx.options.OnnxExportOptions`` for a model directory source
            (``int8=True``: the INT8 QDQ graph, which OpenVINO runs in INT8).
        overwrite: replace an existing IR (default False).
        progress: print each step on stderr.

    Raises:
        InvalidArgumentError: a path that does not end in ``.xml``, or an ``.onnx`` source without
            its model directory.
        LineageError: the ``.onnx`` records other weights than ``model_dir`` holds.
        MissingDependencyError: OpenVINO is not installed (exit 3).
        GateFailedError: the IR does not match eager.
    """
    start = time.perf_counter()
    options = options or OpenVinoExportOptions()
    out = _atomic.check_output(path, overwrite=overwrite)
    if out.suffix.lower() != ".xml":
        raise InvalidArgumentError(
            f"'{out.name}': an OpenVINO IR is written as .xml", hint="-o model.xml", param="path"
        )
    _runtime.openvino()  # exit 3 before any work when OpenVINO is missing
    steps = Progress(f"export {out.name}", enabled=progress)
    onnx_source, loaded = _sources(source, model_dir)
    with _atomic.publish(out, overwrite=overwrite, owned=[bin_path(out).name]) as stage:
        onnx_path = onnx_source or _export_onnx(loaded, stage / "scratch", onnx_options, steps)
        record = _record(onnx_path, loaded, options)
        final = stage / out.name
        with steps.step("convert", "OpenVINO reads the ONNX, saves the IR"):
            _save_ir(onnx_path, final, record, options)
        with steps.step("check", "the IR run by OpenVINO vs eager"):
            checks, inputs, outputs, notes = _check(final, loaded, record, options, given_onnx=onnx_source is not None)
    weights = bin_path(out)
    return ExportResult(
        path=out,
        format="openvino" if record["precision"] == "fp32" else f"openvino-{record['precision']}",
        size_bytes=out.stat().st_size + weights.stat().st_size,
        opset=None,
        nodes_before=int(record["openvino"]["ops"]),
        nodes_after=int(record["openvino"]["ops"]),
        inputs=inputs,
        outputs=outputs,
        exporter=f"openvino {record['openvino']['version']}",
        seconds=time.perf_counter() - start,
        external_data=(weights.name,),
        checks=checks,
        warnings=tuple(notes),
    )


def _sources(
    source: str | os.PathLike[str] | LoadedModel, model_dir: str | os.PathLike[str] | LoadedModel | None
) -> tuple[Path | None, LoadedModel]:
    """(the ONNX to convert, or None to export one; the model the IR is judged against)."""
    if isinstance(source, (str, os.PathLike)) and Path(source).suffix.lower() == ".onnx":
        onnx_path = Path(source)
        if not onnx_path.is_file():
            raise ArtifactError(f"ONNX model '{onnx_path}' does not exist", hint="check the path")
        if model_dir is None:
            raise InvalidArgumentError(
                f"converting '{onnx_path.name}' needs the model directory it was exported from "
                "(the IR is checked against its eager model before it is published)",
                hint="pass model_dir, or give the model directory as the source",
                param="model_dir",
            )
        loaded = resolve_source(model_dir)
        _check_lineage(onnx_path, loaded)
        return onnx_path, loaded
    return None, resolve_source(source)


def _check_lineage(onnx_path: Path, loaded: LoadedModel) -> None:
    from converters import artifact

    artifact.refuse_other_weights(
        onnx_path,
        artifact.recorded_weights(onnx_path),
        loaded.config.weights_sha256,
        hint="pass the model directory the ONNX was exported from",
        param="model_dir",
    )


def _export_onnx(loaded: LoadedModel, scratch: Path, onnx_options: Any, steps: Progress) -> Path:
    from converters.onnx.export import export_onnx

    scratch.mkdir()
    with steps.step("onnx", "the model directory exported to ONNX first"):
        return export_onnx(loaded, scratch / "model.onnx", options=onnx_options).path


def _record(onnx_path: Path, loaded: LoadedModel, options: OpenVinoExportOptions) -> dict[str, Any]:
    """The ONNX's rehead record (or one built from the model directory), plus OpenVINO's part."""
    from converters import artifact
    from converters.onnx.metadata import build_metadata, decode_metadata

    record = artifact.recorded_model(onnx_path)
    if record is None:  # an ONNX another tool wrote, of this model (the check below proves it)
        props = build_metadata(loaded.config, precision=artifact.precision(onnx_path), input_spec={})
        record = decode_metadata(props)
    onnx_precision = str(record.get("precision", "fp32"))
    precision = onnx_precision if onnx_precision == "int8" or not options.compress_to_fp16 else "fp16"
    ov = _runtime.openvino()
    return {
        **record,
        "precision": precision,
        "openvino": {
            "version": ov.get_version().split("-")[0],
            "compress_to_fp16": options.compress_to_fp16,
            "source_onnx_precision": onnx_precision,
            "ops": 0,
        },
    }


def _save_ir(onnx_path: Path, final: Path, record: dict[str, Any], options: OpenVinoExportOptions) -> None:
    ov = _runtime.openvino()
    try:
        model = _runtime.core().read_model(str(onnx_path))
    except RuntimeError as exc:
        raise ArtifactError(
            f"OpenVINO cannot read '{onnx_path.name}': {str(exc).strip().splitlines()[0][:300]}",
            hint="export the model with rehead export onnx first",
        ) from exc
    record["openvino"]["ops"] = len(model.get_ops())
    model.set_rt_info(json.dumps(record, sort_keys=True), list(RT_KEY))
    ov.save_model(model, str(final), compress_to_fp16=options.compress_to_fp16)
    stamp_weights(final)


def _check(
    final: Path, loaded: LoadedModel, record: dict[str, Any], options: OpenVinoExportOptions, *, given_onnx: bool
) -> tuple[dict[str, float], tuple[TensorInfo, ...], tuple[TensorInfo, ...], list[str]]:
    """The IR in OpenVINO vs eager, per slice (``GateFailedError`` on a mismatch)."""
    from converters.onnx.runner import on_pixel_grid
    from converters.openvino.runner import OpenVinoRunner

    config = loaded.config
    images = default_check_inputs(config).images
    runner = OpenVinoRunner(
        final,
        threads=options.threads,
        ov_precision=options.check_precision,
        precision=str(record["precision"]),
        preprocessing=config.preprocessing,
    )
    with runner:
        runner.load()
        if runner.baked:  # the graph sees the pixels the float images round to
            images = on_pixel_grid(images, config.preprocessing)
        with eval_mode(loaded.module):
            reference = _checks.eager_outputs(loaded.module, images)
            batches = DEFAULT_BATCH_SIZES if runner.fixed_batch is None else (runner.fixed_batch,)
            result, checks = _checks.check_parity(
                lambda x: runner.run(x)[runner.output_names[0]],
                reference,
                images,
                config,
                precision=runner.precision,
                batch_sizes=batches,
                net=loaded.module,
            )
        notes = _verdict(result, runner.precision, options, given_onnx=given_onnx)
        inputs = (_info(runner.input_name, runner.input_shape, "uint8" if runner.baked else "float32"),)
        outputs = tuple(_info(name, ("batch", config.num_classes), "float32") for name in runner.output_names)
    return checks, inputs, outputs, notes


def _verdict(result: Any, precision: str, options: OpenVinoExportOptions, *, given_onnx: bool) -> list[str]:
    """An fp32 IR at f32 inference must match eager: a mismatch of rehead's own ONNX is an exporter
    defect (``InternalError``), of a given ONNX a gate (``GateFailedError``: it is not this model).
    An fp16/INT8 IR, or bf16/f16 inference, that misses its preset is written with a note, as the
    ONNX export's variants are (losing precision is the model's property at that precision)."""
    what = f"the OpenVINO IR ({options.check_precision} inference)"
    if precision != "fp32":
        note = _checks.variant_note(result, precision)
        return [note] if note else []
    if given_onnx and not result.passed:
        raise GateFailedError(
            f"{what} does not match the model directory's eager model: {_checks.summary(result)}",
            hint="the ONNX computes something else than the model directory: re-export it with rehead export onnx",
        )
    _checks.require_parity(result, what=what)
    return []


def _info(name: str, shape: tuple[Any, ...], dtype: str) -> TensorInfo:
    return TensorInfo(name, tuple(d if isinstance(d, int) else "batch" for d in shape), dtype)
