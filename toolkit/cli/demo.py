"""``rehead demo``: the whole pipeline on the bundled digits."""

from __future__ import annotations

from pathlib import Path

import typer

from toolkit.cli._app import app


@app.command()
def demo(
    output: Path = typer.Option(Path("rehead-demo"), "-o", "--output", help="Folder for every artifact and report."),
    strategy: str | None = typer.Option(
        None, "--strategy", "-s", help="Head strategy for digits 7-9 (default: the study's best, imprint)."
    ),
    fresh: bool = typer.Option(False, "--fresh", help="Redo every stage instead of reusing valid results."),
    quick: bool = typer.Option(False, "--quick", help="Smaller budgets (CI): fewer epochs, samples, timing."),
    no_pt2: bool = typer.Option(False, "--no-pt2", help="Skip the AOTInductor package (its compile takes ~1 min)."),
) -> None:
    """Pretrain resnet18 on digits 0-6, extend to 0-9, fine-tune, export, validate, report."""
    import dataclasses

    from rich.console import Console
    from rich.table import Table

    from toolkit.demo import DemoSettings, format_rows, run_demo

    settings = DemoSettings.quick() if quick else DemoSettings()
    if no_pt2:
        settings = dataclasses.replace(settings, pt2=False)
    result = run_demo(output, strategy=strategy, fresh=fresh, settings=settings, progress=True)
    table = Table(title=f"rehead demo — resnet18, digits 0-6 → 0-9 ({result.strategy}); batch "
                  f"{result.rows[0]['batch_size']}, {settings.threads} threads")
    for col in ("artifact", "size", "test top-1 (old / new)", "parity", "p50 ms", "speedup vs eager"):
        table.add_column(col, justify="left" if col in ("artifact", "parity") else "right")
    for cells in format_rows(result.rows):
        table.add_row(*cells)
    console = Console(width=None if __import__("sys").stdout.isatty() else 140)
    console.print(table)
    console.print(f"report: {result.report_dir / 'report.html'}")
    console.print(f"bundle: {result.bundle} (rehead verify / predict)   Triton model repository: {result.triton}")
    if result.serve.get("status") == "ok":
        console.print(
            f"live rehead serve round trip: {result.serve['images']} digits over HTTP at {result.serve['endpoint']}, "
            f"max |diff| vs the Predictor {result.serve['max_abs_diff']:.2g}"
        )
    else:
        console.print(f"live rehead serve round trip skipped: {result.serve.get('detail', '')}")
    if result.reused:
        console.print(f"reused: {', '.join(result.reused)} (use --fresh to redo)")
    if result.status == "fail":
        from toolkit.errors import GateFailedError

        raise GateFailedError(f"an artifact failed validation; see {result.report_dir / 'report.html'}")
