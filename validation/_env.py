"""The machine a validation ran on: CPU, threads, GPU and driver, library versions."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from typing import Any

_LIBRARIES = ("rehead", "torch", "torchvision", "numpy", "onnx", "onnxruntime", "onnxruntime-gpu", "tensorrt")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _driver() -> str | None:
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else None


def capture(*, threads: int | None = None, device: str = "cpu") -> dict[str, Any]:
    """A JSON-able description of this machine and the settings that affect timings.

    Args:
        threads: the intra-op threads the run uses (default None: PyTorch's current count).
        device: the device the run uses (default ``cpu``).
    """
    import torch

    versions = {}
    for lib in _LIBRARIES:
        try:
            versions[lib] = importlib.metadata.version(lib)
        except importlib.metadata.PackageNotFoundError:
            continue
    env: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "threads": threads if threads is not None else torch.get_num_threads(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "device": device,
        "versions": versions,
        "tf32": {
            "cuda_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
            "cudnn": bool(torch.backends.cudnn.allow_tf32),
            "reference": False,
        },
        "gpu": None,
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        index = torch.device(device).index or 0
        env["gpu"] = {
            "name": torch.cuda.get_device_name(index),
            "capability": ".".join(str(v) for v in torch.cuda.get_device_capability(index)),
            "driver": _driver(),
            "cuda": torch.version.cuda,
        }
    try:
        import onnxruntime

        env["onnxruntime_providers"] = list(onnxruntime.get_available_providers())
    except ImportError:
        env["onnxruntime_providers"] = []
    return env
