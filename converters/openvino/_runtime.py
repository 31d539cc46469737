"""OpenVINO imported without its telemetry, devices and inference precisions checked.

``import openvino`` imports its model converter (``openvino.tools.ovc``), which starts
``openvino_telemetry`` and queues a usage event for Google Analytics unless the user opted out
(``opt_in_out --opt_out``) or ``CI=true``; NNCF does the same on import. rehead sends nothing:
it imports both with ``openvino_telemetry`` hidden, so that each falls back to its own no-op
stub (both catch the ``ImportError``), then puts ``sys.modules`` back as it was. A process
that imported openvino before rehead keeps the telemetry it set up; ``opt_in_out --opt_out``
(a file in ``~/intel``) turns it off for every process of the user.
"""

from __future__ import annotations

import sys
from importlib import import_module
from types import ModuleType
from typing import Any

from converters.openvino.options import INFERENCE_PRECISIONS
from toolkit.errors import HardwareUnavailableError, InvalidArgumentError, MissingDependencyError

#: OpenVINO's inference precisions (its element type names)
PRECISIONS = INFERENCE_PRECISIONS
#: the precision preset each inference precision is judged with (``converters.compare``)
PRESET_OF = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}
#: OpenVINO's device families; a name may carry an index or a list (``GPU.1``, ``AUTO:GPU,CPU``)
DEVICE_FAMILIES = ("CPU", "GPU", "NPU", "AUTO", "HETERO", "MULTI")
_HIDDEN = "openvino_telemetry"


def _import_quietly(name: str) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    missing = object()
    saved = sys.modules.get(_HIDDEN, missing)
    sys.modules[_HIDDEN] = None  # type: ignore[assignment]  # makes 'import openvino_telemetry' fail
    try:
        return import_module(name)
    finally:
        if saved is missing:
            sys.modules.pop(_HIDDEN, None)
        else:
            sys.modules[_HIDDEN] = saved  # type: ignore[assignment]


def openvino() -> ModuleType:
    """The ``openvino`` module, imported with its telemetry off (exit 3 with the install hint if absent)."""
    try:
        return _import_quietly("openvino")
    except ImportError as exc:
        raise MissingDependencyError(
            f"OpenVINO is not installed ({exc})", hint="pip install 'rehead[openvino]'"
        ) from exc


def nncf() -> ModuleType:
    """NNCF, imported with its telemetry off."""
    openvino()
    try:
        return _import_quietly("nncf")
    except ImportError as exc:
        raise MissingDependencyError(f"NNCF is not installed ({exc})", hint="pip install nncf") from exc


_CORE: Any = None


def core() -> Any:
    """One ``openvino.Core`` per process (creating one loads the device plugins)."""
    global _CORE
    if _CORE is None:
        _CORE = openvino().Core()
    return _CORE


def check_precision(precision: str) -> str:
    """``f32``, ``bf16`` or ``f16`` (``fp32``/``fp16`` accepted), else exit 2.

    Args:
        precision: the inference precision asked for.
    """
    name = {"fp32": "f32", "fp16": "f16"}.get(precision.lower(), precision.lower())
    if name not in PRECISIONS:
        raise InvalidArgumentError(
            f"unknown OpenVINO inference precision '{precision}'",
            hint=f"one of {', '.join(PRECISIONS)}",
            param="ov_precision",
        )
    return name


def ov_device(device: str) -> str:
    """rehead's ``cpu`` -> OpenVINO's ``CPU``; OpenVINO's own names (``GPU``, ``NPU.0``,
    ``AUTO:GPU,CPU``) pass through. An unknown name is exit 2; a known one this machine lacks,
    exit 3 (naming the devices it has).

    Args:
        device: rehead's ``cpu`` or an OpenVINO device name.
    """
    name = "CPU" if device.lower() == "cpu" else device.strip()
    family = name.split(":", 1)[0].split(".", 1)[0].upper()
    if family not in DEVICE_FAMILIES:
        raise InvalidArgumentError(
            f"'{device}' is not an OpenVINO device",
            hint=f"one of {', '.join(DEVICE_FAMILIES)} (with an index such as GPU.1, or AUTO:GPU,CPU)",
            param="device",
        )
    if family in ("AUTO", "HETERO", "MULTI"):
        return name.upper() if ":" not in name else family + name[len(family) :]
    available = list(core().available_devices)
    wanted = name.upper()
    if not any(d == wanted or d.split(".", 1)[0] == wanted for d in available):
        raise HardwareUnavailableError(
            f"OpenVINO device '{name}' is not on this machine (it has {', '.join(available) or 'none'})",
            hint="pick one it has, or AUTO",
        )
    return wanted


def supported_precisions(device: str) -> tuple[str, ...]:
    """The inference precisions ``device`` offers (from its OPTIMIZATION_CAPABILITIES).

    Args:
        device: an OpenVINO device name (its family is asked).
    """
    family = device.split(":", 1)[0].split(".", 1)[0]
    caps = {str(c).upper() for c in core().get_property(family, "OPTIMIZATION_CAPABILITIES")}
    return tuple(p for p in PRECISIONS if {"f32": "FP32", "bf16": "BF16", "f16": "FP16"}[p] in caps)
