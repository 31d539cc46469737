"""The ``Runner`` interface every backend implements, and a timing-accounting helper.

A runner turns a float32 NCHW batch (a NumPy array) into named float32 outputs. The work is
split so that latency measurement can time only the model: ``prepare`` stages the input
(on the GPU where the backend runs there), ``infer`` runs the model and returns backend-native
outputs, ``fetch`` converts those to NumPy. ``run`` chains the three. ``model_time_s``
accumulates wall-clock seconds spent inside ``run`` and timed loops, so that validation can
report its own overhead.

Runners are context managers: ``with open_runner(path) as runner:`` closes the session (and
frees device memory) on every path, errors included.
"""

from __future__ import annotations

import abc
import time
from types import TracebackType
from typing import Any

import numpy as np

from toolkit.errors import InputShapeError


class Runner(abc.ABC):
    """One way of executing the model: eager PyTorch, ONNX Runtime, AOTInductor, TensorRT.

    Attributes: ``name`` (shown in reports), ``kind`` (``eager``, ``onnxruntime``, ``pt2``,
    ``tensorrt``), ``device`` (``cpu`` or ``cuda``), ``precision`` (``fp32``, ``fp16``,
    ``bf16``, ``int8``), ``fixed_batch`` (the only batch size the artifact accepts, or ``None``
    when the batch axis is dynamic), ``output_names``, ``input_shape`` (NCHW, ``None`` or a name
    for a dynamic axis; empty when unknown), ``input_note`` (said after the expected shape).
    """

    name: str = "runner"
    kind: str = "unknown"
    device: str = "cpu"
    precision: str = "fp32"
    fixed_batch: int | None = None
    output_names: tuple[str, ...] = ("logits",)
    #: True when ``infer`` returns before the device finished (CUDA streams): time with events.
    asynchronous: bool = False
    #: the torch CUDA stream ``infer`` enqueues on (None: the current stream); latency events are
    #: recorded on it
    cuda_stream: Any = None
    #: how latency is timed when the runner is not ``asynchronous`` (``LatencyStats.timer``):
    #: ``perf_counter``, the host clock around a synchronous call (inputs and outputs on the host),
    #: or ``perf_counter+iobinding``, the host clock around a synchronous run on device buffers
    host_timer: str = "perf_counter"
    input_shape: tuple[int | str | None, ...] = ()
    input_name: str = "images"
    input_note: str = ""

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

    def __enter__(self) -> Runner:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def check_input(self, batch: np.ndarray) -> None:
        """Raise ``InputShapeError`` naming the expected dtype and shape when a batch cannot fit:
        float32, the rank of ``input_shape`` and every fixed axis of it (nothing more is known
        when ``input_shape`` is empty).

        Args:
            batch: the batch to run.
        """
        self.load()
        expected = "x".join(str(d) if isinstance(d, int) and d > 0 else "N" for d in self.input_shape)
        want = f"float32[{expected or '...'}] (NCHW) for input '{self.input_name}'{self.input_note}"
        if batch.dtype != np.float32:
            raise InputShapeError(f"input dtype {batch.dtype} does not fit: expected {want}")
        if not self.input_shape:
            return
        if batch.ndim != len(self.input_shape):
            raise InputShapeError(f"input of rank {batch.ndim} {tuple(batch.shape)} does not fit: expected {want}")
        for axis, (have, need) in enumerate(zip(batch.shape, self.input_shape, strict=True)):
            if isinstance(need, int) and need > 0 and have != need:
                what = "batch size" if axis == 0 else ("channel count" if axis == 1 else f"axis {axis}")
                hint = (
                    f"the artifact was exported with a fixed batch of {need}; re-export with a dynamic batch "
                    f"or validate at batch size {need}"
                    if axis == 0
                    else "match the model's preprocessing (config.json)"
                )
                raise InputShapeError(
                    f"{what} {have} of input {tuple(batch.shape)} does not fit: expected {want}", hint=hint
                )

    # --- execution -------------------------------------------------------------------------
    def prepare(self, batch: np.ndarray) -> Any:
        """Stage ``batch`` for ``infer`` (default: the array itself).

        Args:
            batch: a float32 NCHW batch.
        """
        return batch

    @abc.abstractmethod
    def infer(self, prepared: Any) -> Any:
        """Run the model on a prepared batch; backend-native outputs.

        Args:
            prepared: what ``prepare`` returned.
        """

    @abc.abstractmethod
    def fetch(self, raw: Any) -> dict[str, np.ndarray]:
        """Backend-native outputs -> ``{name: float32 array}``.

        Args:
            raw: what ``infer`` returned.
        """

    def synchronize(self) -> None:  # noqa: B027  optional hook, not abstract
        """Wait until queued device work is done (no-op on the CPU)."""

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Run one batch end to end; adds the wall time to ``model_time_s``.

        Args:
            batch: a float32 NCHW batch.
        """
        self.load()
        start = time.perf_counter()
        try:
            return self.fetch(self.infer(self.prepare(batch)))
        finally:
            self.model_time_s += time.perf_counter() - start
