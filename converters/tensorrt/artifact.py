"""A TensorRT engine (``.engine``/``.plan``) as an artifact: runner, companions, precision, record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from toolkit.errors import ArtifactError


def open_runner(path: Path, *, device: str, threads: int | None, prep: Any = None, **_: Any) -> Any:
    """The TensorRT runner: the engine verified against its sidecar, run on torch CUDA tensors.

    Args:
        path: the engine.
        device: ``cuda`` or ``cuda:N``.
        threads: ignored.
        prep: the model's preprocessing, for an engine that takes uint8 pixels (default None).
        **_: other formats' options, ignored.
    """
    from converters.tensorrt.runner import TensorRTRunner

    return TensorRTRunner(path, device=device, preprocessing=prep)


def companions(path: Path) -> list[tuple[Path, str]]:
    """The sidecar, the trtexec script if present, and for a weight-stripped engine the ONNX it is
    refitted from (with its own companions). The engine is verified against its sidecar first:
    one that does not match never travels.

    Args:
        path: the engine.
    """
    from converters.tensorrt.record import sidecar_path, trtexec_path, verify_engine

    record = verify_engine(path)
    found = [(sidecar_path(path), sidecar_path(path).name)]
    script = trtexec_path(path)
    if script.is_file():
        found.append((script, script.name))
    if record.weights_stripped:
        found += _refit_source(path, record.onnx_name, record.onnx_sha256)
    return found


def _refit_source(engine: Path, onnx_name: str, onnx_sha256: str) -> list[tuple[Path, str]]:
    from converters.onnx import artifact as onnx_artifact
    from converters.tensorrt.record import sha256_of

    onnx = engine.parent / onnx_name
    if Path(onnx_name).name != onnx_name or not onnx.is_file() or sha256_of(onnx) != onnx_sha256:
        raise ArtifactError(
            f"'{engine.name}' is weight-stripped and the ONNX it is refitted from, '{onnx_name}', is not beside "
            "it unchanged: the bundle could not open it",
            hint="put that ONNX beside the engine, or package a full engine (rehead refit writes one)",
        )
    return [(onnx, onnx_name), *onnx_artifact.companions(onnx)]


def recorded_model(path: Path) -> dict[str, Any] | None:
    """The model record in the engine's sidecar.

    Args:
        path: the engine (its sidecar is read).
    """
    from converters.tensorrt.record import read_record

    return dict(read_record(path).model)


def precision(path: Path) -> str:
    """The precision the sidecar records.

    Args:
        path: the engine (its sidecar is read).
    """
    from converters.tensorrt.record import read_record

    return str(read_record(path).precision)
