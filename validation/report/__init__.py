"""Reports of a validation: console table, JSON (versioned schema), JUnit XML, self-contained HTML.

Every writer reads the records' fields (``Failure``, ``LatencyStats.conclusive``, the artifact's
statuses), never their message text. ``speedup_text`` is the one way to show a speed-up: with its
"inconclusive" note whenever either measurement behind it was too noisy.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from toolkit import _atomic
from validation.report._notes import speedup_text
from validation.result import ValidationReport


def json_text(report: ValidationReport) -> str:
    return json.dumps(report.to_json(), indent=2, allow_nan=False) + "\n"


def write_reports(
    report: ValidationReport,
    *,
    report_dir: str | os.PathLike[str] | None = None,
    json_path: str | os.PathLike[str] | None = None,
    junit_path: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
) -> dict[str, Path]:
    """Write the asked-for reports atomically; returns what was written.

    ``report_dir`` gets ``report.html``, ``report.json`` and ``junit.xml`` (built in a staging
    folder and moved into place in one rename). Existing outputs are refused unless ``overwrite``.
    Every output is checked before anything is written, so a refusal leaves nothing behind.
    """
    from validation.report.html import render_html
    from validation.report.junit import junit_xml

    targets = [p for p in (report_dir, json_path, junit_path) if p is not None]
    for target in targets:
        _atomic.check_output(target, overwrite=overwrite)
    written: dict[str, Path] = {}
    if report_dir is not None:
        with _atomic.output_dir(report_dir, overwrite=overwrite) as stage:
            (stage / "report.html").write_text(render_html(report), encoding="utf-8")
            (stage / "report.json").write_text(json_text(report), encoding="utf-8")
            (stage / "junit.xml").write_text(junit_xml(report), encoding="utf-8")
        written["html"] = Path(report_dir) / "report.html"
    if json_path is not None:
        written["json"] = _atomic.write_text(json_path, json_text(report), overwrite=overwrite)
    if junit_path is not None:
        written["junit"] = _atomic.write_text(junit_path, junit_xml(report), overwrite=overwrite)
    return written


__all__ = ["json_text", "speedup_text", "write_reports"]
