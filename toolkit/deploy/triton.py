"""Triton model repositories from a bundle: ``<name>/config.pbtxt``, ``<name>/1/model.onnx`` or ``model.plan``.

``triton_repository`` copies one artifact of a verified bundle into Triton's layout and writes
its ``config.pbtxt`` as the protobuf text form of Triton's own ``ModelConfig`` message
(``tritonclient.grpc.model_config_pb2``), never by hand: the platform (``onnxruntime_onnx`` or
``tensorrt_plan``), every input and output with its element type and dims (without the batch
dimension when ``max_batch_size > 0``; an artifact with a fixed batch gets ``max_batch_size 0``
and its full dims), dynamic batching, instance groups, and the label file on the class outputs.
What the artifact can take is checked first: a fixed batch refuses batching, a TensorRT engine
refuses a ``max_batch_size`` beyond its optimisation profile. The model folder is built in a
staging folder and published in one rename, so a repository never holds half a model.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from toolkit._args import positive_int, positive_ints
from toolkit._atomic import output_dir
from toolkit.deploy.manifest import BundleArtifact
from toolkit.deploy.verification import is_temporary, open_bundle
from toolkit.errors import ArtifactError, InternalError, InvalidArgumentError, require

KINDS = ("cpu", "gpu")
#: how long Triton's dynamic batcher waits for more requests to fill a preferred batch, in microseconds
DEFAULT_QUEUE_DELAY_US = 500
LABEL_FILE = "labels.txt"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
#: ONNX TensorProto element type names -> Triton DataType names
_ONNX_TO_TRITON = {
    "FLOAT": "TYPE_FP32",
    "FLOAT16": "TYPE_FP16",
    "BFLOAT16": "TYPE_BF16",
    "DOUBLE": "TYPE_FP64",
    "UINT8": "TYPE_UINT8",
    "UINT16": "TYPE_UINT16",
    "UINT32": "TYPE_UINT32",
    "UINT64": "TYPE_UINT64",
    "INT8": "TYPE_INT8",
    "INT16": "TYPE_INT16",
    "INT32": "TYPE_INT32",
    "INT64": "TYPE_INT64",
    "BOOL": "TYPE_BOOL",
    "STRING": "TYPE_STRING",
}


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """One input or output: ``name``, Triton ``data_type`` (``TYPE_FP32``) and full ``dims``
    including the batch axis (-1 where the axis is dynamic)."""

    name: str
    data_type: str
    dims: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class Signature:
    """What an artifact takes and gives. ``batch``: (min, max) batch sizes it runs, ``max`` None
    for an unbounded dynamic axis; a fixed batch has min == max and ``fixed_batch`` True."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    batch: tuple[int, int | None]
    fixed_batch: bool

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _onnx_dims(value_info: Any) -> tuple[int, ...]:
    shape = value_info.type.tensor_type.shape
    return tuple(int(d.dim_value) if d.HasField("dim_value") else -1 for d in shape.dim)


def onnx_signature(path: str | os.PathLike[str]) -> Signature:
    """Inputs, outputs and batch range of an ONNX graph (weights in external data are not read).

    Args:
        path: the ONNX file.
    """
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, OSError, ValueError: all mean "not an ONNX we can read"
        raise ArtifactError(f"cannot read ONNX '{path}': {exc}", hint="re-export the artifact") from exc
    initializers = {init.name for init in model.graph.initializer}

    def spec(info: Any) -> TensorSpec:
        elem = onnx.TensorProto.DataType.Name(info.type.tensor_type.elem_type)
        if elem not in _ONNX_TO_TRITON:
            raise ArtifactError(f"'{path}': tensor '{info.name}' has type {elem}, which Triton does not serve")
        return TensorSpec(info.name, _ONNX_TO_TRITON[elem], _onnx_dims(info))

    inputs = tuple(spec(i) for i in model.graph.input if i.name not in initializers)
    outputs = tuple(spec(o) for o in model.graph.output)
    if not inputs or not outputs or any(not t.dims for t in inputs + outputs):
        raise ArtifactError(f"'{path}' has no batched inputs and outputs", hint="re-export it with rehead export onnx")
    firsts = {t.dims[0] for t in inputs + outputs}
    if firsts == {-1}:
        return Signature(inputs, outputs, (1, None), fixed_batch=False)
    fixed = max(firsts)
    return Signature(inputs, outputs, (fixed, fixed), fixed_batch=True)


#: what Triton configures with ``backend:`` rather than ``platform:``
BACKEND_NOT_PLATFORM = ("openvino",)
_OV_TO_TRITON = {"f32": "TYPE_FP32", "f16": "TYPE_FP16", "u8": "TYPE_UINT8", "i64": "TYPE_INT64", "i32": "TYPE_INT32"}


def openvino_signature(path: str | os.PathLike[str]) -> Signature:
    """Inputs, outputs and batch range of an OpenVINO IR, as OpenVINO reads it.

    Args:
        path: the IR's ``.xml`` file.
    """
    from converters.openvino import _runtime
    from converters.openvino.artifact import check_weights

    check_weights(Path(path))
    try:
        model = _runtime.core().read_model(str(path))
    except RuntimeError as exc:
        raise ArtifactError(f"cannot read OpenVINO IR '{path}': {str(exc).strip()[:300]}", hint="re-export it") from exc

    def spec(port: Any) -> TensorSpec:
        elem = port.get_element_type().get_type_name()
        if elem not in _OV_TO_TRITON:
            raise ArtifactError(f"'{path}': tensor '{port.any_name}' has type {elem}, which Triton does not serve")
        dims = tuple(d.get_length() if d.is_static else -1 for d in port.get_partial_shape())
        return TensorSpec(port.any_name, _OV_TO_TRITON[elem], dims)

    inputs, outputs = tuple(spec(p) for p in model.inputs), tuple(spec(p) for p in model.outputs)
    firsts = {t.dims[0] for t in inputs + outputs if t.dims}
    if firsts == {-1}:
        return Signature(inputs, outputs, (1, None), fixed_batch=False)
    fixed = max(firsts)
    return Signature(inputs, outputs, (fixed, fixed), fixed_batch=True)


def engine_signature(
    engine: str | os.PathLike[str], onnx: str | os.PathLike[str] | None, num_classes: int
) -> Signature:
    """A TensorRT engine's inputs, outputs and batch range, from its sidecar's optimisation profile
    and the ONNX it was built from.

    Args:
        engine: the engine file (its sidecar beside it).
        onnx: the ONNX it was built from, when the bundle holds it (None: one float32 ``logits``
            output of ``num_classes``).
        num_classes: the width of the ``logits`` output assumed without an ONNX.
    """
    from converters.tensorrt.record import read_record

    record = read_record(engine)
    profile = record.profile
    low, high = int(profile.min[0]), int(profile.max[0])
    if onnx is not None:
        base = onnx_signature(onnx)
        inputs, outputs = base.inputs, base.outputs
    else:
        inputs = (TensorSpec(profile.input, "TYPE_FP32", (-1, *profile.max[1:])),)
        outputs = (TensorSpec("logits", "TYPE_FP32", (-1, num_classes)),)
    # Spatial axes the profile fixes (min == max) are fixed in the engine, whatever the ONNX said.
    fixed_axes = tuple(a if a == b else -1 for a, b in zip(profile.min[1:], profile.max[1:], strict=True))
    inputs = tuple(
        dataclasses.replace(t, dims=(-1, *fixed_axes)) if t.name == profile.input else dataclasses.replace(
            t, dims=(-1, *t.dims[1:])
        )
        for t in inputs
    )
    outputs = tuple(dataclasses.replace(t, dims=(-1, *t.dims[1:])) for t in outputs)
    return Signature(inputs, outputs, (low, high), fixed_batch=low == high and low != 1)


def check_batching(
    signature: Signature, max_batch_size: int, preferred_batch_sizes: Sequence[int] | None
) -> tuple[int, ...]:
    """Refuse a ``max_batch_size`` (or preferred sizes) the artifact cannot run; return the preferred sizes.

    Args:
        signature: the artifact's signature.
        max_batch_size: Triton's largest batch (0: no batching).
        preferred_batch_sizes: the dynamic batcher's preferred sizes (None: none).
    """
    if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int) or max_batch_size < 0:
        raise InvalidArgumentError(
            f"max_batch_size must be an integer ≥ 0, got {max_batch_size!r}",
            hint="0 turns Triton's batching off; e.g. 8",
            param="max_batch_size",
        )
    low, high = signature.batch
    if signature.fixed_batch and max_batch_size > 0:
        raise InvalidArgumentError(
            f"the artifact has a fixed batch of {low}; Triton cannot batch requests into it "
            f"(max_batch_size {max_batch_size})",
            hint="use max_batch_size=0 (each request sends the whole batch), or export with a dynamic batch",
            param="max_batch_size",
        )
    if max_batch_size > 0 and low > 1:
        raise InvalidArgumentError(
            f"the engine's profile starts at batch {low}; Triton sends batches from 1 to max_batch_size",
            hint="rebuild the engine with min_batch=1",
            param="max_batch_size",
        )
    if high is not None and max_batch_size > high:
        raise InvalidArgumentError(
            f"max_batch_size {max_batch_size} is beyond the artifact's largest batch {high}",
            hint=f"use max_batch_size ≤ {high}, or rebuild the engine with a larger max_batch",
            param="max_batch_size",
        )
    if preferred_batch_sizes is None:
        return ()
    if max_batch_size == 0:
        raise InvalidArgumentError(
            "preferred_batch_sizes needs batching (max_batch_size > 0)", param="preferred_batch_sizes"
        )
    sizes = positive_ints(preferred_batch_sizes, "preferred_batch_sizes", example="4 8")
    too_big = [s for s in sizes if s > max_batch_size]
    if too_big:
        raise InvalidArgumentError(
            f"preferred_batch_sizes {too_big} exceed max_batch_size {max_batch_size}",
            hint=f"choose sizes ≤ {max_batch_size}",
            param="preferred_batch_sizes",
        )
    return tuple(sorted(sizes))


def model_config(
    signature: Signature,
    *,
    name: str,
    platform: str,
    max_batch_size: int,
    preferred_batch_sizes: Sequence[int] = (),
    max_queue_delay_us: int = DEFAULT_QUEUE_DELAY_US,
    instances: int = 1,
    kind: str = "cpu",
    label_outputs: Sequence[str] = (),
) -> Any:
    """Triton's ``ModelConfig`` message for ``signature`` (already checked by ``check_batching``).

    Dims drop the batch axis when ``max_batch_size > 0``, which also turns on dynamic batching.

    Args:
        signature: the artifact's signature.
        name: the model's name on the server.
        platform: Triton's platform (or, for OpenVINO, its backend).
        max_batch_size: Triton's largest batch (0: no batching).
        preferred_batch_sizes: the dynamic batcher's preferred sizes (default none).
        max_queue_delay_us: how long the batcher may hold a request to fill a batch, in microseconds.
        instances: model instances in the instance group (default 1).
        kind: ``gpu`` or ``cpu``: the instance group's kind (default ``cpu``).
        label_outputs: outputs that get ``labels.txt`` as their ``label_filename`` (default none).
    """
    pb = require("tritonclient.grpc.model_config_pb2", extra="serve", purpose="Triton model configs")
    # Triton names most runtimes by platform; OpenVINO by its backend
    where = {"backend": platform} if platform in BACKEND_NOT_PLATFORM else {"platform": platform}
    config = pb.ModelConfig(name=name, max_batch_size=max_batch_size, **where)  # type: ignore[attr-defined]

    def dims(spec: TensorSpec) -> list[int]:
        return list(spec.dims[1:] if max_batch_size > 0 else spec.dims)

    for spec in signature.inputs:
        config.input.add(name=spec.name, data_type=pb.DataType.Value(spec.data_type), dims=dims(spec))  # type: ignore[attr-defined]
    for spec in signature.outputs:
        label = LABEL_FILE if spec.name in label_outputs else ""
        config.output.add(
            name=spec.name, data_type=pb.DataType.Value(spec.data_type), dims=dims(spec), label_filename=label  # type: ignore[attr-defined]
        )
    if max_batch_size > 0:
        config.dynamic_batching.preferred_batch_size.extend(preferred_batch_sizes)
        config.dynamic_batching.max_queue_delay_microseconds = max_queue_delay_us
    group = pb.ModelInstanceGroup.Kind.Value("KIND_GPU" if kind == "gpu" else "KIND_CPU")  # type: ignore[attr-defined]
    config.instance_group.add(kind=group, count=instances)
    return config


def config_text(config: Any) -> str:
    """The ``config.pbtxt`` text of a ``ModelConfig`` message (protobuf text format).

    Args:
        config: the ``ModelConfig`` message.
    """
    from google.protobuf import text_format

    return str(text_format.MessageToString(config))


def _data_files(source: Path, target: str) -> list[tuple[Path, str]]:
    """The files the model's runtime loads beside it, as (source, name in the version folder):
    ONNX external data under the names the graph records; an IR's ``.bin`` named after the
    target ``.xml`` (OpenVINO finds it by name). Checked as strictly as at export and packaging."""
    from converters import artifact

    kind = artifact.format_of(source).kind
    if kind == "onnx":
        return [(path, name) for path, name in artifact.companions(source)]
    if kind == "openvino":
        return [(path, Path(target).with_suffix(".bin").name) for path, _ in artifact.companions(source)]
    return []  # an engine's sidecar and script are rehead's, not Triton's


def _triton_target(kind: str) -> tuple[str, str]:
    """Triton's platform for ``kind`` and the model file's name in the version folder."""
    from converters import artifact

    target = artifact.by_kind(kind).triton
    if target is None:  # _pick_artifact chooses servable kinds only
        raise InternalError(f"Triton has no backend for artifacts of kind '{kind}'")
    return target


def _servable(kind: str) -> bool:
    """Triton has a backend for artifacts of ``kind``."""
    from converters import artifact

    return artifact.by_kind(kind).triton is not None


def _pick_artifact(artifacts: Sequence[BundleArtifact], kind: str, artifact: str | None) -> tuple[str, str]:
    """(relative file, kind) of the artifact to serve."""
    servable = [(a.file, a.kind) for a in artifacts]
    servable = [(f, k) for f, k in servable if _servable(k)]
    if artifact is not None:
        chosen = [(f, k) for f, k in servable if f == artifact or Path(f).name == artifact]
        if not chosen:
            raise InvalidArgumentError(
                f"the bundle holds no artifact Triton can serve named '{artifact}'",
                hint=f"one of: {', '.join(f for f, _ in servable) or 'none'}",
                param="artifact",
            )
        pick = chosen[0]
    else:
        engines = [a for a in servable if a[1] == "tensorrt"]
        onnxes = [a for a in servable if a[1] == "onnx"]
        irs = [a for a in servable if a[1] == "openvino"]
        ranked = (engines + onnxes) if kind == "gpu" else (onnxes + irs)
        if not ranked:
            raise InvalidArgumentError(
                f"the bundle holds no artifact Triton can serve on {kind}",
                hint="package an ONNX artifact (it runs on cpu and gpu; a TensorRT engine needs kind gpu)",
                param="kind",
            )
        pick = ranked[0]
    if pick[1] == "tensorrt" and kind != "gpu":
        raise InvalidArgumentError(
            "a TensorRT engine runs only on a GPU instance", hint="use kind='gpu', or an ONNX artifact", param="kind"
        )
    return pick


def triton_repository(
    bundle: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    name: str | None = None,
    max_batch_size: int = 8,
    preferred_batch_sizes: Sequence[int] | None = None,
    max_queue_delay_us: int = DEFAULT_QUEUE_DELAY_US,
    instances: int = 1,
    kind: str = "cpu",
    artifact: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the bundle's model into the Triton model repository ``output``; return ``output/<name>``.

    Args:
        bundle: a bundle directory or archive (verified first).
        output: the model repository folder (created if missing; other models in it are kept).
        name: the model's name in Triton (default: the bundle folder's name, made safe).
        max_batch_size: Triton's ``max_batch_size``: 0 turns batching off (the only choice for an
            artifact with a fixed batch); at most the engine profile's max batch.
        preferred_batch_sizes: the dynamic batcher's preferred sizes (each ≤ ``max_batch_size``).
        max_queue_delay_us: how long the batcher may hold a request to fill a batch, in microseconds.
        instances: model instances (``count`` of the instance group).
        kind: ``cpu`` (``KIND_CPU``, an ONNX artifact) or ``gpu`` (``KIND_GPU``; the TensorRT engine
            when the bundle holds one, else the ONNX).
        artifact: which artifact to serve, by file name (default: chosen by ``kind``).
        overwrite: replace an existing ``output/<name>``.
    """
    if kind not in KINDS:
        raise InvalidArgumentError(f"unknown kind '{kind}'", hint="cpu or gpu", param="kind")
    positive_int(instances, "instances", example="2")
    if isinstance(max_queue_delay_us, bool) or not isinstance(max_queue_delay_us, int) or max_queue_delay_us < 0:
        raise InvalidArgumentError(
            f"max_queue_delay_us must be an integer ≥ 0, got {max_queue_delay_us!r}", param="max_queue_delay_us"
        )
    if name is not None and not _NAME.match(name):
        raise InvalidArgumentError(
            f"'{name}' is not a usable Triton model name",
            hint="letters, digits, '_', '.', '-', starting with a letter or digit",
            param="name",
        )
    root, manifest = open_bundle(bundle)
    try:
        model_name = name or _safe_name(Path(bundle).name)
        file, artifact_kind = _pick_artifact(manifest.artifacts, kind, artifact)
        source = root / file
        class_names = list(manifest.class_names)
        if artifact_kind == "tensorrt":
            onnx_files = [a.file for a in manifest.artifacts if a.kind == "onnx"]
            from converters.tensorrt.record import read_record

            built_from = read_record(source).onnx_name
            match = next((root / f for f in onnx_files if Path(f).name == built_from), None)
            signature = engine_signature(source, match, len(class_names))
        elif artifact_kind == "openvino":
            signature = openvino_signature(source)
        else:
            signature = onnx_signature(source)
        platform, target = _triton_target(artifact_kind)
        preferred = check_batching(signature, max_batch_size, preferred_batch_sizes)
        label_outputs = [o.name for o in signature.outputs if o.dims[-1:] == (len(class_names),)]
        config = model_config(
            signature,
            name=model_name,
            platform=platform,
            max_batch_size=max_batch_size,
            preferred_batch_sizes=preferred,
            max_queue_delay_us=max_queue_delay_us,
            instances=instances,
            kind=kind,
            label_outputs=label_outputs,
        )
        extra = _data_files(source, target)
        with output_dir(Path(output) / model_name, overwrite=overwrite) as stage:
            version = stage / "1"
            version.mkdir()
            shutil.copyfile(source, version / target)
            for data, name in extra:
                # found relative to the graph file, under the name the graph (or OpenVINO) expects
                (version / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(data, version / name)
            (stage / LABEL_FILE).write_text("".join(f"{c}\n" for c in class_names), encoding="utf-8")
            (stage / "config.pbtxt").write_text(config_text(config), encoding="utf-8")
    finally:
        if is_temporary(root, bundle):
            # an archive was extracted for this call
            shutil.rmtree(root, ignore_errors=True)
    return Path(output) / model_name


def _safe_name(text: str) -> str:
    for suffix in (".tar.gz", ".tgz", ".tar", ".zip"):
        if text.endswith(suffix):
            text = text[: -len(suffix)]
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._-")
    return safe if safe and _NAME.match(safe) else "model"


__all__ = [
    "DEFAULT_QUEUE_DELAY_US",
    "KINDS",
    "Signature",
    "TensorSpec",
    "check_batching",
    "config_text",
    "engine_signature",
    "model_config",
    "onnx_signature",
    "triton_repository",
]
