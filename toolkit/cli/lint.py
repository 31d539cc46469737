"""``rehead lint MODEL.onnx --target tensorrt``: what a runtime that is not here will refuse, found on CPU.

Prints one line per finding and a summary; exits 1 when any finding is an error (the graph will
not build), 0 otherwise. ``--json`` prints the findings as a JSON list instead.
"""

from __future__ import annotations

from pathlib import Path

import typer

from toolkit.cli._app import app


@app.command("lint")
def lint_command(
    model: Path = typer.Argument(..., metavar="MODEL.onnx", help="ONNX file to check (external data is not read)."),
    target: str = typer.Option("tensorrt", "--target", help="Runtime to check against: tensorrt."),
    json_output: bool = typer.Option(False, "--json", help="Print the findings as a JSON list."),
    trt_version: str | None = typer.Option(
        None, "--trt-version", help="TensorRT version whose ONNX parser table to use, e.g. 11.2 (default: the "
        "installed TensorRT's, else 10.15)."
    ),
) -> None:
    """Check MODEL.onnx against TensorRT's ONNX parser and builder without a GPU: op coverage,
    opset, INT64 weights, dynamic input sizes, Q/DQ placement, size and external data."""
    import dataclasses
    import json

    from converters.tensorrt import ops as trt_ops
    from converters.tensorrt.lint import lint_onnx

    table = trt_ops.table_for(trt_version)
    found = lint_onnx(model, target=target, trt_version=table.version)
    errors = sum(f.severity == "error" for f in found)
    if json_output:
        typer.echo(json.dumps([dataclasses.asdict(f) for f in found], indent=2))
    else:
        for finding in found:
            typer.echo(finding.one_line())
        warnings = sum(f.severity == "warning" for f in found)
        verdict = "will not build" if errors else "no blocking problem found"
        typer.echo(
            f"{model}: {errors} error(s), {warnings} warning(s), {len(found) - errors - warnings} info "
            f"against TensorRT {table.version}'s ONNX parser list: {verdict}"
        )
    if errors:
        raise typer.Exit(1)
