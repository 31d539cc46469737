"""The ``Runner`` interface every backend implements, and a timing-accounting helper.

A runner turns a float32 NCHW batch (a NumPy array) into named float32 outputs. The work is
split so that latency measurement can time only the model: ``prepare`` stages the input
(on the GPU where the backend runs there), ``infer`` runs the model and returns backend-native
outputs, ``fetch`` converts those to NumPy. ``run`` chains the three. ``model_time_s``
accumulates wall-clock seconds spent inside ``run`` and timed loops, so that validation can
report its own overhead.
"""

from __future__ import annotations

import abc
import time
from typing import Any

import numpy as np


class Runner(abc.ABC):
    """One way of executing the model: eager PyTorch, ONNX Runtime, AOTInductor, TensorRT.

    Attributes: ``name`` (shown in reports), ``kind`` (``eager``, ``onnxruntime``, ``pt2``,
    ``tensorrt``), ``device`` (``cpu`` or ``cuda``), ``precision`` (``fp32``, ``fp16``,
    ``bf16``, ``int8``), ``fixed_batch`` (the only batch size the artifact accepts, or ``None``
    when the batch axis is dynamic), ``output_names``.
    """

    name: str = "runner"
    kind: str = "unknown"
    device: str = "cpu"
    precision: str = "fp32"
    fixed_batch: int | None = None
    output_names: tuple[str, ...] = ("logits",)
    #: True when ``infer`` returns before the device finished (CUDA streams): time with events.
    asynchronous: bool = False

    def __init__(self) -> None:
        self.model_time_s = 0.0
        self.load_s: float | None = None

    # --- lifecycle -------------------------------------------------------------------------
    def load(self) -> float:
        """Load the artifact (idempotent); returns the seconds the first load took."""
        if self.load_s is None:
            start = time.perf_counter()
            self._load()
            self.load_s = time.perf_counter() - start
        return self.load_s

    @abc.abstractmethod
    def _load(self) -> None: ...

    def close(self) -> None:  # noqa: B027  optional hook, not abstract
        """Release the session or module (optional)."""

    # --- execution -------------------------------------------------------------------------
    def prepare(self, batch: np.ndarray) -> Any:
        """Stage ``batch`` for ``infer`` (default: the array itself)."""
        return batch

    @abc.abstractmethod
    def infer(self, prepared: Any) -> Any:
        """Run the model on a prepared batch; backend-native outputs."""

    @abc.abstractmethod
    def fetch(self, raw: Any) -> dict[str, np.ndarray]:
        """Backend-native outputs -> ``{name: float32 array}``."""

    def synchronize(self) -> None:  # noqa: B027  optional hook, not abstract
        """Wait until queued device work is done (no-op on the CPU)."""

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Run one batch end to end; adds the wall time to ``model_time_s``."""
        self.load()
        start = time.perf_counter()
        try:
            return self.fetch(self.infer(self.prepare(batch)))
        finally:
            self.model_time_s += time.perf_counter() - start

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "device": self.device,
            "precision": self.precision,
            "fixed_batch": self.fixed_batch,
        }


def as_float32_outputs(names: tuple[str, ...], values: list[Any]) -> dict[str, np.ndarray]:
    """Pair output names with values, converting each to a float32 NumPy array."""
    return {n: np.asarray(v, dtype=np.float32) for n, v in zip(names, values, strict=False)}
