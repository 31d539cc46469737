"""``rehead export onnx`` and ``rehead export pt2``: flags copied into ``converters`` keyword arguments."""

from __future__ import annotations

from pathlib import Path

import typer

from toolkit.cli._app import app

export_app = typer.Typer(
    name="export",
    help="Export a model directory to ONNX (fp32, fp16, INT8) or an AOTInductor .pt2 package.",
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


@export_app.command("onnx")
def onnx_command(
    model_dir: Path = typer.Argument(
        ..., metavar="MODEL_DIR", help="Model directory (model.safetensors + config.json)."
    ),
    path: Path = typer.Option(..., "-o", "--output", help="ONNX file to write."),
    opset: int | None = typer.Option(None, "--opset", help="ONNX opset (default: the exporter's)."),
    no_dynamic_batch: bool = typer.Option(False, "--no-dynamic-batch", help="Fix the batch size at 1."),
    fp16: bool = typer.Option(False, "--fp16", help="fp16 weights and compute, fp32 inputs/outputs."),
    int8: bool = typer.Option(False, "--int8", help="Static INT8 (QDQ, per-channel), calibrated on --calib."),
    calib: str | None = typer.Option(
        None,
        "--calib",
        help="Calibration images: 'digits' or an image folder (default: the data the model was fine-tuned on, "
        "as its directory records).",
    ),
    calib_samples: int = typer.Option(128, "--calib-samples", help="Number of calibration images."),
    calib_method: str = typer.Option("minmax", "--calib-method", help="minmax | entropy | percentile."),
    int8_target: str = typer.Option(
        "cpu", "--int8-target", help="cpu (uint8 activations, fastest in ONNX Runtime) | tensorrt (symmetric int8)."
    ),
    bake_preprocess: bool = typer.Option(
        False, "--bake-preprocess", help="Take uint8 NHWC images at the input size; normalise in the graph."
    ),
    no_optimize: bool = typer.Option(False, "--no-optimize", help="Skip onnxscript's graph optimiser."),
    external_data: bool = typer.Option(
        False, "--external-data", help="Weights in a data file beside the model (default: only over 2 GiB)."
    ),
    min_agreement: float | None = typer.Option(
        None,
        "--min-agreement",
        help="Accuracy-aware INT8 (with --int8): the fastest graph whose top-1 agreement with eager on held-out "
        "images is at least this (e.g. 0.99); sensitive nodes and nodes INT8 does not speed up stay fp32.",
    ),
    new_class_min_agreement: float | None = typer.Option(
        None, "--new-class-min-agreement", help="The same target for the images of the new classes on their own."
    ),
    max_fp32_nodes: int | None = typer.Option(
        None, "--max-fp32-nodes", help="At most this many nodes back in fp32 for accuracy (default: no limit)."
    ),
    heldout: str | None = typer.Option(
        None, "--heldout", help="Held-out images for the agreement (default: the calibration data's val/test split)."
    ),
    heldout_samples: int = typer.Option(256, "--heldout-samples", help="Number of held-out images."),
    no_speed_rule: bool = typer.Option(
        False, "--no-speed-rule", help="Accuracy only: keep every node INT8 unless it is too sensitive."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the output file if it exists."),
) -> None:
    """Export MODEL_DIR to ONNX, check it against eager as 'rehead validate' would (same default
    inputs, batch sizes 1 and 8), and write it atomically. With --int8 --min-agreement: search for
    the fastest INT8 graph that meets the target, recorded in <output>.int8.json (exit 1 if none)."""
    from converters import export_onnx

    result = export_onnx(
        model_dir,
        path,
        opset=opset,
        dynamic_batch=not no_dynamic_batch,
        fp16=fp16,
        int8=int8,
        calib=calib,
        calib_samples=calib_samples,
        calib_method=calib_method,
        int8_target=int8_target,
        bake_preprocess=bake_preprocess,
        optimize=not no_optimize,
        overwrite=overwrite,
        progress=True,
        external_data=True if external_data else None,
        min_agreement=min_agreement,
        new_class_min_agreement=new_class_min_agreement,
        max_fp32_nodes=max_fp32_nodes,
        heldout=heldout,
        heldout_samples=heldout_samples,
        speed_rule=not no_speed_rule,
    )
    _report(result)


@export_app.command("pt2")
def pt2_command(
    model_dir: Path = typer.Argument(
        ..., metavar="MODEL_DIR", help="Model directory (model.safetensors + config.json)."
    ),
    path: Path = typer.Option(..., "-o", "--output", help=".pt2 package to write."),
    no_dynamic_batch: bool = typer.Option(False, "--no-dynamic-batch", help="Fix the batch size at 1."),
    device: str = typer.Option(
        "cpu", "--device", help="cpu | cuda | cuda:N: what the package is compiled for (it runs only there)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the output file if it exists."),
) -> None:
    """Compile MODEL_DIR with AOTInductor into a .pt2 package for --device (about a minute for
    resnet18 on CPU); the device is recorded in the package, which runs only on that kind of device."""
    from converters import export_pt2

    dynamic = not no_dynamic_batch
    result = export_pt2(model_dir, path, dynamic_batch=dynamic, device=device, overwrite=overwrite, progress=True)
    _report(result)


@export_app.command("tensorrt")
def tensorrt_command(
    onnx: Path = typer.Argument(..., metavar="MODEL.onnx", help="ONNX file (from rehead export onnx)."),
    path: Path = typer.Option(..., "-o", "--output", help="Engine to write (.engine or .plan)."),
    min_batch: int = typer.Option(1, "--min-batch", help="Smallest batch of the optimisation profile."),
    opt_batch: int | None = typer.Option(None, "--opt-batch", help="Batch TensorRT tunes for (default: max)."),
    max_batch: int | None = typer.Option(None, "--max-batch", help="Largest batch of the profile (default 32)."),
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
    workspace_mib: int | None = typer.Option(None, "--workspace", help="Workspace memory limit in MiB."),
    opt_level: int = typer.Option(3, "--opt-level", help="Builder optimisation level 0-5 (TensorRT's default 3)."),
    timing_cache: Path | None = typer.Option(
        None, "--timing-cache", help="Timing cache file: loaded if present, saved after the build."
    ),
    hardware_compat: str = typer.Option(
        "none", "--hardware-compat", help="none | ampere+ | same-compute-capability: which GPUs may run it."
    ),
    version_compatible: bool = typer.Option(
        False, "--version-compatible", help="Runs on later TensorRT versions of the same major (lean runtime)."
    ),
    refittable: bool = typer.Option(False, "--refittable", help="Allow 'rehead refit' with new weights later."),
    strip_weights: bool = typer.Option(
        False, "--strip-weights", help="Weight-stripped plan; refitted from the same ONNX (kept beside it) at load."
    ),
    device: str = typer.Option("cuda", "--device", help="cuda | cuda:N."),
    allow_mismatch: bool = typer.Option(
        False, "--allow-mismatch", help="Write the engine even if it fails its parity check (recorded)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the output engine if it exists."),
) -> None:
    """Build a TensorRT engine from an ONNX file, check it against ONNX Runtime on that ONNX (per
    class slice), and write it with a sidecar (<engine>.json) and the trtexec line that rebuilds it."""
    from converters.tensorrt.build import export_tensorrt
    from toolkit.cli._parse import size

    result = export_tensorrt(
        onnx,
        path,
        min_batch=min_batch,
        opt_batch=opt_batch,
        max_batch=max_batch,
        min_size=size(min_size, flag="--min-size"),
        opt_size=size(opt_size, flag="--opt-size"),
        max_size=size(max_size, flag="--max-size"),
        fp16=fp16,
        bf16=bf16,
        tf32=tf32,
        strongly_typed=strongly_typed,
        workspace_mib=workspace_mib,
        opt_level=opt_level,
        timing_cache=timing_cache,
        hardware_compat=hardware_compat,
        version_compatible=version_compatible,
        refittable=refittable,
        strip_weights=strip_weights,
        device=device,
        allow_mismatch=allow_mismatch,
        overwrite=overwrite,
        progress=True,
    )
    _report(result)
