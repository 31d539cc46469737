"""What a build and a refit share at their end: the output path's check, the engine published with
its sidecar and trtexec script, and the ``ExportResult`` that reports it.

The engine, its sidecar ``<engine>.json`` and its ``<engine>.trtexec.sh`` are staged together and
published by ``toolkit._atomic.publish`` (companions first, the engine last): a reader that finds
the new engine finds its sidecar too, and an old sidecar beside a new engine (or the reverse,
after a crash) is refused by hash.
"""

from __future__ import annotations

import datetime
import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from converters.result import ExportResult, TensorInfo
from converters.tensorrt.record import ENGINE_SUFFIXES, EngineRecord, sidecar_path, trtexec_path
from converters.tensorrt.source import OnnxFacts
from converters.tensorrt.trtexec import trtexec_script
from toolkit import _atomic
from toolkit.errors import InvalidArgumentError


def check_engine_path(path: str | os.PathLike[str], overwrite: bool) -> Path:
    """The output engine's path, refused (exit 2) when it exists without ``overwrite``, cannot be
    written, or does not end in ``.engine``/``.plan``.

    Args:
        path: the engine to write.
        overwrite: replace an existing engine.
    """
    out = _atomic.check_output(path, overwrite=overwrite)
    if out.suffix.lower() not in ENGINE_SUFFIXES:
        raise InvalidArgumentError(
            f"output '{out}' must end in .engine or .plan", hint="e.g. path='model.engine'", param="path"
        )
    return out


def publish_engine(out: Path, plan: bytes, record: EngineRecord, *, overwrite: bool) -> None:
    """Write the engine ``out``, its sidecar and its trtexec script together (one staged publish).

    A sidecar or script of the engine's name left beside a missing engine belongs to it and is
    replaced without ``overwrite``, as before.

    Args:
        out: the engine's path.
        plan: the serialised engine.
        record: its sidecar record (which also holds the trtexec line).
        overwrite: replace an existing engine.
    """
    side, script = sidecar_path(out), trtexec_path(out)
    with _atomic.publish(out, overwrite=overwrite, owned=(side.name, script.name)) as stage:
        (stage / out.name).write_bytes(plan)
        (stage / side.name).write_bytes(record.dumps().encode("utf-8"))
        (stage / script.name).write_bytes(trtexec_script(record.trtexec).encode("utf-8"))


def sha256_bytes(data: bytes) -> str:
    """The sha256 of ``data``, as the sidecar records an engine's.

    Args:
        data: the bytes to hash.
    """
    return hashlib.sha256(data).hexdigest()


def utc_now() -> str:
    """The time now, as the sidecar's ``built_at`` records it (UTC, ISO 8601, seconds)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def engine_result(
    out: Path,
    record: EngineRecord,
    facts: OnnxFacts,
    checks: Mapping[str, float],
    seconds: float,
    warnings: Sequence[str],
) -> ExportResult:
    """The ``ExportResult`` of a written engine (``rehead export tensorrt`` and ``rehead refit`` print it).

    Args:
        out: the engine's path.
        record: its sidecar record.
        facts: what the ONNX it came from says (input, outputs, metadata).
        checks: the numbers of the build's checks.
        seconds: how long the build (or refit) took.
        warnings: what to warn about.
    """
    import onnx

    dims = tuple(d if isinstance(d, int) and d > 0 else str(d or "?") for d in facts.input_dims)
    dtype = onnx.helper.tensor_dtype_to_np_dtype(facts.input_dtype).name
    return ExportResult(
        path=out,
        format=f"tensorrt-{record.precision}",
        size_bytes=record.engine_bytes,
        opset=None,
        nodes_before=0,
        nodes_after=0,
        inputs=(TensorInfo(facts.input_name, dims, dtype),),
        outputs=tuple(TensorInfo(n, ("batch", len(facts.meta.get("class_names", [])) or "?"), "float32")
                      for n in facts.output_names),
        exporter=f"tensorrt {record.tensorrt_version}",
        seconds=seconds,
        warnings=tuple(warnings),
        checks=dict(checks),
    )
