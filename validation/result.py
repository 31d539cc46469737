"""The records a validation produces: ``ArtifactResult`` per artifact, ``ValidationReport``, and
the run's two ``Verdict``s (parity, latency) that every report headlines.

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


@dataclasses.dataclass(frozen=True)
class Verdict:
    """One check's verdict over the whole run: parity and latency are judged apart, so that a
    noisy machine never headlines a run whose parity passed.

    ``check``: ``parity`` | ``latency``. ``status``: ``pass`` | ``fail`` | ``inconclusive`` |
    ``skipped``. ``blocking``: this verdict makes the run fail (exit 1): a failure, or a latency
    gate that a noisy measurement could not decide; noise without a gate is not blocking.
    ``reason``: a few words, empty on a clean pass.
    """

    check: str
    status: str
    blocking: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return not self.blocking

    def text(self) -> str:
        """``parity PASS``, ``latency FAIL (...)``, ``latency inconclusive (noisy machine: ...)``:
        capitals for what decides the exit code, lower case for what does not."""
        if self.status == "skipped":
            word = "not checked" if self.check == "parity" else "not measured"
        elif self.status == "inconclusive" and not self.blocking:
            word = "inconclusive"
        else:
            word = self.status.upper()
        return f"{self.check} {word}" + (f" ({self.reason})" if self.reason else "")

    def to_json(self) -> dict[str, Any]:
        return {"check": self.check, "status": self.status, "blocking": self.blocking, "reason": self.reason,
                "text": self.text()}


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
    #: an accuracy-aware INT8 export's decision (``converters.int8.record.Int8Decision.to_json``)
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

    def agreement(self, slice_name: str = "all") -> float | None:
        """Top-1 agreement with eager on one class slice: the lowest over batch sizes, a fraction in
        [0, 1]; ``None`` when parity was not checked.

        The same images for every slice; ``kept``/``new`` compare the arg-max within the slice's
        classes only, so ``kept`` can be below ``all``. It is agreement with the eager model,
        never accuracy against labels.

        Args:
            slice_name: ``all`` (the default), ``kept`` or ``new``.
        """
        if self.parity is None:
            return None
        found = [r.metrics.top1 for b in self.parity.batches for r in b.results if r.slice.name == slice_name]
        found = [v for v in found if not math.isnan(v)]
        return min(found) if found else None

    @property
    def agreements(self) -> dict[str, float]:
        """``agreement`` of every slice that was checked, keyed ``all``/``kept``/``new``."""
        batches = self.parity.batches if self.parity is not None else []  # a failed ParityResult is falsy
        names = dict.fromkeys(r.slice.name for b in batches for r in b.results)
        return {name: value for name in names if (value := self.agreement(name)) is not None}

    def latency_reason(self, batch_size: int) -> str:
        """Why the latency at ``batch_size`` is inconclusive, in words (empty when it is not).

        Args:
            batch_size: the batch size.
        """
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
            # lowest over batch sizes, per slice: the figure every report prints, with its slice
            "top1_agreement": self.agreements,
            "latency": {str(bs): s.to_json(samples=True) for bs, s in self.latency.items()},
            "speedup": {str(bs): v for bs, v in self.speedup.items()},
            "cold_start": self.cold_start,
            "gate_failures": [f.to_json() for f in self.gate_failures],
            "int8_search": self.int8_search,
        }


@dataclasses.dataclass
class ValidationReport:
    """The whole run: model, environment, settings, eager reference latency, head latency, one
    ``ArtifactResult`` per artifact, gates and timing (``wall_s``, ``model_s``, ``overhead_s``).

    ``settings`` and ``gates`` are the run's ``ValidateSettings`` serialised (``to_json``,
    ``gates_json``; ``ValidateSettings.from_json`` reads them back)."""

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
        """Both checks in one word (``fail`` > ``inconclusive`` > ``pass``), kept for readers of
        the JSON ``status``; what to show is ``headline`` (parity and latency apart)."""
        states = {a.status for a in self.artifacts}
        if "fail" in states:
            return "fail"
        if "inconclusive" in states:
            return "inconclusive"
        return "pass"

    @property
    def failures(self) -> list[Failure]:
        return [f for a in self.artifacts for f in a.failures]

    @property
    def parity_verdict(self) -> Verdict:
        """``fail`` when any artifact's parity failed, ``pass`` when every checked one passed,
        ``skipped`` when none was checked (a bench)."""
        checked = [a for a in self.artifacts if a.parity is not None]
        failed = [a.name for a in checked if a.parity_status == "fail"]
        if not checked:
            return Verdict("parity", "skipped", blocking=False)
        if failed:
            return Verdict("parity", "fail", blocking=True, reason=f"{listing(failed, limit=3)} of {len(checked)}")
        return Verdict("parity", "pass", blocking=False)

    @property
    def latency_verdict(self) -> Verdict:
        """``fail`` when a latency gate failed; ``inconclusive`` when a measurement (an artifact's,
        the eager reference's or the head-only old/new head's) was too noisy, blocking only when a
        gate met it; ``skipped`` when nothing was timed; else ``pass``."""
        stats = [*self.reference_latency.values(), *(s for a in self.artifacts for s in a.latency.values())]
        conclusive = [s.conclusive for s in stats]
        for row in (self.head_latency or {}).get("batches", []):
            heads = [row[k] for k in ("old_head", "new_head") if isinstance(row.get(k), dict)]
            conclusive += [head.get("status") == "ok" for head in heads]
        gates = [f for a in self.artifacts for f in a.gate_failures]
        if not conclusive:
            return Verdict("latency", "skipped", blocking=False)
        failed = [f for f in gates if f.conclusive]
        if failed:
            more = f" (+{len(failed) - 1} more)" if len(failed) > 1 else ""
            return Verdict("latency", "fail", blocking=True, reason=failed[0].message + more)
        noisy = conclusive.count(False)
        if noisy or gates:
            why = f"noisy machine: {noisy} of {len(conclusive)} measurements too noisy"
            if gates:
                return Verdict("latency", "inconclusive", blocking=True, reason=f"{why}; a latency gate could "
                               "not be decided, which fails it")
            return Verdict("latency", "inconclusive", blocking=False, reason=why)
        return Verdict("latency", "pass", blocking=False)

    @property
    def verdicts(self) -> tuple[Verdict, Verdict]:
        return self.parity_verdict, self.latency_verdict

    @property
    def headline(self) -> str:
        """``parity PASS · latency inconclusive (noisy machine: 6 of 6 measurements too noisy)``."""
        return " · ".join(v.text() for v in self.verdicts)

    def raise_for_status(self, reports: Mapping[str, Any] | None = None) -> None:
        """Raise ``GateFailedError`` (exit 1) if parity failed or a latency gate failed or was
        inconclusive; the one-line message names the first failure and how many there are.

        Args:
            reports: the reports written (kind -> path, as ``write_reports`` returns them), named in the
                hint (default None).
        """
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
                "parity_verdict": self.parity_verdict.to_json(),
                "latency_verdict": self.latency_verdict.to_json(),
                "headline": self.headline,
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
    """Make ``value`` strict JSON: non-finite floats become ``"nan"``/``"inf"``/``"-inf"``, tuples lists.

    Args:
        value: a JSON-like value (dicts, lists, tuples, floats, NumPy scalars).
    """
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
