"""Backends that execute the model: eager PyTorch, ONNX Runtime, AOTInductor, (TensorRT slot)."""

from converters.runners.base import Runner
from converters.runners.registry import open_runner, register_runner, registered_suffixes

__all__ = ["Runner", "open_runner", "register_runner", "registered_suffixes"]
