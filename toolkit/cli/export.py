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
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the output file if it exists."),
) -> None:
    """Export MODEL_DIR to ONNX, check it against eager as 'rehead validate' would (same default
    inputs, batch sizes 1 and 8), and write it atomically."""
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
    )
    _report(result)


@export_app.command("pt2")
def pt2_command(
    model_dir: Path = typer.Argument(
        ..., metavar="MODEL_DIR", help="Model directory (model.safetensors + config.json)."
    ),
    path: Path = typer.Option(..., "-o", "--output", help=".pt2 package to write."),
    no_dynamic_batch: bool = typer.Option(False, "--no-dynamic-batch", help="Fix the batch size at 1."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the output file if it exists."),
) -> None:
    """Compile MODEL_DIR with AOTInductor into a .pt2 package (about a minute for resnet18 on CPU)."""
    from converters import export_pt2

    dynamic = not no_dynamic_batch
    result = export_pt2(model_dir, path, dynamic_batch=dynamic, overwrite=overwrite, progress=True)
    _report(result)
