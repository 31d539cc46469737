"""The validation report as packaging reads it, and the parity certificate a bundle records.

``ValidationRecord.from_json`` reads a JSON report of ``validate`` (schema ``rehead.validation/1``,
as ``rehead validate --json`` writes it and ``ValidationReport.to_json`` returns it) into frozen
records: a ``ReportArtifact`` per artifact with its ``ReportParity`` (batches, slices) and
``ReportLatency`` per batch size. ``Certificate`` is what ``package`` keeps of one artifact's
entry in the manifest (``BundleArtifact.certificate``), ``agreement_text`` how it is shown.

Figures are carried as the report wrote them (a number, or ``"nan"``/``"inf"`` as a string), and
measured metrics, tolerances, failures, settings and inputs pass through as the report's JSON
objects, so that a manifest says exactly what the report said. This module imports no
``validation`` module: a bundle is read, shown and run without the validation stack.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from toolkit.errors import InvalidArgumentError

#: the schema of the JSON report of ``validate`` (``validation.result.SCHEMA``)
REPORT_SCHEMA = "rehead.validation/1"
#: the latency figures a manifest keeps per batch size, in this order (then the speed-up)
_LATENCY_KEYS = ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "throughput", "runs", "status")


def _number(value: Any) -> float | None:
    """``value`` when the report holds a number there (a ``"nan"`` string or nothing is None)."""
    return value if isinstance(value, (int, float)) else None


def _worst(values: Iterable[float | None], *, lowest: bool) -> float | None:
    numbers = [v for v in values if v is not None]
    if not numbers:
        return None
    return min(numbers) if lowest else max(numbers)


def _mappings(value: Any, what: str) -> tuple[Mapping[str, Any], ...]:
    """A JSON list of objects as a tuple (missing is empty); ``TypeError`` for anything else."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise TypeError(f"{what} is not a list of JSON objects")
    return tuple(value)


@dataclasses.dataclass(frozen=True)
class ReportSlice:
    """One output's class slice at one batch size: ``slice_name`` ``all`` | ``kept`` | ``new``,
    its class ``indices``, ``passed``, and the measured ``metrics`` (``top1``, ``max_abs``, ...)."""

    output: str | None
    slice_name: str | None
    indices: Any
    passed: bool | None
    metrics: Mapping[str, Any]

    @property
    def top1(self) -> float | None:
        """Top-1 agreement with eager on this slice, a fraction (None when not a number)."""
        return _number(self.metrics.get("top1"))

    @property
    def max_abs(self) -> float | None:
        """The largest absolute error on this slice (None when not a number)."""
        return _number(self.metrics.get("max_abs"))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReportSlice:
        """Read one entry of a batch's ``slices``.

        Args:
            data: the entry as the report wrote it (``output``, ``slice``, ``indices``, ``passed``,
                ``metrics``).
        """
        metrics = data.get("metrics", {})
        if not isinstance(metrics, Mapping):
            raise TypeError(f"the metrics of slice {data.get('slice')!r} are not a JSON object")
        return cls(data.get("output"), data.get("slice"), data.get("indices"), data.get("passed"), metrics)

    def to_json(self) -> dict[str, Any]:
        """The slice as a certificate records it (the report's violations and failures left out)."""
        return {
            "output": self.output,
            "slice": self.slice_name,
            "indices": self.indices,
            "passed": self.passed,
            "metrics": self.metrics,
        }


@dataclasses.dataclass(frozen=True)
class ReportBatch:
    """Parity at one batch size: whether it ``passed`` and its ``slices``."""

    batch_size: int | None
    passed: bool | None
    slices: tuple[ReportSlice, ...]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReportBatch:
        """Read one entry of an artifact's parity ``batches``.

        Args:
            data: the entry as the report wrote it (``batch_size``, ``passed``, ``slices``).
        """
        slices = _mappings(data.get("slices", []), "a batch's slices")
        return cls(data.get("batch_size"), data.get("passed"), tuple(ReportSlice.from_json(s) for s in slices))

    def to_json(self) -> dict[str, Any]:
        """The batch as a certificate records it (the per-class errors left out)."""
        return {"batch_size": self.batch_size, "passed": self.passed, "slices": [s.to_json() for s in self.slices]}


@dataclasses.dataclass(frozen=True)
class ReportParity:
    """One artifact's parity result: the ``tolerance`` it was judged by (the report's JSON), its
    ``batches`` and its ``failures`` (each the report's JSON object)."""

    tolerance: Mapping[str, Any] | None = None
    batches: tuple[ReportBatch, ...] = ()
    failures: tuple[Mapping[str, Any], ...] = ()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReportParity:
        """Read an artifact's ``parity``.

        Args:
            data: the object as the report wrote it (``tolerance``, ``batches``, ``failures``).
        """
        batches = _mappings(data.get("batches", []), "the parity batches")
        return cls(
            tolerance=data.get("tolerance"),
            batches=tuple(ReportBatch.from_json(b) for b in batches),
            failures=_mappings(data.get("failures", []), "the parity failures"),
        )


@dataclasses.dataclass(frozen=True)
class ReportLatency:
    """One batch size's latency summary: percentiles and mean in milliseconds, ``throughput``
    (images per second), ``runs`` and ``status``, as the report wrote them."""

    p50_ms: float | str | None = None
    p90_ms: float | str | None = None
    p99_ms: float | str | None = None
    mean_ms: float | str | None = None
    throughput: float | str | None = None
    runs: int | None = None
    status: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReportLatency:
        """Read one batch size's ``latency`` entry.

        Args:
            data: the statistics as the report wrote them (other keys, such as the samples, are left out).
        """
        return cls(**{key: data.get(key) for key in _LATENCY_KEYS})

    def summary(self, speedup: Any) -> dict[str, Any]:
        """The manifest's latency entry: these figures and the ``speedup`` over eager.

        Args:
            speedup: eager p50 / this artifact's p50 at the same batch size, as the report wrote it.
        """
        return {key: getattr(self, key) for key in _LATENCY_KEYS} | {"speedup": speedup}


@dataclasses.dataclass(frozen=True)
class ReportArtifact:
    """One artifact's entry in the report.

    ``path``/``sha256``/``size_bytes``: the file that was validated (reports record the size;
    ``sha256`` only where a report holds it); ``status``, ``parity_status``, ``latency_status``:
    ``pass`` | ``fail`` | ``inconclusive`` | ``skipped``; ``parity``: None when parity was not
    checked; ``latency`` and ``speedup``: keyed by batch size as a string; ``gate_failures``:
    the latency gates that failed or could not be decided.
    """

    path: str | None
    sha256: str | None
    size_bytes: int | None
    precision: str
    preset: str | None
    device: str | None
    status: str | None
    parity_status: str | None
    latency_status: str | None
    parity: ReportParity | None
    latency: Mapping[str, ReportLatency]
    speedup: Mapping[str, Any]
    gate_failures: tuple[Mapping[str, Any], ...] = ()
    failures: tuple[Mapping[str, Any], ...] = ()

    @property
    def passed(self) -> bool:
        """Parity passed and no latency gate failed (noise alone makes latency inconclusive, not failed)."""
        return self.parity_status == "pass" and self.latency_status != "fail"

    @property
    def reason(self) -> Any:
        """Why it did not pass, in the words of its first failure (else its status)."""
        first = (self.failures or self.gate_failures or ({},))[0]
        return first.get("message", self.status)

    def latency_summary(self) -> dict[str, Any]:
        """Per batch size: p50/p90/p99/mean ms, throughput, runs, status, speed-up over eager."""
        return {size: stats.summary(self.speedup.get(size)) for size, stats in self.latency.items()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReportArtifact:
        """Read one entry of the report's ``artifacts``; ``TypeError`` when it is malformed.

        Args:
            data: the entry as the report wrote it.
        """
        parity = data.get("parity")
        if parity and not isinstance(parity, Mapping):
            raise TypeError("the parity result is not a JSON object")
        latency = data.get("latency") or {}
        if not isinstance(latency, Mapping) or not all(isinstance(s, Mapping) for s in latency.values()):
            raise TypeError("the latency is not a JSON object of JSON objects")
        speedup = data.get("speedup") or {}
        if not isinstance(speedup, Mapping):
            raise TypeError("the speed-up is not a JSON object")
        return cls(
            path=str(data["path"]) if data.get("path") else None,
            sha256=data.get("sha256"),
            size_bytes=data.get("size_bytes"),
            precision=str(data.get("precision", "fp32")),
            preset=data.get("preset"),
            device=data.get("device"),
            status=data.get("status"),
            parity_status=data.get("parity_status"),
            latency_status=data.get("latency_status"),
            parity=ReportParity.from_json(parity) if parity else None,
            latency={str(size): ReportLatency.from_json(stats) for size, stats in latency.items()},
            speedup=speedup,
            gate_failures=_mappings(data.get("gate_failures", []), "the gate failures"),
            failures=_mappings(data.get("failures"), "the failures"),
        )


@dataclasses.dataclass(frozen=True)
class ValidationRecord:
    """A JSON report of ``validate``, read: when it was ``created`` (ISO 8601), the sha256 of the
    weights it validated, the run's ``environment``, ``settings`` and ``inputs`` (its JSON
    objects), and one ``ReportArtifact`` per artifact, in the report's order."""

    created: str | None
    weights_sha256: str | None
    environment: Mapping[str, Any]
    settings: Any
    inputs: Any
    artifacts: tuple[ReportArtifact, ...]

    @property
    def created_at(self) -> float | None:
        """``created`` as a POSIX timestamp in seconds (None when the report has none)."""
        return datetime.datetime.fromisoformat(str(self.created)).timestamp() if self.created else None

    @property
    def reference(self) -> Any:
        """What the artifacts were compared against (the ``reference`` setting)."""
        return (self.settings or {}).get("reference")

    def match(self, artifact: Path) -> tuple[ReportArtifact | None, bool]:
        """The entry validating ``artifact`` and whether it names the same path: the same resolved
        path, else the only entry with the same file name (a report moved with its files).

        Args:
            artifact: the artifact file to find.
        """
        for entry in self.artifacts:
            if entry.path and Path(entry.path).resolve() == artifact.resolve():
                return entry, True
        named = [e for e in self.artifacts if e.path and Path(e.path).name == artifact.name]
        return (named[0], False) if len(named) == 1 else (None, False)

    @classmethod
    def from_json(cls, data: Any, *, source: str = "the validation report") -> ValidationRecord:
        """Read a report; ``InvalidArgumentError`` (exit 2, ``param='report'``) when it is not one.

        Args:
            data: the parsed JSON (``ValidationReport.to_json()`` or a ``--json`` file's content).
            source: how to name the report in a refusal (``"'report.json'"``).
        """
        if not isinstance(data, Mapping) or data.get("schema") != REPORT_SCHEMA:
            raise InvalidArgumentError(
                f"{source} is not a JSON validation report (schema {REPORT_SCHEMA})",
                hint="write one with rehead validate --json, or leave the report out to validate now",
                param="report",
            )
        if not isinstance(data.get("artifacts"), list):
            raise InvalidArgumentError("the validation report lists no artifacts", param="report")
        try:
            return cls(
                created=data.get("created"),
                weights_sha256=(data.get("model") or {}).get("weights_sha256"),
                environment=data.get("environment") or {},
                settings=data.get("settings"),
                inputs=data.get("inputs"),
                artifacts=tuple(ReportArtifact.from_json(a) for a in _mappings(data["artifacts"], "artifacts")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidArgumentError(f"{source} is malformed: {exc}", param="report") from exc


def load_report(path: Path) -> ValidationRecord:
    """Read a JSON report of ``validate`` from ``path``; ``InvalidArgumentError`` when it cannot be
    read or is not one.

    Args:
        path: the file ``rehead validate --json`` wrote.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidArgumentError(f"cannot read validation report '{path}': {exc}", param="report") from exc
    return ValidationRecord.from_json(data, source=f"'{path}'")


@dataclasses.dataclass(frozen=True)
class Certificate:
    """The parity certificate of one artifact, as the manifest records it.

    Top-1 agreement is with the eager model on the validation inputs (not accuracy against
    labels), the lowest over batch sizes: ``top1_agreement_by_slice`` per class slice (``all``,
    ``kept``, ``new``, the numbers ``rehead validate`` shows); ``top1_agreement`` the lowest of
    those, and ``top1_agreement_slice`` the slice it comes from (``all`` on a tie). The ``kept``
    and ``new`` slices compare the arg-max within their own classes, so they can differ from
    ``all``. ``max_abs``: the largest absolute error over every batch and slice. ``tolerance``,
    ``failures``, ``inputs`` and ``reference`` are the report's JSON.
    """

    status: str | None = None
    parity_status: str | None = None
    latency_status: str | None = None
    preset: str | None = None
    tolerance: Mapping[str, Any] | None = None
    top1_agreement: float | None = None
    top1_agreement_slice: str | None = None
    top1_agreement_by_slice: Mapping[str, float] = dataclasses.field(default_factory=dict)
    max_abs: float | None = None
    batches: tuple[ReportBatch, ...] = ()
    failures: tuple[Mapping[str, Any], ...] = ()
    device: str | None = None
    inputs: Any = None
    reference: Any = None

    @classmethod
    def of(cls, entry: ReportArtifact, report: ValidationRecord) -> Certificate:
        """The certificate of one artifact's entry in a report.

        Args:
            entry: the artifact's entry.
            report: the report holding it (for the inputs and the reference).
        """
        parity = entry.parity or ReportParity()
        results = [result for batch in parity.batches for result in batch.slices]
        by_slice: dict[str, list[float | None]] = {}
        for result in results:
            by_slice.setdefault(str(result.slice_name), []).append(result.top1)
        agreement = {name: low for name, values in by_slice.items() if (low := _worst(values, lowest=True)) is not None}
        return cls(
            status=entry.status,
            parity_status=entry.parity_status,
            latency_status=entry.latency_status,
            preset=entry.preset,
            tolerance=parity.tolerance,
            top1_agreement=_worst((r.top1 for r in results), lowest=True),
            top1_agreement_slice=min(agreement, key=agreement.__getitem__) if agreement else None,
            top1_agreement_by_slice=agreement,
            max_abs=_worst((r.max_abs for r in results), lowest=False),
            batches=parity.batches,
            failures=entry.gate_failures + parity.failures,
            device=entry.device,
            inputs=report.inputs,
            reference=report.reference,
        )

    def to_json(self) -> dict[str, Any]:
        """The manifest's ``certificate`` object."""
        return {
            "status": self.status,
            "parity_status": self.parity_status,
            "latency_status": self.latency_status,
            "preset": self.preset,
            "tolerance": self.tolerance,
            "top1_agreement": self.top1_agreement,
            "top1_agreement_slice": self.top1_agreement_slice,
            "top1_agreement_by_slice": dict(self.top1_agreement_by_slice),
            "max_abs": self.max_abs,
            "batches": [b.to_json() for b in self.batches],
            "failures": list(self.failures),
            "device": self.device,
            "inputs": self.inputs,
            "reference": self.reference,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Certificate:
        """Read a manifest's ``certificate``; one written before the per-slice figures existed has
        only ``top1_agreement`` (the lowest), and what it lacks is None or empty.

        Args:
            data: the certificate as the manifest holds it.
        """
        by_slice = data.get("top1_agreement_by_slice")
        return cls(
            status=data.get("status"),
            parity_status=data.get("parity_status"),
            latency_status=data.get("latency_status"),
            preset=data.get("preset"),
            tolerance=data.get("tolerance"),
            top1_agreement=_number(data.get("top1_agreement")),
            top1_agreement_slice=data.get("top1_agreement_slice"),
            top1_agreement_by_slice=dict(by_slice) if isinstance(by_slice, Mapping) else {},
            max_abs=_number(data.get("max_abs")),
            batches=tuple(ReportBatch.from_json(b) for b in _mappings(data.get("batches"), "the batches")),
            failures=_mappings(data.get("failures"), "the failures"),
            device=data.get("device"),
            inputs=data.get("inputs"),
            reference=data.get("reference"),
        )

    def agreement_text(self) -> str:
        """Its top-1 agreement, every figure named by its slice: ``top-1 agreement with eager:
        all classes 100.0%, kept 96.9%, new 100.0%``; with only the lowest figure (a manifest from
        before the per-slice figures): ``... 96.9% (lowest over all/kept/new classes)``."""
        if self.top1_agreement_by_slice:
            figures = ", ".join(
                f"{name}{' classes' if i == 0 else ''} {value:.1%}"
                for i, (name, value) in enumerate(self.top1_agreement_by_slice.items())
            )
            return f"top-1 agreement with eager: {figures}"
        if self.top1_agreement is not None:
            return f"top-1 agreement with eager: {self.top1_agreement:.1%} (lowest over all/kept/new classes)"
        return "top-1 agreement with eager: not measured"


def certificate(entry: Mapping[str, Any], report: Mapping[str, Any]) -> dict[str, Any]:
    """The parity certificate of one report entry as JSON (``Certificate.of(...).to_json()``):
    preset, tolerance, errors per batch and slice, top-1 agreement and max abs error, and the
    inputs it was measured on; see ``Certificate``.

    Args:
        entry: one entry of the report's ``artifacts``, as JSON.
        report: the whole report, as JSON (``ValidationReport.to_json()``).
    """
    try:
        parsed = ReportArtifact.from_json(entry)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidArgumentError(f"the validation report is malformed: {exc}", param="report") from exc
    return Certificate.of(parsed, ValidationRecord.from_json(report)).to_json()


def agreement_text(cert: Mapping[str, Any] | Certificate) -> str:
    """A certificate's top-1 agreement, every figure named by its slice (``Certificate.agreement_text``).

    Args:
        cert: the certificate, as a manifest holds it (``BundleArtifact.certificate``) or read.
    """
    return (cert if isinstance(cert, Certificate) else Certificate.from_json(cert)).agreement_text()


def latency_summary(entry: Mapping[str, Any]) -> dict[str, Any]:
    """Per batch size: p50/p90/p99/mean ms, throughput, status, speed-up over eager
    (``ReportArtifact.latency_summary``).

    Args:
        entry: one entry of the report's ``artifacts``, as JSON.
    """
    return ReportArtifact.from_json(entry).latency_summary()
