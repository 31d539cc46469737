"""Is TensorRT here, and a GPU? Asked before any GPU work, so that a missing runtime is exit 3 at once.

``require_runtime`` names what is missing (TensorRT, the GPU or both; an installed TensorRT that
does not load is told apart from an absent one). Nothing here imports TensorRT at module level.
"""

from __future__ import annotations

import importlib

from converters.tensorrt.options import TrtFeatures
from converters.tensorrt.record import GpuInfo
from toolkit.errors import HardwareUnavailableError, MissingDependencyError

INSTALL_HINT = (
    'pip install "rehead[gpu]" on a Linux machine with an NVIDIA GPU and driver (TensorRT\'s wheels '
    "fetch their libraries from pypi.nvidia.com at install time), or use NVIDIA's TensorRT container"
)


def tensorrt_version() -> str | None:
    """The installed TensorRT's version, or None when it cannot be imported with its libraries.

    Type stubs alone (``tensorrt-stubs``) make ``import tensorrt`` succeed as an empty namespace
    package; the bindings wheel without NVIDIA's libraries fails to load: both give None here,
    and ``tensorrt_load_error`` tells an installed TensorRT that fails to load from an absent one.
    """
    return _load_tensorrt()[0]


def _load_tensorrt() -> tuple[str | None, str | None]:
    """(version, None) when TensorRT loads, else (None, why)."""
    try:
        module = importlib.import_module("tensorrt")
    except Exception as exc:  # ImportError, or OSError from a missing libnvinfer
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
    if not hasattr(module, "Builder"):
        return None, "'import tensorrt' finds no TensorRT runtime (type stubs alone?)"
    return str(getattr(module, "__version__", "unknown")), None


#: distributions that carry TensorRT's Python runtime (the stubs do not count)
_TRT_DISTRIBUTIONS = ("tensorrt", "tensorrt-cu12", "tensorrt-cu13", "tensorrt-cu12-bindings",
                      "tensorrt-cu13-bindings", "tensorrt-bindings")


def tensorrt_installed() -> tuple[str, ...]:
    """The TensorRT runtime distributions installed (``name==version``), loadable or not."""
    from importlib import metadata

    found = []
    for name in _TRT_DISTRIBUTIONS:
        try:
            found.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return tuple(found)


def tensorrt_load_error() -> str | None:
    """Why an installed TensorRT does not load (an ABI or CUDA mismatch, missing libraries), or None
    when it loads or is not installed at all: the two must not read the same."""
    version, why = _load_tensorrt()
    if version is not None or not tensorrt_installed():
        return None
    return why


def tensorrt_features() -> TrtFeatures:
    """What the installed TensorRT offers (weak typing or not), read from its enums; call after
    ``require_runtime``."""
    from converters.tensorrt import _trt

    return TrtFeatures.detect(_trt.version(), _trt.builder_flag_names())


def gpu_info(device: str = "cuda") -> GpuInfo | None:
    """Name and compute capability of the CUDA GPU ``device``, or None when there is none.

    Args:
        device: ``cuda`` or ``cuda:N`` (default ``cuda``, the current GPU).
    """
    import torch

    if not torch.cuda.is_available():
        return None
    index = torch.device(device).index or 0
    major, minor = torch.cuda.get_device_capability(index)
    return GpuInfo(torch.cuda.get_device_name(index), (int(major), int(minor)))


def require_runtime(*, purpose: str, device: str = "cuda") -> tuple[str, GpuInfo]:
    """TensorRT's version and the GPU, or exit 3 at once naming what is missing (both when both are):
    ``MissingDependencyError`` without TensorRT, ``HardwareUnavailableError`` without a GPU.

    Args:
        purpose: what needs them, for the message ("building a TensorRT engine").
        device: ``cuda`` or ``cuda:N`` (default ``cuda``).
    """
    version, gpu = tensorrt_version(), gpu_info(device)
    if version is not None and gpu is not None:
        return version, gpu
    if version is None:
        broken = tensorrt_load_error()
        if broken is not None:
            raise MissingDependencyError(
                f"TensorRT ({', '.join(tensorrt_installed())}) is installed but does not load: {broken}",
                hint="a CUDA or ABI mismatch, or its libraries missing: install the tensorrt-cuXX wheel of your "
                'CUDA major (pip install "rehead[gpu-cu12]" or "rehead[gpu-cu13]")',
            )
        missing = "TensorRT is not installed" + (" and no CUDA GPU is visible" if gpu is None else "")
        raise MissingDependencyError(f"{missing}: {purpose} needs both", hint=INSTALL_HINT)
    raise HardwareUnavailableError(
        f"no CUDA GPU is visible (TensorRT {version} is installed): {purpose} needs one",
        hint="run on a machine with an NVIDIA GPU and driver (nvidia-smi lists it)",
    )
