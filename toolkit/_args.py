"""Argument checks every stage shares: positive integers, devices, batch-size lists.

Library messages name the keyword argument (``calib_samples``), never a CLI flag; the error
carries ``param`` so that the CLI can add the flag's name to its hint.
"""

from __future__ import annotations

from collections.abc import Iterable

from toolkit.errors import HardwareUnavailableError, InvalidArgumentError


def positive_int(value: object, name: str, *, example: str = "") -> int:
    """``value`` if it is an ``int`` (not a bool) greater than 0; ``InvalidArgumentError`` otherwise.

    Args:
        value: the value to check.
        name: the argument's name, for the error message (and its ``param``).
        example: a valid value for the error's hint (default none).
    """
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        kind = "" if isinstance(value, int) and not isinstance(value, bool) else f" ({type(value).__name__})"
        raise InvalidArgumentError(
            f"{name} must be a positive integer, got {value!r}{kind}",
            hint=f"e.g. {example}" if example else None,
            param=name,
        )
    return value


def positive_ints(values: Iterable[object], name: str, *, example: str = "") -> list[int]:
    """A non-empty list of positive integers, duplicates dropped (order kept).

    Args:
        values: the values to check.
        name: the argument's name, for the error message (and its ``param``).
        example: a valid value for the error's hint (default none).
    """
    items = [positive_int(v, name, example=example) for v in values]
    if not items:
        raise InvalidArgumentError(f"{name} is empty", hint=f"e.g. {example}" if example else None, param=name)
    return list(dict.fromkeys(items))


def check_device(device: str) -> str:
    """``cpu``, ``cuda`` or ``cuda:N``; ``HardwareUnavailableError`` (exit 3) at once when no CUDA
    GPU (or not that index) is usable, ``InvalidArgumentError`` for anything else.

    Args:
        device: the device asked for.
    """
    if device == "cpu":
        return device
    head, _, index = device.partition(":")
    if head != "cuda" or (index and not index.isdigit()):
        raise InvalidArgumentError(f"unknown device '{device}'", hint="cpu, cuda or cuda:N", param="device")
    import torch

    if not torch.cuda.is_available():
        raise HardwareUnavailableError(
            f"device '{device}' was asked for but no CUDA GPU is available", param="device"
        )
    if index and int(index) >= torch.cuda.device_count():
        raise HardwareUnavailableError(
            f"device '{device}' was asked for but only {torch.cuda.device_count()} CUDA GPU(s) are visible",
            param="device",
        )
    return device
