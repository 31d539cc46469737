"""The records a validation produces: ``ArtifactResult`` per artifact and ``ValidationReport``.

``ValidationReport.to_json()`` follows the versioned schema ``rehead.validation/1`` (see
docs/validation.md); non-finite floats are written as the strings ``"nan"``, ``"inf"``, ``"-inf"``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from converters.compare import Failure, ParityResult
from toolkit._text import listing
from toolkit.errors import GateFailedError
from validation.latency import LatencyStats

SCHEMA = "rehead.validation/1"
SCHEMA_VERSION = 1


@dataclasses.dataclass
class ArtifactResult:
    """Everything measured for one artifact (or eager variant).

    ``latency``/``speedup`` are keyed by batch size; ``speedup`` = eager p50 / artifact p50.
    ``gate_failures`` lists latency gates that failed or could not be decided
    (``Failure.conclusive`` False).
    """

    name: str
    path: str | None
    kind: str
    precision: str
    device: str
    size_bytes: int
    preset: str | None
    parity: ParityResult | None = None
    latency: dict[int, LatencyStats] = dataclasses.field(default_factory=dict)
    speedup: dict[int, float | None] = dataclasses.field(default_factory=dict)
    cold_start: dict[str, float] | None = None
    gate_failures: list[Failure] = dataclasses.field(default_factory=list)
    #: an accuracy-aware INT8 export's decision (``converters.int8_record.Int8Decision.to_json``)
    int8_search: dict[str, Any] | None = None

    @property
    def parity_status(self) -> str:
        if self.parity is None:
            return "skipped"
        return "pass" if self.parity.passed else "fail"

    @property
    def latency_status(self) -> str:
        if not self.latency:
            return "skipped"
        if any(f.conclusive for f in self.gate_failures):
            return "fail"
        if any(not s.conclusive for s in self.latency.values()):
            return "inconclusive"
        return "pass"

    @property
    def status(self) -> str:
        """``fail`` (parity or a latency gate failed), ``inconclusive`` (noisy latency), else ``pass``."""
        if self.parity_status == "fail" or self.latency_status == "fail":
            return "fail"
        if self.latency_status == "inconclusive" or self.gate_failures:
            return "inconclusive"
        return "pass"

    @property
    def failures(self) -> list[Failure]:
        """Parity failures, then latency gate failures (inconclusive ones included), each with
        ``artifact`` set to this artifact's name."""
        found = list(self.parity.failures) if self.parity is not None else []
        return [f.replace(artifact=self.name) for f in [*found, *self.gate_failures]]

    def latency_reason(self, batch_size: int) -> str:
        """Why the latency at ``batch_size`` is inconclusive, in words (empty when it is not)."""
        stats = self.latency.get(batch_size)
        return "" if stats is None or stats.conclusive else (stats.reason or "too noisy to decide")

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            "kind": self.kind,
            "precision": self.precision,
            "device": self.device,
            "size_bytes": self.size_bytes,
            "preset": self.preset,
            "status": self.status,
            "parity_status": self.parity_status,
            "latency_status": self.latency_status,
            "parity": self.parity.to_json() if self.parity is not None else None,
            "latency": {str(bs): s.to_json(samples=True) for bs, s in self.latency.items()},
            "speedup": {str(bs): v for bs, v in self.speedup.items()},
            "cold_start": self.cold_start,
            "gate_failures": [f.to_json() for f in self.gate_failures],
            "int8_search": self.int8_search,
        }


@dataclasses.dataclass
class ValidationReport:
    """The whole run: model, environment, settings, eager reference latency, head latency, one
    ``ArtifactResult`` per artifact, gates and timing (``wall_s``, ``model_s``, ``overhead_s``)."""

    created: str
    model: dict[str, Any]
    environment: dict[str, Any]
    settings: dict[str, Any]
    inputs: dict[str, Any]
    reference_latency: dict[int, LatencyStats]
    head_latency: dict[str, Any] | None
    artifacts: list[ArtifactResult]
    gates: dict[str, Any]
    timing: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def status(self) -> str:
        states = {a.status for a in self.artifacts}
        if "fail" in states:
            return "fail"
        if "inconclusive" in states:
            return "inconclusive"
        return "pass"

    @property
    def failures(self) -> list[Failure]:
        return [f for a in self.artifacts for f in a.failures]

    def raise_for_status(self, reports: Mapping[str, Any] | None = None) -> None:
        """Raise ``GateFailedError`` (exit 1) if parity failed or a latency gate failed or was
        inconclusive; the one-line message names the first failure and how many there are.
        ``reports`` (kind -> path, as ``write_reports`` returns them) are named in the hint."""
        failures = self.failures
        if not failures:
            return
        failed = [a.name for a in self.artifacts if a.status != "pass"]
        more = f" (+{len(failures) - 1} more)" if len(failures) > 1 else ""
        first = failures[0].line() if len(failed) > 1 else failures[0].message
        raise GateFailedError(
            f"validation failed for {listing(failed, limit=3)}: {first}{more}",
            hint=f"open {listing([str(p) for p in reports.values()], limit=3)} for every failure with its numbers"
            if reports
            else "write a report (report_dir=DIR or json_path=FILE) for every failure with its numbers",
        )

    def to_json(self) -> dict[str, Any]:
        return clean_json(
            {
                "schema": SCHEMA,
                "schema_version": SCHEMA_VERSION,
                "created": self.created,
                "status": self.status,
                "failures": [f.to_json() for f in self.failures],
                "model": self.model,
                "environment": self.environment,
                "settings": self.settings,
                "inputs": self.inputs,
                "reference": {
                    "name": "eager-fp32",
                    "latency": {str(bs): s.to_json(samples=True) for bs, s in self.reference_latency.items()},
                },
                "head_latency": self.head_latency,
                "artifacts": [a.to_json() for a in self.artifacts],
                "gates": self.gates,
                "timing": self.timing,
            }
        )


def clean_json(value: Any) -> Any:
    """Make ``value`` strict JSON: non-finite floats become ``"nan"``/``"inf"``/``"-inf"``, tuples lists."""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, dict):
        return {str(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_json(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # NumPy scalars
        return clean_json(value.item())
    return value
