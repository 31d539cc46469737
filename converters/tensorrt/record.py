"""What a TensorRT engine is, said without TensorRT: build options, profile, sidecar, trtexec line.

An engine is native code for one TensorRT version and one GPU. rehead writes a sidecar
``<engine>.json`` beside every engine (``EngineRecord``: TensorRT version, GPU and compute
capability, profile, precision flags, compatibility options, sha256 of the ONNX and of the
engine, the ONNX's graph signature, build time, rehead's model record and the build's parity
verdict), and reads it back before an engine is deserialised: ``verify_engine`` refuses an
engine whose bytes do not hash to the record, and ``check_compatible`` one built for another
TensorRT version or GPU than the one at hand. ``graph_signature`` hashes an ONNX graph's
structure without its weight values: two exports of the same architecture and head size share
it, which is what refitting needs. Everything here runs on a CPU without TensorRT.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from toolkit.errors import ArtifactError, InvalidArgumentError
from toolkit.models.model_dir import sha256_file

SCHEMA_VERSION = 1
#: the sidecar is small; a larger file is not one of ours (read no further)
MAX_SIDECAR_BYTES = 1 << 20
ENGINE_SUFFIXES = (".engine", ".plan")
#: ``hardware_compat`` values, as trtexec's ``--hardwareCompatibilityLevel`` spells them
HARDWARE_COMPAT = ("none", "ampere+", "same-compute-capability")
_TRTEXEC_HARDWARE = {"none": "none", "ampere+": "ampere+", "same-compute-capability": "sameComputeCapability"}
#: compute capability of the first Ampere GPUs (what an ``ampere+`` engine needs at least)
AMPERE = (8, 0)
#: TensorRT's builder optimisation levels (3 is its default)
OPT_LEVELS = range(0, 6)


def sidecar_path(engine: str | os.PathLike[str]) -> Path:
    """``model.engine`` -> ``model.engine.json``."""
    path = Path(engine)
    return path.with_name(path.name + ".json")


def trtexec_path(engine: str | os.PathLike[str]) -> Path:
    """``model.engine`` -> ``model.engine.trtexec.sh`` (the equivalent trtexec command)."""
    path = Path(engine)
    return path.with_name(path.name + ".trtexec.sh")


#: sha256 of a file, read in chunks (the model directory's own hasher)
sha256_of = sha256_file


# --- build options and the optimisation profile ---------------------------------------------


def size_pair(value: Sequence[int] | None, name: str) -> tuple[int, int] | None:
    if value is None:
        return None
    size = tuple(value)
    if len(size) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in size):
        raise InvalidArgumentError(
            f"{name} must be two positive integers (height, width), got {value!r}", hint="e.g. (224, 224)", param=name
        )
    return (int(size[0]), int(size[1]))


def _count(value: Any, name: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidArgumentError(f"{name} must be an integer ≥ {minimum}, got {value!r}", param=name)
    return int(value)


@dataclasses.dataclass(frozen=True)
class BuildOptions:
    """How to build an engine (checked on construction, each error naming its keyword argument).

    ``min_batch``/``opt_batch``/``max_batch``: the optimisation profile's batch range (``opt``
    defaults to ``max``, ``max`` to 32). ``min_size``/``opt_size``/``max_size``: (height, width)
    ranges, used only when the ONNX input has dynamic spatial axes (default: the model's input
    size). ``fp16``/``bf16``: allow those kernels in an fp32 ONNX (weak typing: only where the
    installed TensorRT still has it, deprecated; TensorRT 11 removed it, see ``BuildOptions.typing``);
    ``tf32``: allow TF32 for fp32 layers (TensorRT enables it by default; rehead does not, so an
    fp32 engine is fp32); ``strongly_typed``: the ONNX's own types decide every precision, no
    precision flags (always so for an fp16 or QDQ ONNX, and on TensorRT 11 for every ONNX).
    INT8 comes only from a QDQ ONNX (``export_onnx(int8=True, int8_target="tensorrt")``): implicit
    calibration is deprecated in TensorRT 10 and gone in 11. ``workspace_mib``:
    the workspace memory pool limit (None: TensorRT's, the GPU's memory); ``opt_level``: builder
    optimisation level 0-5 (TensorRT's default 3). ``timing_cache``: a file loaded before the build
    and saved after it. ``hardware_compat``: ``none`` (this GPU's compute capability),
    ``ampere+`` (any Ampere or newer GPU) or ``same-compute-capability``;
    ``version_compatible``: runs on later TensorRT versions of the same major through the lean
    runtime, which the plan carries. ``refittable``: the
    weights can be replaced later (``refit_engine``); ``strip_weights``: a weight-stripped plan
    (refit with the same ONNX before use: built with ``REFIT_IDENTICAL``, which is only valid for
    identical weights).
    """

    min_batch: int = 1
    opt_batch: int | None = None
    max_batch: int | None = None
    min_size: tuple[int, int] | None = None
    opt_size: tuple[int, int] | None = None
    max_size: tuple[int, int] | None = None
    fp16: bool = False
    bf16: bool = False
    tf32: bool = False
    strongly_typed: bool = False
    workspace_mib: int | None = None
    opt_level: int = 3
    timing_cache: str | None = None
    hardware_compat: str = "none"
    version_compatible: bool = False
    refittable: bool = False
    strip_weights: bool = False

    def __post_init__(self) -> None:
        low = _count(self.min_batch, "min_batch")
        high = _count(self.max_batch, "max_batch") if self.max_batch is not None else max(low, 32)
        mid = _count(self.opt_batch, "opt_batch") if self.opt_batch is not None else high
        if not low <= mid <= high:
            raise InvalidArgumentError(
                f"the batch range must satisfy min ≤ opt ≤ max, got {low}, {mid}, {high}",
                hint="e.g. min_batch=1, opt_batch=8, max_batch=32",
                param="opt_batch" if self.opt_batch is not None else "max_batch",
            )
        object.__setattr__(self, "max_batch", high)
        object.__setattr__(self, "opt_batch", mid)
        sizes = [size_pair(getattr(self, n), n) for n in ("min_size", "opt_size", "max_size")]
        for name, size in zip(("min_size", "opt_size", "max_size"), sizes, strict=True):
            object.__setattr__(self, name, size)
        given = [s for s in sizes if s is not None]
        if given and len(given) != 3:
            raise InvalidArgumentError(
                "give all three of min_size, opt_size and max_size, or none",
                hint="e.g. min_size=(160, 160), opt_size=(224, 224), max_size=(320, 320)",
                param="min_size",
            )
        if len(given) == 3 and not all(a <= b <= c for a, b, c in zip(*given, strict=True)):
            raise InvalidArgumentError(
                f"the size range must satisfy min ≤ opt ≤ max per axis, got {given}", param="opt_size"
            )
        if self.strongly_typed and (self.fp16 or self.bf16):
            flag = "fp16" if self.fp16 else "bf16"
            raise InvalidArgumentError(
                f"strongly_typed takes every precision from the ONNX; {flag} cannot be combined with it",
                hint="export an fp16 ONNX (export_onnx(fp16=True)) for an fp16 strongly typed engine",
                param=flag,
            )
        if self.fp16 and self.bf16:
            raise InvalidArgumentError("choose fp16 or bf16, not both", param="bf16")
        if self.workspace_mib is not None:
            _count(self.workspace_mib, "workspace_mib")
        if isinstance(self.opt_level, bool) or self.opt_level not in OPT_LEVELS:
            raise InvalidArgumentError(
                f"opt_level must be 0-5 (TensorRT's builder optimisation level), got {self.opt_level!r}",
                param="opt_level",
            )
        if self.hardware_compat not in HARDWARE_COMPAT:
            raise InvalidArgumentError(
                f"unknown hardware_compat '{self.hardware_compat}'",
                hint=f"one of {', '.join(HARDWARE_COMPAT)}",
                param="hardware_compat",
            )
        if self.refittable and self.strip_weights:
            raise InvalidArgumentError(
                "choose refittable (new weights later) or strip_weights (the same weights, refit at deployment)",
                hint="strip_weights builds with REFIT_IDENTICAL, which is wrong for different weights",
                param="strip_weights",
            )

    @property
    def builder_flags(self) -> tuple[str, ...]:
        """TensorRT ``BuilderFlag`` names for everything but precision (TF32 is cleared unless ``tf32``)."""
        flags = ["TF32"] if self.tf32 else []
        if self.version_compatible:
            flags.append("VERSION_COMPATIBLE")
        if self.refittable:
            flags.append("REFIT")
        if self.strip_weights:
            flags += ["STRIP_PLAN", "REFIT_IDENTICAL"]
        return tuple(flags)

    def typing(self, onnx_precision: str, features: TrtFeatures) -> Typing:
        """How the network is typed and which flags the build sets, for an ONNX of ``onnx_precision``
        (fp32, fp16 or int8 = QDQ) on a TensorRT with ``features``.

        Precision comes from the graph: an fp16 or QDQ ONNX is always built strongly typed with no
        precision flags (NVIDIA's advice on TensorRT 10; the only mode on 11). ``fp16``/``bf16`` on
        an fp32 ONNX set the weak-typing flag where TensorRT still has it (deprecated: a note) and
        are refused (``InvalidArgumentError``, before any GPU work) where it does not.
        """
        asked = "fp16" if self.fp16 else ("bf16" if self.bf16 else None)
        if asked is not None and onnx_precision != "fp32":
            raise InvalidArgumentError(
                f"--{asked} applies to an fp32 ONNX; this ONNX is {onnx_precision} and its types decide the "
                "engine's precision (built strongly typed)",
                hint=f"drop --{asked}",
                param=asked,
            )
        if asked is not None and not features.weak_typing:
            raise InvalidArgumentError(
                f"TensorRT {features.version} builds every network strongly typed: --{asked} (weak typing) "
                "is gone",
                hint="export an fp16 ONNX (rehead export onnx --fp16: fp16 graph, fp32 inputs and outputs, "
                "sensitive layers kept fp32) and build it without --fp16",
                param=asked,
            )
        if asked is not None:
            return Typing(
                strongly_typed=False,
                flags=(asked.upper(), *self.builder_flags),
                precision=asked,
                notes=(
                    f"--{asked} uses weak typing, deprecated in TensorRT 10 and removed in 11: export an fp16 "
                    "ONNX (rehead export onnx --fp16) instead",
                ),
            )
        # an fp32 ONNX without precision flags builds the same fp32 engine typed either way: it is typed as
        # asked where TensorRT still has weak typing, strongly where that is the only mode (11)
        strong = self.strongly_typed or onnx_precision != "fp32" or not features.weak_typing
        tf32 = "tf32" if self.tf32 else "fp32"
        return Typing(
            strongly_typed=strong,
            flags=self.builder_flags,
            precision=onnx_precision if onnx_precision != "fp32" else tf32,
        )


#: TensorRT's ``BuilderFlag`` members that weak typing needs (TensorRT <= 10 has them; 11 does not)
WEAK_TYPING_FLAGS = ("FP16", "BF16", "INT8")


@dataclasses.dataclass(frozen=True)
class TrtFeatures:
    """What the installed TensorRT offers, detected by feature (its enum members), never by number.

    ``weak_typing``: ``BuilderFlag`` still has the precision flags (FP16, BF16, INT8): TensorRT 10
    has them, TensorRT 11 builds every network strongly typed and removed them.
    """

    version: str
    weak_typing: bool

    @classmethod
    def detect(cls, version: str, builder_flags: Sequence[str]) -> TrtFeatures:
        """From TensorRT's version and ``BuilderFlag`` member names."""
        return cls(version=version, weak_typing=all(f in builder_flags for f in WEAK_TYPING_FLAGS))


#: TensorRT 10's features (weak typing still there, deprecated)
TENSORRT_10 = TrtFeatures("10", weak_typing=True)
#: TensorRT 11's features (every network strongly typed)
TENSORRT_11 = TrtFeatures("11", weak_typing=False)


@dataclasses.dataclass(frozen=True)
class Typing:
    """How one engine is built: strongly typed or not, the ``BuilderFlag`` names set, the precision
    it computes in (int8, fp16, bf16, tf32 or fp32) and notes for the user (deprecations)."""

    strongly_typed: bool
    flags: tuple[str, ...]
    precision: str
    notes: tuple[str, ...] = ()

    @property
    def mode(self) -> str:
        return "strong" if self.strongly_typed else "weak"


@dataclasses.dataclass(frozen=True)
class Profile:
    """One optimisation profile: the input's name and its min/opt/max shapes."""

    input: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    def contains(self, shape: Sequence[int]) -> bool:
        return len(shape) == len(self.min) and all(
            lo <= s <= hi for s, lo, hi in zip(shape, self.min, self.max, strict=True)
        )

    def describe(self) -> str:
        def dims(shape: tuple[int, ...]) -> str:
            return "x".join(str(d) for d in shape)

        return f"{self.input}: min {dims(self.min)}, opt {dims(self.opt)}, max {dims(self.max)}"

    def to_json(self) -> dict[str, Any]:
        return {"input": self.input, "min": list(self.min), "opt": list(self.opt), "max": list(self.max)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Profile:
        return cls(
            input=str(data["input"]),
            min=tuple(int(v) for v in data["min"]),
            opt=tuple(int(v) for v in data["opt"]),
            max=tuple(int(v) for v in data["max"]),
        )


def resolve_profile(
    name: str, dims: Sequence[int | str | None], options: BuildOptions, default_size: tuple[int, int] | None
) -> Profile:
    """The profile for an input of ``dims`` (ints for fixed axes; names or None for dynamic).

    A fixed batch axis must hold the whole batch range; a dynamic spatial axis takes the
    options' size range, else ``default_size`` (the model's input size) fixed.
    """
    if len(dims) != 4:
        raise InvalidArgumentError(
            f"input '{name}' has rank {len(dims)}; rehead builds engines for NCHW image classifiers",
            hint="export the model with rehead export onnx",
        )
    batch = dims[0]
    low, mid, high = options.min_batch, options.opt_batch or 1, options.max_batch or 1
    if isinstance(batch, int) and batch > 0 and (low, high) != (batch, batch):
        raise InvalidArgumentError(
            f"the ONNX input '{name}' has a fixed batch of {batch}; the profile asks for {low}-{high}",
            hint=f"use min_batch=opt_batch=max_batch={batch}, or re-export with a dynamic batch",
            param="max_batch",
        )
    shapes: list[list[int]] = [[low], [mid], [high]]
    for axis, dim in enumerate(dims[1:], start=1):
        if isinstance(dim, int) and dim > 0:
            for shape in shapes:
                shape.append(dim)
            continue
        if axis == 1:
            raise InvalidArgumentError(f"input '{name}' has a dynamic channel axis", hint="export with 3 channels")
        sizes = (options.min_size, options.opt_size, options.max_size)
        if sizes[0] is None:
            if default_size is None:
                raise InvalidArgumentError(
                    f"input '{name}' has dynamic height/width and no size range was given",
                    hint="pass min_size, opt_size and max_size (height, width)",
                    param="min_size",
                )
            sizes = (default_size, default_size, default_size)
        for shape, size in zip(shapes, sizes, strict=True):
            shape.append(size[axis - 2] if size is not None else 0)
    return Profile(name, tuple(shapes[0]), tuple(shapes[1]), tuple(shapes[2]))


# --- the ONNX graph's structure ---------------------------------------------------------------


def graph_signature(onnx_path: str | os.PathLike[str]) -> str:
    """sha256 of the ONNX graph's structure: inputs, outputs, nodes (op, domain, names, non-tensor
    attributes) and initialisers (name, type, shape), without weight values or metadata.

    Exports of one architecture with one head size share it whatever their weights; any change
    of layer, head size or opset changes it. External data is never read.
    """
    import onnx

    from converters.onnx.external import check_external_data

    check_external_data(onnx_path)
    try:
        model = onnx.load(os.fspath(onnx_path), load_external_data=False)
    except Exception as exc:  # DecodeError and friends: not an ONNX model
        raise ArtifactError(f"cannot read ONNX model '{onnx_path}': {type(exc).__name__}: {exc}") from exc
    return _signature(model)


def _value_info(info: Any) -> list[Any]:
    tensor = info.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor.shape.dim]
    return [info.name, tensor.elem_type, dims]


def _attribute(attr: Any) -> list[Any]:
    import onnx

    if attr.type == onnx.AttributeProto.GRAPH:
        return [attr.name, "graph", _graph(attr.g)]
    if attr.type == onnx.AttributeProto.GRAPHS:
        return [attr.name, "graphs", [_graph(g) for g in attr.graphs]]
    if attr.type in (onnx.AttributeProto.TENSOR, onnx.AttributeProto.TENSORS):
        tensors = [attr.t] if attr.type == onnx.AttributeProto.TENSOR else list(attr.tensors)
        return [attr.name, "tensor", [[t.data_type, list(t.dims)] for t in tensors]]
    return [attr.name, onnx.helper.get_attribute_value(attr)]


def _graph(graph: Any) -> dict[str, Any]:
    def text(value: Any) -> Any:
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else value

    return {
        "inputs": [_value_info(v) for v in graph.input],
        "outputs": [_value_info(v) for v in graph.output],
        "initializers": sorted([i.name, i.data_type, list(i.dims)] for i in graph.initializer),
        "nodes": [
            [
                n.op_type,
                n.domain,
                n.name,
                list(n.input),
                list(n.output),
                [[a[0], text(a[1])] if len(a) == 2 else a for a in (_attribute(x) for x in n.attribute)],
            ]
            for n in graph.node
        ],
    }


def _plain(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _signature(model: Any) -> str:
    body = {
        "opsets": sorted([o.domain, o.version] for o in model.opset_import),
        "graph": _graph(model.graph),
        "functions": sorted(f"{f.domain}::{f.name}" for f in model.functions),
    }
    text = json.dumps(body, sort_keys=True, default=_plain)
    return hashlib.sha256(text.encode()).hexdigest()


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
        major, minor = str(data["compute_capability"]).split(".")
        return cls(str(data["name"]), (int(major), int(minor)))


@dataclasses.dataclass(frozen=True)
class EngineRecord:
    """The sidecar ``<engine>.json`` (schema ``SCHEMA_VERSION``).

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
    schema: int = SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
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
        """Parse a sidecar; ``ArtifactError`` for another schema, a missing field or a wrong type."""
        if not isinstance(data, Mapping):
            raise ArtifactError(f"{where} is not a JSON object", hint="rebuild the engine with rehead export tensorrt")
        schema = data.get("schema")
        if schema != SCHEMA_VERSION:
            raise ArtifactError(
                f"{where} has schema {schema!r}; this rehead reads schema {SCHEMA_VERSION}",
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
    """The sidecar of ``engine``, parsed (``ArtifactError`` when it is missing or invalid)."""
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
    """The sidecar of ``engine`` after checking that the engine's size and sha256 match it."""
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


def trtexec_command(
    onnx: str | os.PathLike[str],
    engine: str | os.PathLike[str],
    options: BuildOptions,
    profile: Profile,
    *,
    onnx_precision: str = "fp32",
    features: TrtFeatures | None = None,
) -> str:
    """The trtexec command line that builds the same engine by hand, with the flags the TensorRT of
    ``features`` has (default ``TENSORRT_10``; TensorRT 11's trtexec has no --fp16/--int8/--bf16 and
    types every network)."""
    features = features or TENSORRT_10
    typing = options.typing(onnx_precision, features)

    def shape(dims: tuple[int, ...]) -> str:
        return f"{profile.input}:" + "x".join(str(d) for d in dims)

    args = [
        "trtexec",
        f"--onnx={os.fspath(onnx)}",
        f"--saveEngine={os.fspath(engine)}",
        f"--minShapes={shape(profile.min)}",
        f"--optShapes={shape(profile.opt)}",
        f"--maxShapes={shape(profile.max)}",
    ]
    args += [f"--{flag.lower()}" for flag in typing.flags if flag in WEAK_TYPING_FLAGS]
    args += [] if options.tf32 else ["--noTF32"]  # the build clears TF32 unless asked, typed or not
    # where weak typing exists the default is weak: say strong; where it does not, strong is all there is
    args += ["--stronglyTyped"] if typing.strongly_typed and features.weak_typing else []
    if options.workspace_mib is not None:
        args.append(f"--memPoolSize=workspace:{options.workspace_mib}M")
    args.append(f"--builderOptimizationLevel={options.opt_level}")
    if options.timing_cache:
        args.append(f"--timingCacheFile={options.timing_cache}")
    if options.hardware_compat != "none":
        args.append(f"--hardwareCompatibilityLevel={_TRTEXEC_HARDWARE[options.hardware_compat]}")
    args += ["--versionCompatible"] if options.version_compatible else []
    args += ["--refit"] if options.refittable else []
    args += ["--stripWeights"] if options.strip_weights else []
    args.append("--skipInference")
    return shlex.join(args)
