"""rehead's validation: parity and latency of exported artifacts against the eager model.

Public API::

    validate(model_dir, artifacts, ...) -> ValidationReport
    bench(model_dir, artifacts, ...) -> ValidationReport
    write_reports(report, report_dir=..., json_path=..., junit_path=..., overwrite=...)
    assert_parity(model_dir, artifact, ...)   # for users' own test suites

At run time each name is imported on first use: pytest loads this package's plugin in every
session of a project where rehead is installed, and that must not import torch or ONNX
Runtime. The ``TYPE_CHECKING`` block names the same imports (``x as x``: an explicit re-export) for
readers and type checkers; a test keeps the two lists equal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from toolkit._lazy import lazy_exports

if TYPE_CHECKING:
    from converters.compare import PRESETS as PRESETS
    from converters.compare import ParityResult as ParityResult
    from converters.compare import Tolerance as Tolerance
    from converters.runners.base import Runner as Runner
    from converters.runners.registry import open_runner as open_runner
    from converters.runners.registry import register_runner as register_runner
    from validation.assertions import assert_parity as assert_parity
    from validation.latency import LatencySettings as LatencySettings
    from validation.latency import LatencyStats as LatencyStats
    from validation.report import write_reports as write_reports
    from validation.result import ArtifactResult as ArtifactResult
    from validation.result import ValidationReport as ValidationReport
    from validation.suite import bench as bench
    from validation.suite import validate as validate

_EXPORTS = {
    "validate": "validation.suite",
    "bench": "validation.suite",
    "ValidationReport": "validation.result",
    "ArtifactResult": "validation.result",
    # the one comparison layer lives below validation, in converters.compare
    "ParityResult": "converters.compare",
    "Tolerance": "converters.compare",
    "PRESETS": "converters.compare",
    "LatencySettings": "validation.latency",
    "LatencyStats": "validation.latency",
    "Runner": "converters.runners.base",
    "open_runner": "converters.runners.registry",
    "register_runner": "converters.runners.registry",
    "write_reports": "validation.report",
    "assert_parity": "validation.assertions",
}

__all__ = list(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS, globals())
