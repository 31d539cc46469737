"""rehead's validation: parity and latency of exported artifacts against the eager model.

Public API (imported lazily so that ``import validation`` stays cheap)::

    validate(model_dir, artifacts, ...) -> ValidationReport
    bench(model_dir, artifacts, ...) -> ValidationReport
    write_reports(report, report_dir=..., json_path=..., junit_path=..., overwrite=...)
    assert_parity(model_dir, artifact, ...)   # for users' own test suites
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "validate": "validation.suite",
    "bench": "validation.suite",
    "ValidationReport": "validation.result",
    "ArtifactResult": "validation.result",
    "ParityResult": "validation.parity",
    "Tolerance": "validation.tolerance",
    "PRESETS": "validation.tolerance",
    "LatencySettings": "validation.latency",
    "LatencyStats": "validation.latency",
    "Runner": "validation.runners.base",
    "open_runner": "validation.runners.registry",
    "register_runner": "validation.runners.registry",
    "write_reports": "validation.report",
    "assert_parity": "validation.assertions",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'validation' has no attribute '{name}'")
