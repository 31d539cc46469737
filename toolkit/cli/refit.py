"""``rehead refit``: new weights into a refittable TensorRT engine, without a rebuild."""

from __future__ import annotations

from pathlib import Path

import typer

from converters.tensorrt.options import DEFAULT_DEVICE
from toolkit.cli._app import app


@app.command()
def refit(
    engine: Path = typer.Argument(..., metavar="MODEL.engine", help="Refittable engine (built with --refittable)."),
    onnx: Path = typer.Argument(..., metavar="NEW.onnx", help="ONNX export of the re-fine-tuned model."),
    path: Path = typer.Option(..., "-o", "--output", help="Engine to write (.engine or .plan)."),
    device: str = typer.Option(DEFAULT_DEVICE, "--device", help="cuda | cuda:N."),
    allow_mismatch: bool = typer.Option(
        False, "--allow-mismatch", help="Write the engine even if it fails its parity check (recorded)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the output engine if it exists."),
) -> None:
    """Put the weights of NEW.onnx (same architecture and head size) into MODEL.engine and check the
    result against ONNX Runtime on NEW.onnx like a fresh build. Refused when the graphs differ."""
    from converters.tensorrt.refit import refit_engine
    from toolkit.cli.export import _report

    # the build options are the engine's own (its sidecar)
    result = refit_engine(
        engine, onnx, path, device=device, allow_mismatch=allow_mismatch, overwrite=overwrite, progress=True
    )
    _report(result)
