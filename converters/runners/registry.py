"""Which runner opens which artifact: a registry keyed by file suffix, plus ``eager:<precision>``.

``.onnx`` → ONNX Runtime, ``.pt2`` → AOTInductor, ``.engine``/``.plan`` → TensorRT (verified
against its sidecar first; exit 3 without TensorRT or a GPU). Another package adds a backend
with ``register_runner(".ext", factory)``.

``open_runner``'s ``ort_provider`` (ONNX Runtime's CUDA or TensorRT execution provider) reaches
the ``.onnx`` factory only: registered factories keep the plain
``factory(path, device=, threads=, prep=)`` signature.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from torch import nn

from toolkit.errors import ArtifactError, InvalidArgumentError
from toolkit.records import Preprocessing
from converters.runners.base import Runner

#: factory(path, device=..., threads=..., prep=...) -> Runner (``prep``: the model's preprocessing or None)
RunnerFactory = Callable[..., Runner]
_REGISTRY: dict[str, RunnerFactory] = {}


def register_runner(suffix: str, factory: RunnerFactory) -> None:
    """Open files ending in ``suffix`` (``.engine``) with ``factory(path, device=, threads=, prep=)``."""
    _REGISTRY[suffix.lower()] = factory


def registered_suffixes() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


def _onnx(
    path: Path,
    *,
    device: str,
    threads: int | None,
    prep: Preprocessing | None = None,
    ort_provider: str | None = None,
) -> Runner:
    from converters.artifact import artifact_precision
    from converters.onnx.runner import OrtRunner

    return OrtRunner(
        path,
        device=device,
        threads=threads,
        precision=artifact_precision(path),
        preprocessing=prep,
        provider=ort_provider,
    )


def _pt2(path: Path, *, device: str, threads: int | None, prep: Preprocessing | None = None) -> Runner:
    from converters.pt2.runner import Pt2Runner

    return Pt2Runner(path, device=device)


def _tensorrt(path: Path, *, device: str, threads: int | None, prep: Preprocessing | None = None) -> Runner:
    from converters.tensorrt.runner import TensorRTRunner

    return TensorRTRunner(path, device=device, preprocessing=prep)


register_runner(".onnx", _onnx)
register_runner(".pt2", _pt2)
register_runner(".engine", _tensorrt)
register_runner(".plan", _tensorrt)


def open_runner(
    artifact: str | os.PathLike[str] | Runner,
    *,
    device: str = "cpu",
    threads: int | None = None,
    module: nn.Module | None = None,
    prep: Preprocessing | None = None,
    ort_provider: str | None = None,
) -> Runner:
    """A runner for ``artifact``: a ``Runner`` (returned as is), ``eager:<fp32|fp16|bf16>``
    (needs ``module``) or a file path whose suffix is registered. ``ort_provider`` (``cuda`` or
    ``tensorrt``; default None) picks ONNX Runtime's execution provider for an ``.onnx`` file
    opened by rehead's own factory and is ignored for every other artifact."""
    if isinstance(artifact, Runner):
        return artifact
    text = str(artifact)
    if text.startswith("eager:"):
        if module is None:
            raise InvalidArgumentError(f"'{text}' needs the model", hint="pass the model directory")
        from converters.runners.eager import EagerRunner

        return EagerRunner(module, device=device, precision=text.split(":", 1)[1], name=text)
    path = Path(text)
    factory = _REGISTRY.get(path.suffix.lower())
    if factory is None:
        raise InvalidArgumentError(
            f"no runner for '{path.name}' (suffix '{path.suffix}')",
            hint=f"artifacts end in one of {', '.join(registered_suffixes())}, "
            "or name eager:fp16 / eager:bf16",
        )
    if not path.is_file():
        raise ArtifactError(f"artifact '{path}' does not exist", hint="check the path or run 'rehead export'")
    if factory is _onnx:
        # only rehead's ONNX factory takes a provider; a plugin's factory keeps the plain signature
        return _onnx(path, device=device, threads=threads, prep=prep, ort_provider=ort_provider)
    return factory(path, device=device, threads=threads, prep=prep)
