"""``ValidateSettings``: the options of one ``validate`` or ``bench`` run, declared once.

The CLI (``rehead validate``, ``rehead bench``) builds the record, ``validation.suite.run`` checks
and reads it, the stages read it, and the report serialises it (``to_json``: the JSON report's
``settings``; ``from_json`` reads that back). ``validate(...)`` and ``bench(...)`` keep their keyword
arguments for library users, as a thin layer that builds this record; their defaults are its
defaults. ``LatencySettings``, how each latency is measured, is declared here too (and re-exported
by ``validation.latency``, which measures).

The module is light (the standard library, ``toolkit``'s argument checks, the default parity
inputs' numbers): ``rehead --help`` reads the defaults here without loading NumPy, torch or ONNX
Runtime; ``checked()`` imports the tolerance presets and ONNX Runtime's provider names when it runs.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from converters.compare.defaults import DEFAULT_BATCH_SIZES, DEFAULT_SAMPLES, DEFAULT_SEED
from converters.openvino.options import INFERENCE_PRECISIONS
from toolkit._args import check_device, positive_int, positive_ints
from toolkit.errors import InvalidArgumentError

if TYPE_CHECKING:
    import numpy as np

#: ``reference_cache`` default: ``validation.reference.default_cache_dir()``
DEFAULT_CACHE = "default"

#: the largest batch size validate and bench take (a larger one is no measurement anyone runs,
#: and past 2**63 it overflows the runtimes' shape types before memory is even asked for)
MAX_BATCH_SIZE = 65536

#: what the report's ``settings`` says the reference is (the eager model, fp32, TF32 off)
REFERENCE = "eager fp32, TF32 off"


def check_batch_sizes(batch_sizes: Sequence[int]) -> list[int]:
    """Positive batch sizes up to ``MAX_BATCH_SIZE``, duplicates dropped, order kept.

    Args:
        batch_sizes: the batch sizes asked for.
    """
    sizes = positive_ints(batch_sizes, "batch_sizes", example="batch_sizes=(1, 8)")
    too_large = [s for s in sizes if s > MAX_BATCH_SIZE]
    if too_large:
        raise InvalidArgumentError(
            f"batch size {too_large[0]} is larger than {MAX_BATCH_SIZE}",
            hint="e.g. batch_sizes=(1, 8)",
            param="batch_sizes",
        )
    return sizes


#: who may run an ``.onnx`` artifact (``runtimes``: one or both, each a row of the report)
ONNX_RUNTIMES = ("onnxruntime", "openvino")
#: OpenVINO's inference precisions (``ov_precision``), as the OpenVINO format declares them
OV_PRECISIONS = INFERENCE_PRECISIONS


def check_runtimes(runtimes: Sequence[str]) -> tuple[str, ...]:
    """The runtimes asked for, each known, duplicates dropped, at least one.

    Args:
        runtimes: names from ``ONNX_RUNTIMES``.
    """
    if isinstance(runtimes, str):
        runtimes = [r for r in runtimes.split(",") if r.strip()]
    names = tuple(dict.fromkeys(str(r).strip() for r in runtimes))
    unknown = [r for r in names if r not in ONNX_RUNTIMES]
    if unknown or not names:
        raise InvalidArgumentError(
            f"unknown runtime '{unknown[0]}'" if unknown else "no runtime given",
            hint=f"runtimes are {', '.join(ONNX_RUNTIMES)} (e.g. runtimes=('onnxruntime', 'openvino'))",
            param="runtimes",
        )
    return names


@dataclasses.dataclass(frozen=True)
class LatencySettings:
    """``warmup_s``: seconds of untimed runs first (default 0.5); ``min_runs`` (default 20) and
    ``min_duration_s`` (default 2.0 seconds): timing stops once both are reached, or after
    ``max_runs`` (default 100000); ``max_cv``: the largest coefficient of variation of a
    conclusive measurement (default 0.25)."""

    warmup_s: float = 0.5
    min_runs: int = 20
    min_duration_s: float = 2.0
    max_runs: int = 100_000
    max_cv: float = 0.25

    def __post_init__(self) -> None:
        if not (self.warmup_s >= 0 and self.min_duration_s >= 0):
            raise InvalidArgumentError("latency warm-up and duration must be ≥ 0 seconds")
        if self.min_runs < 1 or self.max_runs < self.min_runs:
            raise InvalidArgumentError(
                f"latency runs must satisfy 1 ≤ min_runs ≤ max_runs (got {self.min_runs})"
            )
        if not self.max_cv > 0:
            raise InvalidArgumentError(f"max_cv must be > 0, got {self.max_cv}")


@dataclasses.dataclass(frozen=True)
class ValidateSettings:
    """Every option of one ``validate``/``bench`` run; each field's meaning and unit is given in
    ``validation.suite.validate``'s ``Args`` (a field has the keyword argument's name and default).

    ``reference_cache`` is the folder caching the eager reference (``DEFAULT_CACHE``: the default
    folder, resolved when the run reads ``cache_dir``; None: no cache). ``checked()`` returns the
    record with every field checked, as ``run`` reads it; after a run, ``threads`` is the intra-op
    thread count that was used.
    """

    data: str | os.PathLike[str] | np.ndarray | None = None
    samples: int = DEFAULT_SAMPLES
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES
    device: str = "cpu"
    preset: str | None = None
    atol: float | None = None
    rtol: float | None = None
    threads: int | None = None
    seed: int = DEFAULT_SEED
    parity: bool = True
    latency: bool = True
    head_latency: bool = True
    latency_settings: LatencySettings = dataclasses.field(default_factory=LatencySettings)
    localise: bool = True
    max_p99_ms: float | None = None
    min_speedup: float | None = None
    cross_check: bool = False
    reference_cache: str | os.PathLike[str] | None = DEFAULT_CACHE
    ort_provider: str | None = None
    require_real_data: bool = False
    runtimes: Sequence[str] = ("onnxruntime",)
    ov_precision: str = "f32"

    def replace(self, **changes: Any) -> ValidateSettings:
        """A copy with ``changes`` applied (the record itself never changes).

        Args:
            changes: field names and their new values.
        """
        return dataclasses.replace(self, **changes)

    def checked(self) -> ValidateSettings:
        """This record with every field checked before any work, batch sizes as a tuple.

        ``InvalidArgumentError`` (exit 2) names the keyword argument of a bad value;
        ``HardwareUnavailableError`` (exit 3) a device that is not here.
        """
        from converters.compare import PRESETS, resolve_preset, with_overrides
        from converters.onnx.ort import check_provider

        samples = positive_int(self.samples, "samples", example="samples=32")
        batch_sizes = tuple(check_batch_sizes(self.batch_sizes))
        device = check_device(self.device)
        ort_provider = check_provider(self.ort_provider, self.device)
        runtimes = check_runtimes(self.runtimes)
        if self.ov_precision not in OV_PRECISIONS:
            raise InvalidArgumentError(
                f"unknown OpenVINO inference precision '{self.ov_precision}'",
                hint=f"ov_precision is one of {', '.join(OV_PRECISIONS)}",
                param="ov_precision",
            )
        if self.preset is not None:
            resolve_preset(self.preset, "fp32")
        with_overrides(PRESETS["fp32"], atol=self.atol, rtol=self.rtol)  # reject bad overrides before any work
        return self.replace(
            samples=samples, batch_sizes=batch_sizes, device=device, ort_provider=ort_provider, runtimes=runtimes
        )

    def as_bench(self) -> ValidateSettings:
        """This record as a ``bench`` run: latency only, on one batch of the largest batch size of
        random inputs (the values do not matter to latency, and no images need loading)."""
        sizes = check_batch_sizes(self.batch_sizes)
        return self.replace(batch_sizes=tuple(sizes), parity=False, latency=True, samples=max(sizes), data="random")

    @property
    def cache_dir(self) -> Path | None:
        """The folder caching the eager reference (``reference_cache`` resolved), None for no cache."""
        if self.reference_cache is None:
            return None
        if str(self.reference_cache) == DEFAULT_CACHE:
            from validation.reference import default_cache_dir

            return default_cache_dir()
        return Path(self.reference_cache)

    def to_json(self) -> dict[str, Any]:
        """The report's ``settings`` (JSON schema ``rehead.validation/1``): what a reader needs to
        redo the run's measurement; the inputs are described in the report's ``inputs``."""
        return {
            "batch_sizes": list(self.batch_sizes),
            "device": self.device,
            "preset": self.preset,
            "atol": self.atol,
            "rtol": self.rtol,
            "threads": self.threads,
            "seed": self.seed,
            "latency": dataclasses.asdict(self.latency_settings) if self.latency else None,
            "parity": self.parity,
            "cross_check": self.cross_check,
            "ort_provider": self.ort_provider,
            "runtimes": list(self.runtimes),
            "ov_precision": self.ov_precision,
            "reference": REFERENCE,
        }

    def gates_json(self) -> dict[str, Any]:
        """The report's ``gates``: the latency gates (None where not set)."""
        return {"max_p99_ms": self.max_p99_ms, "min_speedup": self.min_speedup}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], gates: Mapping[str, Any] | None = None) -> ValidateSettings:
        """A report's ``settings`` (and ``gates``) read back; the fields a report does not record
        (``data``, ``samples``, ...) keep their defaults, and so does a key an older report lacks.

        Args:
            data: the ``settings`` object of a JSON report.
            gates: its ``gates`` object (default None: no gates read).
        """
        simple = ("device", "preset", "atol", "rtol", "threads", "seed", "parity", "cross_check", "ort_provider")
        fields: dict[str, Any] = {name: data[name] for name in simple if name in data}
        fields.update({name: value for name, value in (gates or {}).items() if name in ("max_p99_ms", "min_speedup")})
        if "batch_sizes" in data:
            fields["batch_sizes"] = tuple(data["batch_sizes"])
        if "runtimes" in data:
            fields["runtimes"] = tuple(data["runtimes"])
        if "ov_precision" in data:
            fields["ov_precision"] = str(data["ov_precision"])
        if "latency" in data:
            latency = data["latency"]
            fields["latency"] = latency is not None
            if isinstance(latency, Mapping):
                known = {f.name for f in dataclasses.fields(LatencySettings)}
                fields["latency_settings"] = LatencySettings(**{k: v for k, v in latency.items() if k in known})
        return cls(**fields)
