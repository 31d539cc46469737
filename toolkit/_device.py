"""Which CUDA device a run uses, entered as torch's current device, and fp32 that stays fp32.

``cuda:1`` is not enough on its own: CUDA events, streams, graphs and the libraries that take
"the current device" (TensorRT's refitter, ONNX Runtime's IO binding) use the current device,
not the tensor's. ``on_device`` makes the asked device current for the duration of a run.

torch is imported inside each function: importing this module (toolkit.deploy does) stays light.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from toolkit.errors import InvalidArgumentError


def device_index(device: str) -> int | None:
    """``None`` for ``cpu``; the CUDA index for ``cuda`` (the current one) or ``cuda:N`` (N).

    Args:
        device: ``cpu``, ``cuda`` or ``cuda:N``.
    """
    if device == "cpu":
        return None
    head, _, index = device.partition(":")
    if head != "cuda" or (index and not index.isdigit()):
        raise InvalidArgumentError(f"unknown device '{device}'", hint="cpu, cuda or cuda:N", param="device")
    import torch

    return int(index) if index else torch.cuda.current_device()


def device_kind(device: str) -> str:
    """``cpu`` or ``cuda`` (``cuda:N`` is ``cuda``).

    Args:
        device: a device string.
    """
    return "cuda" if device.partition(":")[0] == "cuda" else "cpu"


@contextlib.contextmanager
def on_device(device: str) -> Iterator[int | None]:
    """Make ``device`` torch's current CUDA device inside (``torch.cuda.device``); nothing for
    ``cpu`` and nothing for a bare ``cuda`` (the current device already). Yields the index.

    Args:
        device: ``cpu``, ``cuda`` or ``cuda:N``.
    """
    if device == "cpu" or device == "cuda":
        yield None if device == "cpu" else device_index(device)
        return
    import torch

    index = device_index(device)
    with torch.cuda.device(index):
        yield index


@contextlib.contextmanager
def strict_fp32() -> Iterator[None]:
    """TF32 off and full-precision float32 matmuls for the duration (restored afterwards)."""
    import torch

    matmul = torch.backends.cuda.matmul.allow_tf32
    cudnn = torch.backends.cudnn.allow_tf32
    precision = torch.get_float32_matmul_precision()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul
        torch.backends.cudnn.allow_tf32 = cudnn
        torch.set_float32_matmul_precision(precision)
