"""The console summary: a table with one row per artifact and batch size, then the problems,
one line each (at most ``MAX_LINES``; the report holds the rest).

``rehead validate`` shows parity and latency, each with its own verdict (the title is
``ValidationReport.headline``: ``parity PASS · latency inconclusive (noisy machine: ...)``), and
top-1 agreement with eager per class slice (all / kept / new); a bench run
(``settings["parity"]`` False) shows latency only and never a parity verdict. A speed-up
measured on a noisy machine carries its note (``19.58× (inconclusive: CV 0.31 > 0.25)``), as do
the head-only rows.
"""

from __future__ import annotations

from typing import Any

from validation.report._format import mib, ms, num
from validation.report._notes import head_note, inputs_line, latency_note, speedup_text, timing_line
from validation.result import ArtifactResult, ValidationReport

#: problem lines (failures, inconclusive measurements) printed before "... N more"
MAX_LINES = 5

_STYLE = {"pass": "bold green", "fail": "bold red", "inconclusive": "bold yellow", "skipped": "dim"}


def _status(status: str) -> str:
    return f"[{_STYLE.get(status, '')}]{status.upper()}[/]"


def is_bench(report: ValidationReport) -> bool:
    """True for a latency-only run (``rehead bench``): no parity verdict to show.

    Args:
        report: the validation report.
    """
    return report.settings.get("parity") is False


def _batches(report: ValidationReport) -> list[int]:
    measured = set(report.reference_latency) | {bs for a in report.artifacts for bs in a.latency}
    return sorted(measured)


def title(report: ValidationReport) -> str:
    """``rehead validate — resnet18: parity PASS · latency inconclusive (noisy machine: ...)``;
    for a bench, what was measured and how much of it was too noisy, never a parity verdict.

    Args:
        report: the validation report.
    """
    arch = report.model.get("arch")
    if not is_bench(report):
        return f"rehead validate — {arch}: {report.headline}"
    stats = [*report.reference_latency.values(), *(s for a in report.artifacts for s in a.latency.values())]
    noisy = sum(not s.conclusive for s in stats)
    tail = f"; {noisy} of {len(stats)} measurements inconclusive" if noisy else ""
    return f"rehead bench — {arch}: latency only, parity not checked{tail}"


def agreement_text(artifact: ArtifactResult) -> str:
    """``100.0/96.9/100.0``: top-1 agreement with eager in % for all / kept / new classes (the
    lowest over batch sizes), under a header that names the slices.

    Args:
        artifact: the artifact's result.
    """
    values = [artifact.agreement(s) for s in ("all", "kept", "new")]
    return "/".join("—" if v is None else "100" if v == 1 else f"{100 * v:.1f}" for v in values)


def _parity_cells(artifact: ArtifactResult) -> list[str]:
    parity = artifact.parity
    worst = parity.worst("all") if parity is not None else None
    worst_new = parity.worst("new") if parity is not None else None
    return [
        artifact.name,
        _status(artifact.parity_status),
        _status(artifact.latency_status),
        f"{artifact.kind}/{artifact.precision}",
        mib(artifact.size_bytes),
        num(worst.max_abs) if worst else "—",
        num(worst_new.max_abs) if worst_new else "—",
        agreement_text(artifact),
    ]


def _reference_cell(report: ValidationReport, bs: int) -> str:
    why = latency_note(report, report.reference_latency.get(bs))
    return "1.00×" + (f" ({why})" if why else "")


def validate_table(report: ValidationReport) -> Any:
    """Parity columns once per artifact, then a row per batch size with p50/p99 and speed-up.

    Args:
        report: the validation report.
    """
    from rich.table import Table

    table = Table()
    left = ("artifact", "parity", "latency", "kind")
    # two-line headers keep the table within 160 columns (CI logs); only the name (folded, never
    # cut short) and the speed-up's note wrap, so numbers stay on one line
    for col in (
        *left, "size\nMiB", "max|Δ|\nall", "max|Δ|\nnew", "top-1 agree\n% all/kept/new", "batch", "p50 ms",
        "p99 ms", "speed-up\nvs eager",
    ):
        wraps = col in (left[0], "speed-up\nvs eager")
        table.add_column(col, justify="left" if col in left else "right", no_wrap=not wraps, overflow="fold",
                         min_width=12 if col == left[0] else None)
    batches = _batches(report)
    for i, bs in enumerate(batches):
        ref = report.reference_latency.get(bs)
        if ref is not None:
            first = ["eager-fp32 (reference)", "[dim]REF[/]", "[dim]REF[/]", "eager/fp32", "—", "0", "0", "—"]
            table.add_row(*(first if i == 0 else [""] * 8), str(bs), ms(ref.p50_ms), ms(ref.p99_ms),
                          _reference_cell(report, bs))
    for artifact in report.artifacts:
        sizes: list[int | None] = [bs for bs in batches if bs in artifact.latency] or [None]
        for i, maybe_bs in enumerate(sizes):
            cells = _parity_cells(artifact) if i == 0 else [""] * 8
            if maybe_bs is None:
                table.add_row(*cells, "—", "—", "—", "—")
                continue
            stats = artifact.latency[maybe_bs]
            table.add_row(*cells, str(maybe_bs), ms(stats.p50_ms), ms(stats.p99_ms),
                          speedup_text(report, artifact, maybe_bs))
    return table


def bench_table(report: ValidationReport) -> Any:
    """Latency only: a row per runner and batch size (p50, p99, throughput, speed-up).

    Args:
        report: the validation report (a bench).
    """
    from rich.table import Table

    table = Table()
    left = ("runner", "kind")
    for col in (*left, "size\nMiB", "batch", "p50 ms", "p99 ms", "samples/s", "speed-up\nvs eager"):
        table.add_column(col, justify="left" if col in left else "right", no_wrap=col != left[0],
                         overflow="fold")
    for i, (bs, ref) in enumerate(sorted(report.reference_latency.items())):
        first = ["eager-fp32 (reference)", "eager/fp32", "—"] if i == 0 else ["", "", ""]
        table.add_row(*first, str(bs), ms(ref.p50_ms), ms(ref.p99_ms), f"{ref.throughput:.1f}",
                      _reference_cell(report, bs))
    for artifact in report.artifacts:
        for i, (bs, stats) in enumerate(sorted(artifact.latency.items())):
            first = [artifact.name, f"{artifact.kind}/{artifact.precision}", mib(artifact.size_bytes)]
            table.add_row(*(first if i == 0 else ["", "", ""]), str(bs), ms(stats.p50_ms), ms(stats.p99_ms),
                          f"{stats.throughput:.1f}", speedup_text(report, artifact, bs))
    return table


def summary_table(report: ValidationReport) -> Any:
    """A rich ``Table`` of the report (untitled: ``title`` is printed above it, on one line
    however narrow the table): every batch size measured, one row each.

    Args:
        report: the validation report.
    """
    return bench_table(report) if is_bench(report) else validate_table(report)


def problem_lines(report: ValidationReport) -> list[tuple[str, str]]:
    """(label, text) for every failure and every inconclusive measurement, failures first.

    A measurement that an inconclusive gate failure already names is not repeated.

    Args:
        report: the validation report.
    """
    lines: list[tuple[str, str]] = []
    covered: set[tuple[str | None, int | None]] = set()
    for f in report.failures:
        lines.append(("FAIL" if f.conclusive else "INCONCLUSIVE", f.line()))
        if not f.conclusive:
            covered.add((f.artifact, f.batch_size))
    for artifact in report.artifacts:
        for bs, stats in sorted(artifact.latency.items()):
            if not stats.conclusive and (artifact.name, bs) not in covered:
                lines.append(("INCONCLUSIVE", f"{artifact.name}: latency at batch {bs}: {stats.reason}"))
    for bs, stats in sorted(report.reference_latency.items()):
        if not stats.conclusive:
            lines.append(("INCONCLUSIVE", f"eager-fp32: latency at batch {bs}: {stats.reason}"))
    return lines


def print_summary(report: ValidationReport, console: Any = None, *, max_lines: int = MAX_LINES) -> None:
    """Print the table, then the failures and inconclusive measurements one per line (then how many
    more the report holds), localisation results and the head-only latency.

    Args:
        report: the validation report.
        console: a rich ``Console`` (default None: a new one, on stdout).
        max_lines: how many problem lines to print (default ``MAX_LINES``).
    """
    from rich.console import Console
    from rich.markup import escape

    console = console or Console()
    console.print(escape(title(report)), soft_wrap=True)
    console.print(summary_table(report))
    colour = {"FAIL": "red", "INCONCLUSIVE": "yellow"}
    problems = problem_lines(report)
    for label, text in problems[:max_lines]:
        console.print(f"[{colour[label]}]{label}[/] {escape(text)}", soft_wrap=True)
    if len(problems) > max_lines:
        console.print(f"... {len(problems) - max_lines} more (see the report)")
    if timing := timing_line(report):
        console.print(escape(timing), soft_wrap=True)
    if warning := inputs_line(report):
        console.print(f"[yellow]NOTE[/] {escape(warning)}", soft_wrap=True)
    for artifact in report.artifacts:
        loc = artifact.parity.localisation if artifact.parity is not None else None
        if loc:
            console.print(
                f"[cyan]LOCALISE[/] {escape(artifact.name)}: {escape(loc['status'])}: "
                f"{escape(loc.get('reason', ''))}",
                soft_wrap=True,
            )
    for artifact in report.artifacts:
        if artifact.int8_search:
            console.print(f"[cyan]INT8[/] {escape(artifact.name)}: {escape(int8_line(artifact.int8_search))}",
                          soft_wrap=True)
    head = report.head_latency
    if head:
        for row in head["batches"]:
            ratio = row.get("new_over_old")
            why = head_note(report, row)
            console.print(
                escape(
                    f"head '{head['module']}' batch {row['batch_size']}: "
                    f"old p50 {ms(row['old_head']['p50_ms'])} ms, new p50 {ms(row['new_head']['p50_ms'])} ms"
                    + (f" ({ratio:.2f}× old)" if ratio else "")
                )
                + (f" [yellow]({escape(why)})[/]" if why else ""),
                soft_wrap=True,
            )


def int8_line(search: dict[str, Any]) -> str:
    """One line of an accuracy-aware INT8 decision: what was chosen, nodes in fp32 and why,
    agreement per slice, latency against fp32 and all-INT8.

    Args:
        search: the decision's JSON (``Int8Decision.to_json``).
    """
    from collections import Counter

    reasons = Counter(n["reason"] for n in search.get("fp32_nodes", []))
    agree = ", ".join(f"{k} {v:.1%}" for k, v in search.get("agreement", {}).items())
    lat = search.get("latency_ms", {})
    why = ", ".join(f"{n} for {r}" for r, n in reasons.items()) or "none"
    head = search.get("head", {})
    return (
        f"chose {search.get('chosen')} (target {search.get('targets', {}).get('min_agreement')}); "
        f"nodes in fp32: {why}; "
        f"head {'INT8' if head.get('quantized') else 'fp32'}; agreement {agree}; batch-1 ms: chosen "
        f"{lat.get('chosen')}, all-INT8 {lat.get('all_int8')}, fp32 {lat.get('fp32')}"
    )
