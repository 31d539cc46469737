"""What a TensorRT engine is, said without TensorRT: its sidecar record, read back and checked.

An engine is native code for one TensorRT version and one GPU. rehead writes a sidecar
``<engine>.json`` beside every engine (``EngineRecord``: TensorRT version, GPU and compute
capability, profile, precision flags, compatibility options, sha256 of the ONNX and of the
engine, the ONNX's graph signature, build time, rehead's model record and the build's parity
verdict), and reads it back before an engine is deserialised: ``verify_engine`` refuses an
engine whose bytes do not hash to the record, and ``check_compatible`` one built for another
TensorRT version or GPU than the one at hand. The build options are in ``options``, the profile
in ``profile``, the graph signature in ``signature`` and the trtexec line in ``trtexec``.
Everything here runs on a CPU without TensorRT.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from converters.tensorrt.options import HARDWARE_COMPAT
from converters.tensorrt.profile import Profile
from toolkit.errors import ArtifactError
from toolkit.models.model_dir import sha256_file

SCHEMA_VERSION = 1
#: the sidecar is small; a larger file is not one of ours (read no further)
MAX_SIDECAR_BYTES = 1 << 20
ENGINE_SUFFIXES = (".engine", ".plan")
#: compute capability of the first Ampere GPUs (what an ``ampere+`` engine needs at least)
AMPERE = (8, 0)


def sidecar_path(engine: str | os.PathLike[str]) -> Path:
    """The sidecar's path: ``model.engine`` -> ``model.engine.json``.

    Args:
        engine: the engine file.
    """
    path = Path(engine)
    return path.with_name(path.name + ".json")


def trtexec_path(engine: str | os.PathLike[str]) -> Path:
    """The trtexec script's path: ``model.engine`` -> ``model.engine.trtexec.sh``.

    Args:
        engine: the engine file.
    """
    path = Path(engine)
    return path.with_name(path.name + ".trtexec.sh")


#: sha256 of a file, read in chunks (the model directory's own hasher)
sha256_of = sha256_file


# --- the sidecar ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class GpuInfo:
    """The GPU an engine was built on: its name and compute capability (major, minor)."""

    name: str
    compute_capability: tuple[int, int]

    @property
    def cc(self) -> str:
        return f"{self.compute_capability[0]}.{self.compute_capability[1]}"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "compute_capability": self.cc}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GpuInfo:
        """Parse a ``to_json`` record (compute capability ``"major.minor"``).

        Args:
            data: the record's JSON object.
        """
        major, minor = str(data["compute_capability"]).split(".")
        return cls(str(data["name"]), (int(major), int(minor)))


@dataclasses.dataclass(frozen=True)
class EngineRecord:
    """The sidecar ``<engine>.json`` (``schema_version`` = ``SCHEMA_VERSION``, also written as ``schema``).

    ``engine_sha256``/``engine_bytes``: the engine file; ``onnx_name``/``onnx_sha256``/
    ``graph_signature``: the ONNX it was built (or refitted) from; ``precision``: fp32, tf32,
    fp16, bf16 or int8; ``builder_flags``: the ``BuilderFlag`` names set; ``refittable`` and
    ``weights_stripped``: whether ``refit_engine`` can take it and whether it needs a refit before
    it runs; ``model``: rehead's record from the ONNX metadata (class names, head spec,
    preprocessing, weights_sha256; empty for an ONNX from another tool); ``parity``: the build's
    check against ONNX Runtime on the ONNX (preset, passed, first failure); ``refitted_from``: the
    sha256 of the engine whose weights were replaced (empty for a fresh build).
    """

    engine_sha256: str
    engine_bytes: int
    onnx_name: str
    onnx_sha256: str
    graph_signature: str
    tensorrt_version: str
    gpu: GpuInfo
    profile: Profile
    precision: str
    builder_flags: tuple[str, ...]
    strongly_typed: bool
    hardware_compat: str
    version_compatible: bool
    refittable: bool
    weights_stripped: bool
    opt_level: int
    workspace_mib: int | None
    build_seconds: float
    built_at: str
    trtexec: str
    model: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    parity: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    refitted_from: str = ""
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["schema"] = self.schema_version  # the key rehead read before schema_version: older rehead reads it
        data["gpu"] = self.gpu.to_json()
        data["profile"] = self.profile.to_json()
        data["builder_flags"] = list(self.builder_flags)
        data["model"] = dict(self.model)
        data["parity"] = dict(self.parity)
        return data

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, where: str = "the sidecar") -> EngineRecord:
        """Parse a sidecar; ``ArtifactError`` for another schema, a missing field or a wrong type.

        Args:
            data: the sidecar's JSON object.
            where: how messages name the sidecar.
        """
        if not isinstance(data, Mapping):
            raise ArtifactError(f"{where} is not a JSON object", hint="rebuild the engine with rehead export tensorrt")
        # ``schema``: the key of sidecars written before ``schema_version`` (still written too)
        version = data["schema_version"] if "schema_version" in data else data.get("schema")
        if version != SCHEMA_VERSION:
            raise ArtifactError(
                f"{where} has schema_version {version!r}; this rehead reads schema_version {SCHEMA_VERSION}",
                hint="rebuild the engine with this rehead version",
            )
        try:
            record = cls(
                engine_sha256=_text(data["engine_sha256"]),
                engine_bytes=_int(data["engine_bytes"]),
                onnx_name=_text(data["onnx_name"]),
                onnx_sha256=_text(data["onnx_sha256"]),
                graph_signature=_text(data["graph_signature"]),
                tensorrt_version=_text(data["tensorrt_version"]),
                gpu=GpuInfo.from_json(data["gpu"]),
                profile=Profile.from_json(data["profile"]),
                precision=_text(data["precision"]),
                builder_flags=tuple(_text(f) for f in data["builder_flags"]),
                strongly_typed=_bool(data["strongly_typed"]),
                hardware_compat=_text(data["hardware_compat"]),
                version_compatible=_bool(data["version_compatible"]),
                refittable=_bool(data["refittable"]),
                weights_stripped=_bool(data["weights_stripped"]),
                opt_level=_int(data["opt_level"]),
                workspace_mib=None if data["workspace_mib"] is None else _int(data["workspace_mib"]),
                build_seconds=float(data["build_seconds"]),
                built_at=_text(data["built_at"]),
                trtexec=_text(data["trtexec"]),
                model=dict(data.get("model") or {}),
                parity=dict(data.get("parity") or {}),
                refitted_from=_text(data.get("refitted_from", "")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ArtifactError(
                f"{where} is not a valid engine record ({type(exc).__name__}: {exc})",
                hint="rebuild the engine with rehead export tensorrt",
            ) from exc
        if record.hardware_compat not in HARDWARE_COMPAT or len(record.engine_sha256) != 64:
            raise ArtifactError(f"{where} holds values rehead never writes", hint="rebuild the engine")
        return record


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {type(value).__name__}")
    return value


def read_record(engine: str | os.PathLike[str]) -> EngineRecord:
    """The sidecar of ``engine``, parsed (``ArtifactError`` when it is missing or invalid).

    Args:
        engine: the engine file (only its sidecar is read).
    """
    side = sidecar_path(engine)
    if not side.is_file():
        raise ArtifactError(
            f"engine '{Path(engine).name}' has no sidecar '{side.name}'",
            hint="rehead deserialises only engines it can verify (an engine is native code): "
            "build it with rehead export tensorrt",
        )
    if side.stat().st_size > MAX_SIDECAR_BYTES:
        raise ArtifactError(f"sidecar '{side.name}' is over {MAX_SIDECAR_BYTES} bytes: not an engine record")
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"sidecar '{side.name}' is not valid JSON: {exc}", hint="rebuild the engine") from exc
    return EngineRecord.from_json(data, where=f"sidecar '{side.name}'")


def verify_engine(engine: str | os.PathLike[str]) -> EngineRecord:
    """The sidecar of ``engine`` after checking that the engine's size and sha256 match it
    (``ArtifactError`` otherwise).

    Args:
        engine: the engine file.
    """
    path = Path(engine)
    record = read_record(path)
    size = path.stat().st_size
    if size != record.engine_bytes or sha256_of(path) != record.engine_sha256:
        raise ArtifactError(
            f"engine '{path.name}' does not match its sidecar (sha256 or size differs): "
            "it was modified or replaced after the build",
            hint="rebuild it with rehead export tensorrt; never run an engine of unknown origin",
        )
    return record


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


#: the runtime majors a version-compatible engine of each builder major runs on (NVIDIA: engines
#: built version-compatible with TensorRT 10 run on the TensorRT 11 runtime)
VERSION_COMPATIBLE_MAJORS: dict[int, tuple[int, ...]] = {10: (10, 11)}


def check_compatible(record: EngineRecord, *, tensorrt_version: str, gpu: GpuInfo) -> tuple[str, ...]:
    """Refuse (``ArtifactError``) an engine that this TensorRT or this GPU cannot run; returns notes.

    TensorRT: the same version, or with ``version_compatible`` a version at least the builder's of
    a major in ``VERSION_COMPATIBLE_MAJORS`` (the same major; a TensorRT 10 engine also runs on 11).
    GPU: the same compute capability, or with ``ampere+`` any of 8.0 or
    newer. Another GPU model of the same compute capability runs but may be slower (a note).

    Args:
        record: the engine's sidecar.
        tensorrt_version: the TensorRT at hand.
        gpu: the GPU at hand.
    """
    built, here = _version(record.tensorrt_version), _version(tensorrt_version)
    if record.version_compatible:
        majors = VERSION_COMPATIBLE_MAJORS.get(built[0], (built[0],)) if built else ()
        if not built or not here or here[0] not in majors or here < built:
            later = " or ".join(str(m) for m in majors) or "the same major"
            raise ArtifactError(
                f"engine built with TensorRT {record.tensorrt_version} (version compatible) cannot run on "
                f"TensorRT {tensorrt_version}: it needs the same major version (or {later}), "
                f"{record.tensorrt_version} or later",
                hint="rebuild the engine with this TensorRT",
            )
    elif built[:3] != here[:3]:
        raise ArtifactError(
            f"engine built with TensorRT {record.tensorrt_version} cannot run on TensorRT {tensorrt_version}",
            hint="rebuild the engine here, or build it with version_compatible for the lean runtime",
        )
    notes = []
    if record.hardware_compat == "ampere+":
        if gpu.compute_capability < AMPERE:
            raise ArtifactError(
                f"engine built for Ampere or newer GPUs; {gpu.name} has compute capability {gpu.cc}",
                hint="rebuild the engine on this GPU",
            )
    elif gpu.compute_capability != record.gpu.compute_capability:
        raise ArtifactError(
            f"engine built for compute capability {record.gpu.cc} ({record.gpu.name}); "
            f"{gpu.name} has {gpu.cc}",
            hint="rebuild the engine on this GPU, or build it with hardware_compat='ampere+'",
        )
    if gpu.name != record.gpu.name:
        notes.append(f"engine built on {record.gpu.name}, running on {gpu.name}: tactics may not be the fastest here")
    return tuple(notes)
