"""Backends that execute the model: eager PyTorch, ONNX Runtime, AOTInductor, (TensorRT slot)."""

from validation.runners.base import Runner
from validation.runners.registry import open_runner, register_runner, registered_suffixes

__all__ = ["Runner", "open_runner", "register_runner", "registered_suffixes"]
