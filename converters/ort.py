"""The one way rehead opens an ONNX Runtime session: providers for a device, threads, quiet logs.

The export-time check and every ONNX runner use ``open_session``, so that an artifact is
judged by the same session settings wherever it is run.
"""

from __future__ import annotations

import os
from typing import Any

from toolkit.errors import ArtifactError, HardwareUnavailableError, require


def providers_for(device: str, available: list[str]) -> list[str]:
    """Execution providers for ``device``: CPU only, or CUDA then CPU."""
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in available:
        raise HardwareUnavailableError(
            f"ONNX Runtime has no CUDAExecutionProvider (available: {', '.join(available)})",
            hint='pip install "rehead[gpu]" (onnxruntime-gpu) on a machine with an NVIDIA GPU, or use the CPU',
        )
    return ["CUDAExecutionProvider", "CPUExecutionProvider"]


def open_session(
    source: str | os.PathLike[str] | bytes,
    *,
    device: str = "cpu",
    threads: int | None = None,
    name: str | None = None,
) -> Any:
    """An ``onnxruntime.InferenceSession`` on a file (external data read beside it) or serialised
    bytes. ``threads``: intra-op threads (``None``: ONNX Runtime's choice; inter-op is then 1
    when set). Raises ``ArtifactError`` when ONNX Runtime cannot load the model,
    ``MissingDependencyError`` when onnxruntime is not installed."""
    ort: Any = require("onnxruntime", purpose="running ONNX models")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads is not None:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    providers = providers_for(device, list(ort.get_available_providers()))
    what = name or (os.fspath(source) if not isinstance(source, bytes) else "the model")
    try:
        return ort.InferenceSession(
            source if isinstance(source, bytes) else os.fspath(source), sess_options=options, providers=providers
        )
    except Exception as exc:  # ORT raises its own exception types (Fail, InvalidGraph, NotImplemented)
        raise ArtifactError(
            f"ONNX Runtime cannot load '{what}': {str(exc).splitlines()[0][:300]}",
            hint="re-export the model with 'rehead export' and check it with onnx.checker",
        ) from exc
