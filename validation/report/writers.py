"""Writing a validation's reports: the JSON text, and every asked-for report written atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path

from toolkit import _atomic
from validation.result import ValidationReport


def json_text(report: ValidationReport) -> str:
    """The JSON report (schema ``rehead.validation/1``): strict JSON, indented, one trailing newline.

    Args:
        report: the validation report.
    """
    return json.dumps(report.to_json(), indent=2, allow_nan=False) + "\n"


def write_reports(
    report: ValidationReport,
    *,
    report_dir: str | os.PathLike[str] | None = None,
    json_path: str | os.PathLike[str] | None = None,
    junit_path: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
) -> dict[str, Path]:
    """Write the asked-for reports atomically; returns what was written (kind -> path).

    Every output is checked before anything is written, so a refusal leaves nothing behind.

    Args:
        report: the validation's report.
        report_dir: a folder that gets ``report.html``, ``report.json`` and ``junit.xml`` (built
            in a staging folder and moved into place in one rename); default None: none.
        json_path: where to write the JSON report (default None: nowhere).
        junit_path: where to write the JUnit XML report (default None: nowhere).
        overwrite: replace existing outputs (default False: an existing one is refused with
            ``OutputExistsError``, exit 2, before any work).
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
