"""The console table: one row per artifact (status, size, max error, top-1, p50/p99, speed-up)."""

from __future__ import annotations

from typing import Any

from validation.report._format import ms, num, pct, size
from validation.result import ArtifactResult, ValidationReport

_STYLE = {"pass": "bold green", "fail": "bold red", "inconclusive": "bold yellow", "skipped": "dim"}


def _row(artifact: ArtifactResult, batch: int | None) -> list[str]:
    parity = artifact.parity
    worst = parity.worst("all") if parity else None
    worst_new = parity.worst("new") if parity else None
    stats = artifact.latency.get(batch) if batch is not None else None
    speed = artifact.speedup.get(batch) if batch is not None else None
    status = artifact.status
    return [
        artifact.name,
        f"[{_STYLE.get(status, '')}]{status.upper()}[/]",
        f"{artifact.kind}/{artifact.precision}",
        size(artifact.size_bytes),
        num(worst.max_abs) if worst else "—",
        num(worst_new.max_abs) if worst_new else "—",
        pct(worst.top1) if worst else "—",
        ms(stats.p50_ms) if stats else "—",
        (ms(stats.p99_ms) + ("" if stats.conclusive else " ?")) if stats else "—",
        f"{speed:.2f}×" if speed else "—",
    ]


def summary_table(report: ValidationReport) -> Any:
    """A rich ``Table`` of the report (latency columns at the largest batch size measured)."""
    from rich.table import Table

    batches = report.settings.get("batch_sizes") or []
    batch = max(batches) if batches else None
    title = f"rehead validate — {report.model.get('arch')} ({report.status.upper()})"
    table = Table(title=title, title_justify="left")
    for col in (
        "artifact",
        "status",
        "kind",
        "size",
        "max|Δ| all",
        "max|Δ| new",
        "top-1",
        f"p50 ms (b{batch})",
        f"p99 ms (b{batch})",
        "speed-up",
    ):
        table.add_column(col, justify="left" if col in ("artifact", "status", "kind") else "right")
    ref = report.reference_latency.get(batch) if batch is not None else None
    if ref is not None:
        table.add_row(
            "eager-fp32 (reference)",
            "[dim]REF[/]",
            "eager/fp32",
            "—",
            "0",
            "0",
            "100.0%",
            ms(ref.p50_ms),
            ms(ref.p99_ms) + ("" if ref.conclusive else " ?"),
            "1.00×",
        )
    for artifact in report.artifacts:
        table.add_row(*_row(artifact, batch))
    return table


def print_summary(report: ValidationReport, console: Any = None) -> None:
    """Print the table, then every failure and inconclusive measurement, one per line."""
    from rich.console import Console
    from rich.markup import escape

    console = console or Console()
    console.print(summary_table(report))
    for artifact in report.artifacts:
        for line in artifact.failures:
            console.print(f"[red]FAIL[/] {escape(line)}")
        for bs, stats in artifact.latency.items():
            if not stats.conclusive:
                console.print(
                    f"[yellow]INCONCLUSIVE[/] {escape(artifact.name)} batch {bs}: {escape(stats.reason)}"
                )
        loc = artifact.parity.localisation if artifact.parity else None
        if loc:
            console.print(
                f"[cyan]LOCALISE[/] {escape(artifact.name)}: {escape(loc['status'])}: "
                f"{escape(loc.get('reason', ''))}"
            )
    for bs, stats in report.reference_latency.items():
        if not stats.conclusive:
            console.print(f"[yellow]INCONCLUSIVE[/] eager-fp32 batch {bs}: {escape(stats.reason)}")
    if report.head_latency:
        for row in report.head_latency["batches"]:
            ratio = row.get("new_over_old")
            console.print(
                f"head '{report.head_latency['module']}' batch {row['batch_size']}: "
                f"old p50 {ms(row['old_head']['p50_ms'])} ms, "
                f"new p50 {ms(row['new_head']['p50_ms'])} ms" + (f" ({ratio:.2f}× old)" if ratio else "")
            )
