"""The accuracy-aware INT8 search's targets and its decision, as frozen records with to/from JSON.

``Int8Decision`` is what ``export_onnx(min_agreement=...)`` stores in the model's metadata
(``rehead.quantization`` -> ``search``) and beside it as ``<model>.int8.json``: the nodes kept in
fp32 and why, the agreement reached per slice, the latency of the fp32, all-INT8 and chosen
variants, and every variant tried (for the report's agreement-against-latency plot).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from toolkit._args import positive_int
from toolkit.errors import ArtifactError, InvalidArgumentError

SCHEMA_VERSION = 1
#: why a node stays in fp32
REASONS = ("sensitivity", "no speed gain", "fp32 chosen")


def _fraction(value: float, param: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0.0 < float(value) <= 1.0):
        raise InvalidArgumentError(
            f"{param} must be a fraction in (0, 1], got {value!r}",
            hint=f"e.g. {param}=0.99 for 99% top-1 agreement with eager",
            param=param,
        )
    return float(value)


@dataclasses.dataclass(frozen=True)
class Int8Targets:
    """What the search must reach: top-1 agreement with eager on held-out images, all of them
    (``min_agreement``) and those of the new classes (``new_class_min_agreement``, None: no
    separate target), moving at most ``max_fp32_nodes`` nodes back to fp32 (None: no limit)."""

    min_agreement: float
    new_class_min_agreement: float | None = None
    max_fp32_nodes: int | None = None

    def __post_init__(self) -> None:
        _fraction(self.min_agreement, "min_agreement")
        if self.new_class_min_agreement is not None:
            _fraction(self.new_class_min_agreement, "new_class_min_agreement")
        if self.max_fp32_nodes is not None and self.max_fp32_nodes != 0:
            positive_int(self.max_fp32_nodes, "max_fp32_nodes", example="max_fp32_nodes=8")

    def met(self, agreement: Mapping[str, float]) -> bool:
        """Whether an agreement reaches the targets.

        Args:
            agreement: top-1 agreement per slice (``all``, ``new``, ``kept``).
        """
        if agreement.get("all", 0.0) < self.min_agreement:
            return False
        if self.new_class_min_agreement is not None and "new" in agreement:
            return agreement["new"] >= self.new_class_min_agreement
        return True

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Int8Targets:
        """Parse a ``to_json`` record (the values are checked as at construction).

        Args:
            data: the record's JSON object.
        """
        return cls(
            min_agreement=data["min_agreement"],
            new_class_min_agreement=data.get("new_class_min_agreement"),
            max_fp32_nodes=data.get("max_fp32_nodes"),
        )


@dataclasses.dataclass(frozen=True)
class Fp32Node:
    """A node left in fp32: its name, op type, speed group, why (``REASONS``) and its SQNR drop (dB)."""

    node: str
    op: str
    group: str
    reason: str
    sensitivity_db: float | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Variant:
    """One candidate the search built: ``fp32_nodes`` nodes left in fp32, its agreement per slice,
    whether it met the targets, and its latency (milliseconds, batch 1; None if not timed).
    A speed-rule trial is only timed: its ``agreement`` is empty and ``met`` None (more nodes in
    fp32 than a variant that met the target; the chosen graph's agreement is always measured)."""

    name: str
    fp32_nodes: int
    agreement: Mapping[str, float]
    met: bool | None
    latency_ms: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "agreement": dict(self.agreement)}


@dataclasses.dataclass(frozen=True)
class GroupTiming:
    """The speed rule on one group: latency (ms) with the group in INT8 and in fp32, and the verdict."""

    group: str
    nodes: int
    int8_ms: float
    fp32_ms: float
    kept_int8: bool

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Int8Decision:
    """What the search chose (schema ``SCHEMA_VERSION``).

    ``chosen``: ``int8`` (a QDQ graph with ``fp32_nodes`` left in fp32) or ``fp32`` (no INT8
    variant that meets the targets was faster than the fp32 graph, which is then written).
    ``agreement``: top-1 agreement with eager per slice (``all``; ``new``/``kept``: the held-out
    images whose label is a new / kept class) of what was written. ``latency_ms``: batch-1
    medians of ``fp32``, ``all_int8`` and ``chosen``, timed side by side in one interleaved run.
    """

    targets: Int8Targets
    met: bool
    chosen: str
    agreement: Mapping[str, float]
    latency_ms: Mapping[str, float]
    fp32_nodes: tuple[Fp32Node, ...]
    quantized_nodes: int
    head: Mapping[str, Any]
    groups: tuple[GroupTiming, ...]
    variants: tuple[Variant, ...]
    heldout: Mapping[str, Any]
    sensitivity_method: str
    search_seconds: float
    #: where agreement and latency were measured (``onnxruntime``; ``openvino`` for that target)
    runtime: str = "onnxruntime"
    schema_version: int = SCHEMA_VERSION

    def summary(self) -> str:
        """One line: what was chosen, the agreement per slice, the latency against fp32."""
        agree = ", ".join(f"{k} {v:.1%}" for k, v in self.agreement.items())
        lat = self.latency_ms
        speed = ""
        if lat.get("chosen") and lat.get("fp32"):
            speed = f"; {lat['chosen']:.2f} ms vs fp32 {lat['fp32']:.2f} ms ({lat['fp32'] / lat['chosen']:.2f}x)"
        kept = f"{len(self.fp32_nodes)} of {self.quantized_nodes + len(self.fp32_nodes)} nodes in fp32"
        what = "fp32 (no INT8 variant was faster)" if self.chosen == "fp32" else f"INT8, {kept}"
        return f"accuracy-aware INT8: {what}; top-1 agreement {agree}{speed} ({self.runtime})"

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "targets": self.targets.to_json(),
            "met": self.met,
            "chosen": self.chosen,
            "agreement": dict(self.agreement),
            "latency_ms": dict(self.latency_ms),
            "fp32_nodes": [n.to_json() for n in self.fp32_nodes],
            "quantized_nodes": self.quantized_nodes,
            "head": dict(self.head),
            "groups": [g.to_json() for g in self.groups],
            "variants": [v.to_json() for v in self.variants],
            "heldout": dict(self.heldout),
            "sensitivity_method": self.sensitivity_method,
            "search_seconds": self.search_seconds,
            "runtime": self.runtime,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, where: str = "the INT8 decision") -> Int8Decision:
        """Parse a ``to_json`` record; ``ArtifactError`` for another ``schema_version`` or a malformed one.

        Args:
            data: the record's JSON object.
            where: how messages name the record (default "the INT8 decision").
        """
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ArtifactError(
                f"{where} has schema_version {version!r}; this rehead reads {SCHEMA_VERSION}",
                hint="re-export the model with this rehead",
            )
        try:
            return cls(
                targets=Int8Targets.from_json(data["targets"]),
                met=bool(data["met"]),
                chosen=str(data["chosen"]),
                agreement={str(k): float(v) for k, v in data["agreement"].items()},
                latency_ms={str(k): float(v) for k, v in data["latency_ms"].items()},
                fp32_nodes=tuple(Fp32Node(**n) for n in data["fp32_nodes"]),
                quantized_nodes=int(data["quantized_nodes"]),
                head=dict(data["head"]),
                groups=tuple(GroupTiming(**g) for g in data["groups"]),
                variants=tuple(
                    Variant(**{**v, "agreement": {str(k): float(x) for k, x in v["agreement"].items()},
                               "met": None if v["met"] is None else bool(v["met"])})
                    for v in data["variants"]
                ),
                heldout=dict(data["heldout"]),
                sensitivity_method=str(data["sensitivity_method"]),
                search_seconds=float(data["search_seconds"]),
                runtime=str(data.get("runtime", "onnxruntime")),  # decisions written before OpenVINO
            )
        except (KeyError, TypeError, ValueError, AttributeError, InvalidArgumentError) as exc:
            raise ArtifactError(
                f"{where} is malformed: {type(exc).__name__}: {exc}", hint="re-export the model with this rehead"
            ) from exc


def decision_path(model: str | os.PathLike[str]) -> Path:
    """Where the decision of a model lies: ``<model>.int8.json`` beside it.

    Args:
        model: the exported ``.onnx``.
    """
    path = Path(model)
    return path.with_name(path.name + ".int8.json")


def read_decision(model: str | os.PathLike[str]) -> Int8Decision | None:
    """The decision beside a model, or None when there is none (not an accuracy-aware export).

    Args:
        model: the exported ``.onnx``.
    """
    path = decision_path(model)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"cannot read '{path}': {exc}", hint="re-export the model") from exc
    if not isinstance(data, dict):
        raise ArtifactError(f"'{path}' is not a JSON object", hint="re-export the model")
    return Int8Decision.from_json(data, where=f"'{path}'")


def finite(value: float) -> float:
    """A value rounded for the record (4 significant decimals); NaN/Inf are refused.

    Args:
        value: the number to record.
    """
    if not math.isfinite(value):
        raise ValueError(f"non-finite value {value!r} in the INT8 decision")
    return round(float(value), 4)
