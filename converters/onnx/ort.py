"""The one way rehead opens an ONNX Runtime session: providers for a device, threads, quiet logs.

The export-time check and every ONNX runner use ``open_session``, so that an artifact is
judged by the same session settings wherever it is run. With onnxruntime-gpu installed a caller
may name an execution provider (``provider="cuda"`` or ``"tensorrt"``); a session on a CUDA device
then runs on exactly that provider (the CUDA EP when none is named) or the call raises, never on a
silent fallback to the CPU.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from toolkit.errors import ArtifactError, HardwareUnavailableError, InvalidArgumentError, require

#: ``provider`` name -> ONNX Runtime's execution provider
PROVIDERS = {"cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}

_GPU_HINT = (
    'pip install "rehead[gpu]" (onnxruntime-gpu, which replaces onnxruntime: never install both) '
    "on a machine with an NVIDIA GPU, or use the CPU"
)

# ONNX Runtime's exception types that mean "this model is broken", not "this provider failed".
_MODEL_ERRORS = (
    "Fail", "InvalidArgument", "InvalidGraph", "InvalidProtobuf", "NoModel", "NoSuchFile", "NotImplemented"
)


def ort_trt_cache_dir() -> Path:
    """Root of the TensorRT execution provider's engine and timing caches:
    ``$REHEAD_CACHE_DIR/ort-trt``, else ``$XDG_CACHE_HOME/rehead/ort-trt`` (``~/.cache``).
    The same root rule as ``validation.reference.default_cache_dir`` (converters may not import
    validation)."""
    root = os.environ.get("REHEAD_CACHE_DIR")
    if root:
        return Path(root) / "ort-trt"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rehead" / "ort-trt"


def check_provider(provider: str | None, device: str) -> str | None:
    """A provider checked against a device: None, ``cuda`` or ``tensorrt`` (a CUDA device only);
    ``InvalidArgumentError`` naming ``ort_provider`` otherwise.

    Args:
        provider: the execution provider asked for, or None.
        device: ``cpu`` or ``cuda[:N]``.
    """
    if provider is None:
        return None
    if provider not in PROVIDERS:
        raise InvalidArgumentError(
            f"unknown ONNX Runtime provider '{provider}'",
            hint=f"one of {', '.join(PROVIDERS)}, or none for the device's default",
            param="ort_provider",
        )
    if not device.startswith("cuda"):
        raise InvalidArgumentError(
            f"ONNX Runtime provider '{provider}' runs on a CUDA GPU, but the device is '{device}'",
            hint="choose the cuda device, or leave the provider unset for the CPU",
            param="ort_provider",
        )
    return provider


def cuda_device_id(device: str) -> int:
    """The CUDA index ONNX Runtime is given for ``device`` (``cuda`` is 0, ``cuda:N`` is N).

    Args:
        device: ``cuda`` (0) or ``cuda:N`` (N).
    """
    _, _, index = device.partition(":")
    return int(index) if index.isdigit() else 0


def providers_for(
    device: str,
    available: list[str],
    provider: str | None = None,
    *,
    precision: str = "fp32",
    cache_dir: str | os.PathLike[str] | None = None,
) -> list[str | tuple[str, dict[str, Any]]]:
    """Execution providers for ``InferenceSession(providers=...)``.

    The CUDA EP runs an fp32 model in TF32 by default (its ``use_tf32`` option): rehead turns that
    off for ``precision`` fp32, so that the model is judged in the fp32 the eager reference computes
    in. Raises ``InvalidArgumentError`` (``ort_provider``) for an unknown provider or one on the CPU,
    ``HardwareUnavailableError`` when the requested provider is not in ``available``.

    Args:
        device: ``cpu`` or ``cuda[:N]`` (GPU N, default 0).
        available: ``onnxruntime.get_available_providers()``.
        provider: None (the default): CPU only on the CPU, CUDA then CPU on ``cuda``; ``cuda``: the
            CUDA EP, then CPU; ``tensorrt``: the TensorRT EP, then CUDA, then CPU.
        precision: the model's precision (default ``fp32``); ``fp16`` allows the TensorRT EP's FP16 kernels.
        cache_dir: the TensorRT EP's engine and timing caches (default None: ``ort_trt_cache_dir()``).
    """
    provider = check_provider(provider, device)
    cuda_options: dict[str, Any] = {"device_id": cuda_device_id(device)}
    if precision == "fp32":
        cuda_options["use_tf32"] = 0  # on by default in the CUDA EP; the eager reference has TF32 off
    cuda: tuple[str, dict[str, Any]] = ("CUDAExecutionProvider", cuda_options)
    if provider is None:
        if device == "cpu":
            return ["CPUExecutionProvider"]
        _require_available("CUDAExecutionProvider", available, param=None)
        return [cuda, "CPUExecutionProvider"]
    wanted = PROVIDERS[provider]
    _require_available(wanted, available, param="ort_provider")
    if provider == "cuda":
        return [cuda, "CPUExecutionProvider"]
    cache = os.fspath(cache_dir if cache_dir is not None else ort_trt_cache_dir())
    trt_options: dict[str, Any] = {
        "device_id": cuda_device_id(device),
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": cache,
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": cache,  # else it lands in the working directory
        "trt_fp16_enable": precision == "fp16",
    }
    return [(wanted, trt_options), cuda, "CPUExecutionProvider"]


def _require_available(wanted: str, available: list[str], *, param: str | None) -> None:
    if wanted not in available:
        raise HardwareUnavailableError(
            f"ONNX Runtime has no {wanted} (available: {', '.join(available) or 'none'})",
            hint=_GPU_HINT,
            param=param,
        )


def model_cache_key(source: str | os.PathLike[str] | bytes) -> str:
    """A short digest of the model's bytes (and of its external data files' names, sizes and
    modification times). ONNX Runtime keys cached TensorRT engines by the model's file name and
    graph structure, not its weights: a re-export with new weights under the same name would
    reuse a stale engine, so each model's engines get a folder of their own.

    Args:
        source: the ``.onnx`` file, or the serialised model's bytes.
    """
    digest = hashlib.sha256()
    if isinstance(source, bytes):
        digest.update(source)
        return digest.hexdigest()[:16]
    path = Path(source)
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    from converters.onnx.external import external_locations

    for location in external_locations(path):
        data = path.parent / location
        stat = data.stat() if data.is_file() else None
        digest.update(f"{location}:{stat.st_size if stat else -1}:{stat.st_mtime_ns if stat else -1};".encode())
    return digest.hexdigest()[:16]


def open_session(
    source: str | os.PathLike[str] | bytes,
    *,
    device: str = "cpu",
    threads: int | None = None,
    name: str | None = None,
    provider: str | None = None,
    precision: str = "fp32",
    spinning: bool = True,
) -> Any:
    """An ``onnxruntime.InferenceSession`` on a file (external data read beside it) or serialised
    bytes. Raises ``ArtifactError`` when ONNX Runtime cannot load the model,
    ``MissingDependencyError`` when onnxruntime is not installed, ``HardwareUnavailableError`` when
    the requested provider is not installed or ONNX Runtime would run the model on another one.

    Args:
        source: the ``.onnx`` file, or the serialised model's bytes.
        device: ``cpu`` (the default) or ``cuda[:N]``.
        threads: intra-op threads (default None: ONNX Runtime's choice; inter-op is then 1 when set).
        name: how messages name the model (default: its path).
        provider: None (the device's default providers), ``cuda`` or ``tensorrt`` (see ``providers_for``).
        precision: the model's precision (default ``fp32``; only matters for ``tensorrt``).
        spinning: False stops the intra-op threads from spinning after each run (set it when several
            sessions are timed in turn, so that one session's idle threads do not steal the cores from
            the next). Default True.
    """
    ort: Any = require("onnxruntime", purpose="running ONNX models")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads is not None:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    available = list(ort.get_available_providers())
    # checked before the model is read, so that a missing provider fails at once
    providers = providers_for(device, available, provider, precision=precision)
    if provider == "tensorrt":
        cache_dir = ort_trt_cache_dir() / model_cache_key(source)
        cache_dir.mkdir(parents=True, exist_ok=True)
        providers = providers_for(device, available, provider, precision=precision, cache_dir=cache_dir)
    what = name or (os.fspath(source) if not isinstance(source, bytes) else "the model")
    if not isinstance(source, bytes):  # external data, custom-domain ops, absurd dims: refused before ORT
        from converters.onnx.external import check_before_loading

        check_before_loading(source)
    try:
        session = ort.InferenceSession(
            source if isinstance(source, bytes) else os.fspath(source),
            sess_options=options,
            providers=providers,
        )
    except Exception as exc:  # ORT raises its own exception types (Fail, InvalidGraph, EPFail, ...)
        first = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        if provider is not None and type(exc).__name__ not in _MODEL_ERRORS:
            raise HardwareUnavailableError(
                f"ONNX Runtime's {PROVIDERS[provider]} failed to start for '{what}': {first}",
                hint=f"check the CUDA, cuDNN and TensorRT libraries onnxruntime-gpu {ort.__version__} needs, "
                "or leave the provider unset",
                param="ort_provider",
            ) from exc
        raise ArtifactError(
            f"ONNX Runtime cannot load '{what}': {first}",
            hint="re-export the model with 'rehead export' and check it with onnx.checker",
        ) from exc
    if device.startswith("cuda"):
        # ONNX Runtime's own fallback (a log line, then the run retried on the CPU providers) would
        # label CPU results with a GPU provider: switched off (the session method; an
        # ``enable_fallback`` argument to InferenceSession is ignored), so a failing run raises.
        session.disable_fallback()
        _check_active(session, first_provider(device, provider), what)
    return session


def first_provider(device: str, provider: str | None) -> str:
    """The execution provider a session on ``device`` must run on: the one named, else the device's.

    Args:
        device: ``cpu`` or ``cuda[:N]``.
        provider: the provider asked for (``cuda``, ``tensorrt``), or None.
    """
    if provider is not None:
        return PROVIDERS[provider]
    return "CUDAExecutionProvider" if device.startswith("cuda") else "CPUExecutionProvider"


def check_still_active(session: Any, device: str, provider: str | None, what: str) -> None:
    """After a run: the session still runs on its provider (a failed first run can make ONNX Runtime
    rebuild it on the CPU when fallback is on; rehead switches it off and checks anyway).

    Args:
        session: the ONNX Runtime session.
        device: its device (checked on ``cuda`` only).
        provider: the provider asked for, or None.
        what: how messages name the model.
    """
    if device.startswith("cuda"):
        _check_active(session, first_provider(device, provider), what)


def _check_active(session: Any, wanted: str, what: str) -> None:
    """ONNX Runtime skips a provider that fails to initialise (TensorRT libraries missing, say)
    with only a log line: refuse a session whose first provider is not the one asked for, so
    that nobody times the CPU believing it is TensorRT."""
    active = list(session.get_providers())
    if not active or active[0] != wanted:
        raise HardwareUnavailableError(
            f"ONNX Runtime did not start {wanted} for '{what}': the session would run on "
            f"{active[0] if active else 'no provider'} (active: {', '.join(active) or 'none'})",
            hint="install the CUDA, cuDNN and TensorRT libraries onnxruntime-gpu needs and put them on "
            'LD_LIBRARY_PATH (pip install "rehead[gpu]"), or leave the provider unset',
            param="ort_provider",
        )
