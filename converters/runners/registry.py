"""Which runner opens which artifact: the artifact registry's formats, plus ``eager:<precision>``.

Each format's folder opens its own files (``converters.artifact``: ``.onnx`` → ONNX Runtime,
``.pt2`` → AOTInductor, ``.engine``/``.plan`` → TensorRT, verified against its sidecar first;
exit 3 without TensorRT or a GPU). Another package adds a backend for a new suffix with
``register_runner(".ext", factory)``, or a whole format with ``converters.artifact.register_format``.

``open_runner``'s ``ort_provider`` (ONNX Runtime's CUDA or TensorRT execution provider) reaches
the ONNX format only: registered factories keep the plain
``factory(path, device=, threads=, prep=)`` signature.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from torch import nn

from converters.runners.base import Runner
from toolkit.errors import ArtifactError, InvalidArgumentError
from toolkit.records import Preprocessing

#: factory(path, device=..., threads=..., prep=...) -> Runner (``prep``: the model's preprocessing or None)
RunnerFactory = Callable[..., Runner]
_REGISTRY: dict[str, RunnerFactory] = {}


def register_runner(suffix: str, factory: RunnerFactory) -> None:
    """Open files ending in ``suffix`` (``.engine``) with ``factory(path, device=, threads=, prep=)``.

    Args:
        suffix: the file suffix, with its dot (case-insensitive).
        factory: makes the runner: ``factory(path, device=, threads=, prep=)``.
    """
    _REGISTRY[suffix.lower()] = factory


def registered_suffixes() -> tuple[str, ...]:
    """Every suffix a runner opens: the artifact registry's and those added with ``register_runner``."""
    from converters import artifact

    return tuple(sorted(set(artifact.suffixes()) | set(_REGISTRY)))


def open_runner(
    artifact: str | os.PathLike[str] | Runner,
    *,
    device: str = "cpu",
    threads: int | None = None,
    module: nn.Module | None = None,
    prep: Preprocessing | None = None,
    ort_provider: str | None = None,
    runtime: str | None = None,
    ov_precision: str | None = None,
) -> Runner:
    """A runner for ``artifact``: a ``Runner`` (returned as is), ``eager:<fp32|fp16|bf16>``
    (needs ``module``) or a file path whose suffix is registered.

    Args:
        artifact: the runner, ``eager:<precision>`` or the artifact's path.
        device: ``cpu`` or ``cuda[:N]`` (for OpenVINO also its own device names: ``GPU``, ``NPU``, ``AUTO``).
        threads: intra-op threads (None: the runtime's choice).
        module: the eager model (for ``eager:``).
        prep: the model's preprocessing (for graphs that take uint8 pixels).
        ort_provider: ONNX Runtime's execution provider for an ``.onnx`` file (``cuda`` or
            ``tensorrt``; default None); ignored for every other artifact.
        runtime: who runs an ``.onnx`` file: ``onnxruntime`` (default) or ``openvino``.
        ov_precision: OpenVINO's inference precision (``f32`` default, ``bf16``, ``f16``), for an
            IR or an ``.onnx`` run by OpenVINO.
    """
    if isinstance(artifact, Runner):
        return artifact
    text = str(artifact)
    if text.startswith("eager:"):
        if module is None:
            raise InvalidArgumentError(f"'{text}' needs the model", hint="pass the model directory")
        from converters.runners.eager import EagerRunner

        return EagerRunner(module, device=device, precision=text.split(":", 1)[1], name=text)
    path = Path(text)
    from converters.artifact import find_format, open_artifact

    factory = _REGISTRY.get(path.suffix.lower())
    fmt = find_format(path)
    if factory is None and fmt is None:
        raise InvalidArgumentError(
            f"no runner for '{path.name}' (suffix '{path.suffix}')",
            hint=f"artifacts end in one of {', '.join(registered_suffixes())}, "
            "or name eager:fp16 / eager:bf16",
        )
    if not path.is_file():
        raise ArtifactError(f"artifact '{path}' does not exist", hint="check the path or run 'rehead export'")
    if factory is not None:  # a plugin's factory keeps the plain signature
        return factory(path, device=device, threads=threads, prep=prep)
    given = {"ort_provider": ort_provider, "runtime": runtime, "ov_precision": ov_precision}
    options = {key: value for key, value in given.items() if value is not None}
    return open_artifact(path, device=device, threads=threads, prep=prep, **options)
