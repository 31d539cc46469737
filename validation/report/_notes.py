"""Why a latency number cannot be trusted, in words, from the measurements' fields.

A measurement is inconclusive when ``LatencyStats.conclusive`` is False (its coefficient of
variation exceeded ``max_cv``); a speed-up is inconclusive when either side of the ratio is.
Every report shows these notes beside the number, so a noisy speed-up never reads as a result.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from validation.latency import TIMERS, LatencyStats
from validation.report._format import times
from validation.result import ArtifactResult, ValidationReport

#: (who, cv, conclusive): one measurement behind a number; ``who`` is empty for the row's own
Measurement = tuple[str, float, bool]


def max_cv(report: ValidationReport) -> float | None:
    """The CV bound the run used (``None`` when latency was not measured).

    Args:
        report: the validation report.
    """
    latency = report.settings.get("latency")
    return float(latency["max_cv"]) if isinstance(latency, Mapping) and "max_cv" in latency else None


def note(measurements: Iterable[Measurement], bound: float | None) -> str:
    """``inconclusive: CV 0.31 > 0.25`` naming each noisy measurement; empty when all are conclusive.

    Args:
        measurements: (who, cv, conclusive) of each measurement behind the number.
        bound: the CV bound, named when known (or None).
    """
    limit = f" > {bound:.2f}" if bound is not None else ""
    noisy = [f"{who + ' ' if who else ''}CV {cv:.2f}{limit}" for who, cv, ok in measurements if not ok]
    return "inconclusive: " + ", ".join(noisy) if noisy else ""


def _own(stats: LatencyStats | None) -> list[Measurement]:
    return [] if stats is None else [("", stats.cv, stats.conclusive)]


def latency_note(report: ValidationReport, stats: LatencyStats | None) -> str:
    """The note for one measurement (an artifact's or the eager reference's).

    Args:
        report: the validation report.
        stats: the measurement, or None.
    """
    return note(_own(stats), max_cv(report))


def speedup_note(report: ValidationReport, artifact: ArtifactResult, batch_size: int) -> str:
    """The note for ``artifact``'s speed-up at ``batch_size``: its own noise and the eager reference's.

    Args:
        report: the validation report.
        artifact: the artifact's result.
        batch_size: the batch size.
    """
    ref = report.reference_latency.get(batch_size)
    eager = [] if ref is None else [("eager", ref.cv, ref.conclusive)]
    return note([*_own(artifact.latency.get(batch_size)), *eager], max_cv(report))


def speedup_text(report: ValidationReport, artifact: ArtifactResult, batch_size: int) -> str:
    """``19.58×``, or ``19.58× (inconclusive: CV 0.31 > 0.25)`` when either side was too noisy.

    Args:
        report: the validation report.
        artifact: the artifact's result.
        batch_size: the batch size.
    """
    text = times(artifact.speedup.get(batch_size))
    why = speedup_note(report, artifact, batch_size)
    return f"{text} ({why})" if why else text


def head_note(report: ValidationReport, row: Mapping[str, Any]) -> str:
    """The note for one batch size of the head-only table.

    Args:
        report: the validation report.
        row: a ``validation.head`` row: the old and the new head's latency, each with ``status`` and ``cv``.
    """
    parts = [
        (label, float(row[key]["cv"]), row[key]["status"] == "ok")
        for key, label in (("old_head", "old head"), ("new_head", "new head"))
        if isinstance(row.get(key), Mapping)
    ]
    return note(parts, max_cv(report))


def head_reasons(row: Mapping[str, Any]) -> list[str]:
    """The full reasons (``LatencyStats.reason``) of the head row's noisy measurements.

    Args:
        row: a ``validation.head`` row.
    """
    return [
        f"{label}: {row[key]['reason']}"
        for key, label in (("old_head", "old head"), ("new_head", "new head"))
        if isinstance(row.get(key), Mapping) and row[key]["status"] != "ok"
    ]


def timing_line(report: ValidationReport) -> str:
    """``latency timed by: host clock around ... (eager-fp32, model.onnx); CUDA events ... (model.engine)``:
    how each runner's latency was measured (``LatencyStats.timer``); empty when none was.

    Args:
        report: the validation report.
    """
    by_timer: dict[str, list[str]] = {}
    runners = [("eager-fp32", report.reference_latency), *((a.name, a.latency) for a in report.artifacts)]
    for name, latency in runners:
        for timer in dict.fromkeys(s.timer for s in latency.values()):
            by_timer.setdefault(timer, []).append(name)
    parts = [f"{TIMERS.get(timer, timer)} ({', '.join(names)})" for timer, names in by_timer.items()]
    return "latency timed by: " + "; ".join(parts) if parts else ""


def inputs_line(report: ValidationReport) -> str:
    """The run's warning about its parity inputs (``parity inputs: random only (...)``), or empty.

    Args:
        report: the validation report.
    """
    return str(report.inputs.get("warning") or "")
