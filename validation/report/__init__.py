"""Reports of a validation: console table, JSON (versioned schema), JUnit XML, self-contained HTML.

Every writer reads the records' fields (``Failure``, ``LatencyStats.conclusive``, the artifact's
statuses), never their message text. ``speedup_text`` is the one way to show a speed-up: with its
"inconclusive" note whenever either measurement behind it was too noisy.

Public API (each name imported on first use; ``writers`` holds ``json_text`` and ``write_reports``)::

    write_reports(report, report_dir=..., json_path=..., junit_path=..., overwrite=...)
    json_text(report) -> str
    speedup_text(report, artifact, batch_size) -> str
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from toolkit._lazy import lazy_exports

if TYPE_CHECKING:
    from validation.report._notes import speedup_text as speedup_text
    from validation.report.writers import json_text as json_text
    from validation.report.writers import write_reports as write_reports

_EXPORTS = {
    "speedup_text": "validation.report._notes",
    "json_text": "validation.report.writers",
    "write_reports": "validation.report.writers",
}

__all__ = list(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS, globals())
