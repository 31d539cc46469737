"""TensorRT runner: an engine verified against its sidecar, run on torch CUDA tensors.

The sidecar is read first: an engine whose sha256 does not match it, or that was built for
another TensorRT version or GPU, is refused before deserialisation (an engine is native code).
Inputs are staged into the engine's own device buffers (``prepare``), ``infer`` enqueues
``execute_async_v3`` on the session's CUDA stream (optionally replaying a captured CUDA graph)
and returns without waiting; latency is timed with CUDA events on that stream. An engine built
from a graph with baked preprocessing gets uint8 NHWC pixels, as its ONNX did.

``cuda_graph=True`` replays a CUDA graph captured on the first run of each batch shape; pass
``TensorRTRunner(path, device="cuda", cuda_graph=True)`` to ``validate`` as an artifact.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from converters.onnx.runner import to_pixels
from converters.runners.base import Runner
from toolkit.errors import InputShapeError, InvalidArgumentError
from toolkit.records import Preprocessing


class TensorRTRunner(Runner):
    """Run a ``.engine``/``.plan`` built by ``rehead export tensorrt`` on ``device`` (cuda or cuda:N)."""

    kind = "tensorrt"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        device: str = "cuda",
        cuda_graph: bool = False,
        name: str | None = None,
        preprocessing: Preprocessing | None = None,
    ) -> None:
        super().__init__()
        if not device.startswith("cuda"):
            raise InvalidArgumentError(
                f"TensorRT engines run on a CUDA GPU, not on '{device}'", hint="validate with device='cuda'",
                param="device",
            )
        self.path = Path(path)
        self.device = device
        self.cuda_graph = cuda_graph
        self.name = name or self.path.name
        self.asynchronous = True
        self.notes: tuple[str, ...] = ()
        self._session: Any = None
        from converters.tensorrt.record import read_record

        # precision and shape from the sidecar, before anything is loaded
        record = read_record(self.path)
        self.precision = record.precision
        self.input_name = record.profile.input
        batch = record.profile.min[0] if record.profile.min[0] == record.profile.max[0] else None
        self.fixed_batch = batch
        dims = record.profile.opt[1:]
        #: the graph takes uint8 NHWC pixels (preprocessing baked in): ``preprocessing`` turns the
        #: float NCHW parity inputs back into pixels, as the ONNX Runtime runner does
        input_info = record.model.get("input")
        self.baked = bool(input_info.get("baked_preprocessing")) if isinstance(input_info, dict) else False
        self.preprocessing = preprocessing
        if self.baked and len(dims) == 3:
            dims = (dims[2], dims[0], dims[1])  # compare and report in the NCHW layout of the parity inputs
            self.input_note = " (the engine itself takes uint8 NHWC pixels)"
        self.input_shape = (batch, *dims)

    def _load(self) -> None:
        from converters.tensorrt.session import open_engine

        self._session, _, self.notes = open_engine(self.path, device=self.device, cuda_graph=self.cuda_graph)
        self.output_names = self._session.output_names
        self.cuda_stream = self._session.stream

    def _engine_input(self, batch: np.ndarray) -> np.ndarray:
        if not self.baked:
            return np.ascontiguousarray(batch, dtype=np.float32)
        if self.preprocessing is None:
            raise InputShapeError(
                f"'{self.path.name}' takes uint8 NHWC pixels (preprocessing baked in) but no preprocessing is known",
                hint="validate it against its model directory",
            )
        return to_pixels(batch, self.preprocessing)

    def check_input(self, batch: np.ndarray) -> None:
        """The base checks, then the engine's profile (``InputShapeError`` outside it).

        Args:
            batch: the batch to run.
        """
        super().check_input(batch)
        shape = tuple(batch.shape)
        self._session.check_shape((shape[0], shape[2], shape[3], shape[1]) if self.baked and len(shape) == 4 else shape)

    def prepare(self, batch: np.ndarray) -> tuple[int, ...]:
        """Copy the batch (uint8 NHWC pixels for a baked engine) into the engine's input buffer; its shape.

        Args:
            batch: a float32 NCHW batch.
        """
        self.load()
        return self._session.stage(self._engine_input(batch))

    def infer(self, prepared: Any) -> Any:
        """Enqueue one run on the staged input; device outputs (returns before the GPU finishes).

        Args:
            prepared: what ``prepare`` returned.
        """
        return self._session.enqueue(prepared)

    def fetch(self, raw: Any) -> dict[str, np.ndarray]:
        """Wait for the run; the outputs as float32 arrays on the host.

        Args:
            raw: what ``infer`` returned.
        """
        self._session.synchronize()
        return {n: t.float().cpu().numpy() for n, t in raw.items()}

    def synchronize(self) -> None:
        if self._session is not None:
            self._session.synchronize()

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
