"""``rehead export onnx|pt2|tensorrt``: the flags copied into the format's options record
(``OnnxExportOptions``, ``Pt2ExportOptions``, ``BuildOptions``), which holds every default.

An option with a value takes its default from the record's field (a dataclass keeps each
field's default as a class attribute), so that ``--help`` shows it and no default is written
twice; an on/off flag, and text parsed first (sizes, a path), are passed only when given. The
options modules are light (no NumPy, torch
or ONNX), so importing them here keeps ``rehead --help`` fast (``tests/test_cli_startup.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from converters.onnx.options import CALIB_METHODS, OnnxExportOptions
from converters.openvino.options import CHECK_PRECISIONS, OpenVinoExportOptions
from converters.pt2.options import Pt2ExportOptions
from converters.tensorrt.options import DEFAULT_DEVICE, DEFAULT_MAX_BATCH, HARDWARE_COMPAT, BuildOptions
from toolkit.cli._app import app

export_app = typer.Typer(
    name="export",
    help="Export a model directory to ONNX (fp32, fp16, INT8), an OpenVINO IR, a TensorRT engine or an "
    "AOTInductor .pt2 package.",
    no_args_is_help=True,
)
app.add_typer(export_app, name="export")


def _report(result: object) -> None:
    from converters import ExportResult

    if not isinstance(result, ExportResult):
        return
    typer.echo(result.summary())
    for note in result.warnings:
        typer.echo(f"  note: {note}", err=True)


def _given(**values: Any) -> dict[str, Any]:
    """The settings a user gave (None: a flag left out, so the record's default holds)."""
    return {name: value for name, value in values.items() if value is not None}


def _on(flag: bool) -> bool | None:
    """A flag that turns a setting on: True when given."""
    return True if flag else None


def _off(flag: bool) -> bool | None:
    """A ``--no-...`` flag: the setting False when given."""
    return False if flag else None


@export_app.command("onnx")
def onnx_command(
    model_dir: Path = typer.Argument(
        ..., metavar="MODEL_DIR", help="Model directory (model.safetensors + config.json)."
    ),
    path: Path = typer.Option(..., "-o", "--output", help="ONNX file to write."),
    opset: int | None = typer.Option(OnnxExportOptions.opset, "--opset", help="ONNX opset (default: the exporter's)."),
    no_dynamic_batch: bool = typer.Option(False, "--no-dynamic-batch", help="Fix the batch size at 1."),
    fp16: bool = typer.Option(False, "--fp16", help="fp16 weights and compute, fp32 inputs/outputs."),
    int8: bool = typer.Option(False, "--int8", help="Static INT8 (QDQ, per-channel), calibrated on --calib."),
    calib: str | None = typer.Option(
        OnnxExportOptions.calib,
        "--calib",
        help="Calibration images: 'digits' or an image folder (default: the data the model was fine-tuned on, "
        "as its directory records).",
    ),
    calib_samples: int = typer.Option(
        OnnxExportOptions.calib_samples, "--calib-samples", help="Number of calibration images."
    ),
    calib_method: str = typer.Option(
        OnnxExportOptions.calib_method, "--calib-method", help=f"{' | '.join(CALIB_METHODS)}."
    ),
    int8_target: str = typer.Option(
        OnnxExportOptions.int8_target,
        "--int8-target",
        help="cpu (uint8 activations, fastest in ONNX Runtime) | tensorrt (symmetric int8).",
    ),
    bake_preprocess: bool = typer.Option(
        False, "--bake-preprocess", help="Take uint8 NHWC images at the input size; normalise in the graph."
    ),
    no_optimize: bool = typer.Option(False, "--no-optimize", help="Skip onnxscript's graph optimiser."),
    external_data: bool = typer.Option(
        False, "--external-data", help="Weights in a data file beside the model (default: only over 2 GiB)."
    ),
    min_agreement: float | None = typer.Option(
        OnnxExportOptions.min_agreement,
        "--min-agreement",
        help="Accuracy-aware INT8 (with --int8): the fastest graph whose top-1 agreement with eager on held-out "
        "images is at least this (e.g. 0.99); sensitive nodes and nodes INT8 does not speed up stay fp32.",
    ),
    new_class_min_agreement: float | None = typer.Option(
        OnnxExportOptions.new_class_min_agreement,
        "--new-class-min-agreement",
        help="The same target for the images of the new classes on their own.",
    ),
    max_fp32_nodes: int | None = typer.Option(
        OnnxExportOptions.max_fp32_nodes,
        "--max-fp32-nodes",
        help="At most this many nodes back in fp32 for accuracy (default: no limit).",
    ),
    heldout: str | None = typer.Option(
        OnnxExportOptions.heldout,
        "--heldout",
        help="Held-out images for the agreement (default: the calibration data's val/test split).",
    ),
    heldout_samples: int = typer.Option(
        OnnxExportOptions.heldout_samples, "--heldout-samples", help="Number of held-out images."
    ),
    no_speed_rule: bool = typer.Option(
        False, "--no-speed-rule", help="Accuracy only: keep every node INT8 unless it is too sensitive."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the output file if it exists."),
) -> None:
    """Export MODEL_DIR to ONNX, check it against eager as 'rehead validate' would (same default
    inputs and batch sizes), and write it atomically. With --int8 --min-agreement: search for
    the fastest INT8 graph that meets the target, recorded in <output>.int8.json (exit 1 if none)."""
    from converters import export_onnx

    options = OnnxExportOptions(
        opset=opset,
        calib=calib,
        calib_samples=calib_samples,
        calib_method=calib_method,
        int8_target=int8_target,
        min_agreement=min_agreement,
        new_class_min_agreement=new_class_min_agreement,
        max_fp32_nodes=max_fp32_nodes,
        heldout=heldout,
        heldout_samples=heldout_samples,
        **_given(  # the on/off flags, only when given
            dynamic_batch=_off(no_dynamic_batch),
            fp16=_on(fp16),
            int8=_on(int8),
            bake_preprocess=_on(bake_preprocess),
            optimize=_off(no_optimize),
            external_data=_on(external_data),
            speed_rule=_off(no_speed_rule),
        ),
    )
    _report(export_onnx(model_dir, path, options=options, overwrite=overwrite, progress=True))


@export_app.command("pt2")
def pt2_command(
    model_dir: Path = typer.Argument(
        ..., metavar="MODEL_DIR", help="Model directory (model.safetensors + config.json)."
    ),
    path: Path = typer.Option(..., "-o", "--output", help=".pt2 package to write."),
    no_dynamic_batch: bool = typer.Option(False, "--no-dynamic-batch", help="Fix the batch size at 1."),
    device: str = typer.Option(
        Pt2ExportOptions.device,
        "--device",
        help="cpu | cuda | cuda:N: what the package is compiled for (it runs only there).",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the output file if it exists."),
) -> None:
    """Compile MODEL_DIR with AOTInductor into a .pt2 package for --device (about a minute for
    resnet18 on CPU); the device is recorded in the package, which runs only on that kind of device."""
    from converters import export_pt2

    options = Pt2ExportOptions(device=device, **_given(dynamic_batch=_off(no_dynamic_batch)))
    _report(export_pt2(model_dir, path, options=options, overwrite=overwrite, progress=True))


@export_app.command("tensorrt")
def tensorrt_command(
    onnx: Path = typer.Argument(..., metavar="MODEL.onnx", help="ONNX file (from rehead export onnx)."),
    path: Path = typer.Option(..., "-o", "--output", help="Engine to write (.engine or .plan)."),
    min_batch: int = typer.Option(
        BuildOptions.min_batch, "--min-batch", help="Smallest batch of the optimisation profile."
    ),
    opt_batch: int | None = typer.Option(
        BuildOptions.opt_batch, "--opt-batch", help="Batch TensorRT tunes for (default: --max-batch)."
    ),
    max_batch: int | None = typer.Option(
        BuildOptions.max_batch,
        "--max-batch",
        help=f"Largest batch of the profile (default: {DEFAULT_MAX_BATCH}, or --min-batch when larger).",
    ),
    min_size: str | None = typer.Option(None, "--min-size", help="HxW, only for an ONNX with dynamic height/width."),
    opt_size: str | None = typer.Option(None, "--opt-size", help="HxW the profile tunes for."),
    max_size: str | None = typer.Option(None, "--max-size", help="Largest HxW of the profile."),
    fp16: bool = typer.Option(
        False, "--fp16", help="fp32 ONNX only, TensorRT 10 only (weak typing, deprecated): allow fp16 kernels. "
        "Prefer 'rehead export onnx --fp16'; refused on TensorRT 11."
    ),
    bf16: bool = typer.Option(
        False, "--bf16", help="fp32 ONNX only, TensorRT 10 only (weak typing, deprecated): allow bf16 kernels."
    ),
    tf32: bool = typer.Option(False, "--tf32", help="Allow TF32 for fp32 layers (off: fp32 means fp32)."),
    strongly_typed: bool = typer.Option(
        False, "--strongly-typed", help="Type an fp32 ONNX strongly on TensorRT 10 (fp16 and QDQ ONNX, and every "
        "ONNX on TensorRT 11, always are)."
    ),
    workspace_mib: int | None = typer.Option(
        BuildOptions.workspace_mib, "--workspace", help="Workspace memory limit in MiB (default: TensorRT's)."
    ),
    opt_level: int = typer.Option(
        BuildOptions.opt_level, "--opt-level", help="Builder optimisation level 0-5 (the default is TensorRT's)."
    ),
    timing_cache: Path | None = typer.Option(
        None, "--timing-cache", help="Timing cache file: loaded if present, saved after the build."
    ),
    hardware_compat: str = typer.Option(
        BuildOptions.hardware_compat,
        "--hardware-compat",
        help=f"{' | '.join(HARDWARE_COMPAT)}: which GPUs may run it.",
    ),
    version_compatible: bool = typer.Option(
        False, "--version-compatible", help="Runs on later TensorRT versions of the same major (lean runtime)."
    ),
    refittable: bool = typer.Option(False, "--refittable", help="Allow 'rehead refit' with new weights later."),
    strip_weights: bool = typer.Option(
        False, "--strip-weights", help="Weight-stripped plan; refitted from the same ONNX (kept beside it) at load."
    ),
    device: str = typer.Option(DEFAULT_DEVICE, "--device", help="cuda | cuda:N."),
    allow_mismatch: bool = typer.Option(
        False, "--allow-mismatch", help="Write the engine even if it fails its parity check (recorded)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the output engine if it exists."),
) -> None:
    """Build a TensorRT engine from an ONNX file, check it against ONNX Runtime on that ONNX (per
    class slice), and write it with a sidecar (<engine>.json) and the trtexec line that rebuilds it."""
    from converters.tensorrt.build import export_tensorrt
    from toolkit.cli._parse import size

    options = BuildOptions(
        min_batch=min_batch,
        opt_batch=opt_batch,
        max_batch=max_batch,
        workspace_mib=workspace_mib,
        opt_level=opt_level,
        hardware_compat=hardware_compat,
        **_given(  # the text parsed, and the on/off flags, only when given
            min_size=size(min_size, flag="--min-size"),
            opt_size=size(opt_size, flag="--opt-size"),
            max_size=size(max_size, flag="--max-size"),
            timing_cache=str(timing_cache) if timing_cache is not None else None,
            fp16=_on(fp16),
            bf16=_on(bf16),
            tf32=_on(tf32),
            strongly_typed=_on(strongly_typed),
            version_compatible=_on(version_compatible),
            refittable=_on(refittable),
            strip_weights=_on(strip_weights),
        ),
    )
    result = export_tensorrt(
        onnx, path, options, device=device, allow_mismatch=allow_mismatch, overwrite=overwrite, progress=True
    )
    _report(result)


@export_app.command("openvino")
def openvino_command(
    source: Path = typer.Argument(
        ..., metavar="MODEL_DIR|MODEL.onnx", help="A model directory, or rehead's ONNX (with --model-dir)."
    ),
    path: Path = typer.Option(..., "-o", "--output", help="OpenVINO IR to write (.xml; its .bin goes beside it)."),
    model_dir: Path | None = typer.Option(
        None, "--model-dir", help="The model directory an ONNX source was exported from (its eager model is the "
        "reference the IR is checked against)."
    ),
    compress_fp16: bool = typer.Option(
        False, "--compress-fp16", help="fp16 weights (half the .bin; what iGPUs and NPUs run)."
    ),
    check_precision: str = typer.Option(
        OpenVinoExportOptions.check_precision,
        "--check-precision",
        help=f"Inference precision of the check against eager: {' | '.join(CHECK_PRECISIONS)}.",
    ),
    int8: bool = typer.Option(False, "--int8", help="From a model directory: the INT8 QDQ graph (OpenVINO runs it)."),
    calib: str | None = typer.Option(
        OnnxExportOptions.calib, "--calib", help="Calibration images with --int8: 'digits' or an image folder."
    ),
    calib_samples: int = typer.Option(
        OnnxExportOptions.calib_samples, "--calib-samples", help="Number of calibration images."
    ),
    min_agreement: float | None = typer.Option(
        OnnxExportOptions.min_agreement,
        "--min-agreement",
        help="Accuracy-aware INT8 (with --int8): the fastest graph IN OPENVINO whose top-1 agreement with eager "
        "on held-out images is at least this (e.g. 0.99).",
    ),
    new_class_min_agreement: float | None = typer.Option(
        OnnxExportOptions.new_class_min_agreement,
        "--new-class-min-agreement",
        help="The same target for the images of the new classes on their own.",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the IR if it exists."),
) -> None:
    """Write an OpenVINO IR (.xml + .bin) from MODEL_DIR (exported to ONNX first; --int8 for the
    INT8 QDQ graph, searched in OpenVINO with --min-agreement) or from rehead's ONNX, check it in
    OpenVINO against eager per class slice, and publish both files together. OpenVINO's
    telemetry stays off."""
    from converters.openvino.export import export_openvino

    options = OpenVinoExportOptions(check_precision=check_precision, **_given(compress_to_fp16=_on(compress_fp16)))
    onnx_options = OnnxExportOptions(
        calib=calib,
        calib_samples=calib_samples,
        min_agreement=min_agreement,
        new_class_min_agreement=new_class_min_agreement,
        **_given(int8=_on(int8), int8_target="openvino" if int8 else None),
    )
    _report(
        export_openvino(
            source,
            path,
            model_dir=model_dir,
            options=options,
            onnx_options=onnx_options,
            overwrite=overwrite,
            progress=True,
        )
    )
