"""Running an engine: ``EngineSession`` runs a plan on torch CUDA tensors, ``open_engine`` opens one
from a file only after checking it against its sidecar.

An engine is native code: ``open_engine`` verifies its sha256, TensorRT version and GPU against
the sidecar before deserialising it, and refits a weight-stripped engine from the ONNX named in
its sidecar (found beside it, hash checked). The TensorRT calls are in ``_trt``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from converters.tensorrt.profile import Profile
from converters.tensorrt.record import EngineRecord, check_compatible, sha256_of, verify_engine
from converters.tensorrt.runtime import require_runtime
from toolkit.errors import ArtifactError, InputShapeError

_TORCH_DTYPES = {
    "FLOAT": "float32",
    "HALF": "float16",
    "BF16": "bfloat16",
    "INT8": "int8",
    "UINT8": "uint8",
    "INT32": "int32",
    "INT64": "int64",
    "BOOL": "bool",
}


# --- running an engine ----------------------------------------------------------------------------


class EngineSession:
    """An engine on one GPU: inputs staged into its own device buffers (one set per input shape),
    runs enqueued on its own CUDA stream, optionally replayed from a captured CUDA graph.

    ``stage`` copies a host batch into the buffer for its shape and returns that shape (the
    handle ``enqueue`` takes); ``enqueue`` sets the input shape and tensor addresses, runs and
    returns the device outputs without waiting; ``run`` does both and copies the outputs to the
    host. A batch outside the profile is an ``InputShapeError`` naming the profile. A context
    manager: ``with EngineSession(plan) as session:`` closes it on every path.

    Args:
        plan: the serialised engine (a weight-stripped one refitted first).
        device: ``cuda`` or ``cuda:N`` (default ``cuda``).
        host_code: the plan carries the lean runtime (built ``version_compatible``; default False).
        cuda_graph: replay a CUDA graph captured on the first run of each batch shape (default False).
    """

    def __init__(
        self, plan: bytes, *, device: str = "cuda", host_code: bool = False, cuda_graph: bool = False
    ) -> None:
        import torch

        from converters.tensorrt import _trt

        self.device = torch.device(device)
        self._torch = torch
        with torch.cuda.device(self.device):
            self.engine = _trt.Engine(plan, host_code=host_code)
            self.stream = torch.cuda.Stream(self.device)
        specs = self.engine.tensors()
        inputs = [s for s in specs if s.is_input]
        if len(inputs) != 1:
            raise ArtifactError(f"the engine has {len(inputs)} inputs; rehead runs one-input classifiers")
        self.input = inputs[0]
        self.output_names = tuple(s.name for s in specs if not s.is_input)
        unknown = [f"{s.name} ({s.dtype})" for s in specs if s.dtype not in _TORCH_DTYPES]
        if unknown:
            raise ArtifactError(
                f"the engine has IO tensors of types rehead cannot hold: {', '.join(unknown)}",
                hint="export the model with float32, float16 or int8 inputs and outputs",
            )
        self._dtypes = {s.name: getattr(torch, _TORCH_DTYPES[s.dtype]) for s in specs}
        low, opt, high = self.engine.profile_shapes(self.input.name)
        self.profile = Profile(self.input.name, low, opt, high)
        self.cuda_graph = cuda_graph
        self._buffers: dict[tuple[int, ...], tuple[Any, dict[str, Any]]] = {}
        #: the CUDA graph of the last shape run (one execution context serves every shape, so a
        #: graph captured for one shape is stale once the context was set to another: recaptured)
        self._graph: tuple[tuple[int, ...], Any] | None = None

    def check_shape(self, shape: Sequence[int]) -> None:
        """``InputShapeError`` naming the profile when an input of ``shape`` is outside it.

        Args:
            shape: the engine input's shape.
        """
        if not self.profile.contains(shape):
            raise InputShapeError(
                f"input shape {tuple(shape)} is outside the engine's profile ({self.profile.describe()})",
                hint="run a batch inside the profile, or rebuild with a wider min_batch/max_batch",
            )

    def stage(self, batch: np.ndarray) -> tuple[int, ...]:
        """Copy ``batch`` into the engine's input buffer for its shape; returns that shape (the
        handle ``enqueue`` takes).

        Args:
            batch: a host batch in the engine's input layout.
        """
        shape = tuple(int(d) for d in batch.shape)
        self.check_shape(shape)
        torch = self._torch
        with torch.cuda.device(self.device):
            return self._stage(batch, shape)

    def _stage(self, batch: np.ndarray, shape: tuple[int, ...]) -> tuple[int, ...]:
        torch = self._torch
        if shape not in self._buffers:
            self.engine.set_input_shape(self.input.name, shape)
            # allocated on the engine's stream: the caching allocator ties a block to the stream it was
            # made on, so buffers made on the default stream and used on ours could be reused too early
            with torch.cuda.stream(self.stream):
                x = torch.empty(shape, dtype=self._dtypes[self.input.name], device=self.device)
                outs = {
                    n: torch.empty(self.engine.output_shape(n), dtype=self._dtypes[n], device=self.device)
                    for n in self.output_names
                }
            self._buffers[shape] = (x, outs)
        x, _ = self._buffers[shape]
        host = torch.from_numpy(np.ascontiguousarray(batch))
        with torch.cuda.stream(self.stream):
            x.copy_(host.to(x.dtype), non_blocking=False)
        return shape

    def _bind(self, shape: tuple[int, ...]) -> dict[str, Any]:
        x, outs = self._buffers[shape]
        self.engine.set_input_shape(self.input.name, shape)
        self.engine.set_address(self.input.name, int(x.data_ptr()))
        for name, tensor in outs.items():
            self.engine.set_address(name, int(tensor.data_ptr()))
        return outs

    def enqueue(self, shape: tuple[int, ...]) -> dict[str, Any]:
        """Run on the staged input of ``shape``; returns device outputs (synchronise before reading).

        Args:
            shape: the handle ``stage`` returned.
        """
        torch = self._torch
        with torch.cuda.device(self.device):
            if self._graph is not None and self._graph[0] == shape:
                with torch.cuda.stream(self.stream):
                    self._graph[1].replay()
                return self._buffers[shape][1]
            self._graph = None
            outs = self._bind(shape)
            self.engine.execute(self.stream.cuda_stream)
            if self.cuda_graph:
                # one plain run first flushes TensorRT's deferred shape work (as trtexec does), then
                # capture on our stream; replayed until another shape is run
                self.stream.synchronize()
                captured = torch.cuda.CUDAGraph()
                # thread_local, as trtexec captures: another thread's CUDA calls (a data loader, say)
                # do not invalidate this capture, while this thread's unsafe calls still fail it
                with torch.cuda.graph(captured, stream=self.stream, capture_error_mode="thread_local"):
                    self.engine.execute(self.stream.cuda_stream)
                self._graph = (shape, captured)
            return outs

    def synchronize(self) -> None:
        """Wait for everything enqueued on the session's stream."""
        self.stream.synchronize()

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Stage, run and wait: every output on the host as float32, by name.

        Args:
            batch: a host batch in the engine's input layout.
        """
        outs = self.enqueue(self.stage(batch))
        self.stream.synchronize()
        return {n: t.float().cpu().numpy() for n, t in outs.items()}

    def first_output(self, batch: np.ndarray) -> np.ndarray:
        """The first output of ``run`` (a classifier's logits).

        Args:
            batch: a host batch in the engine's input layout.
        """
        return self.run(batch)[self.output_names[0]]

    def close(self) -> None:
        """Wait for the stream, then free the buffers, the CUDA graph and the engine."""
        self.stream.synchronize()  # nothing may still run on buffers about to be freed
        self._graph = None
        self._buffers.clear()
        self.engine.close()

    def __enter__(self) -> EngineSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_engine(path: str | os.PathLike[str], *, device: str = "cuda", cuda_graph: bool = False) -> tuple[
    EngineSession, EngineRecord, tuple[str, ...]
]:
    """Verify ``path`` against its sidecar (hash, TensorRT version, GPU) before deserialising it,
    refit a weight-stripped engine from the ONNX named in its sidecar (found beside it, hash
    checked), and open it. Returns the session, the record and compatibility notes.

    ``ArtifactError`` (before TensorRT is asked for) for an engine that does not match its
    sidecar; exit 3 without TensorRT or a GPU; ``ArtifactError`` for an engine this TensorRT or
    GPU cannot run.

    Args:
        path: the engine file, its sidecar beside it.
        device: ``cuda`` or ``cuda:N`` (default ``cuda``).
        cuda_graph: replay captured CUDA graphs (default False; ``EngineSession``).
    """
    engine_path = Path(path)
    record = verify_engine(engine_path)
    version, gpu = require_runtime(purpose=f"running '{engine_path.name}'", device=device)
    notes = check_compatible(record, tensorrt_version=version, gpu=gpu)
    plan = engine_path.read_bytes()
    if record.weights_stripped:
        onnx_path = engine_path.parent / record.onnx_name
        if not onnx_path.is_file() or sha256_of(onnx_path) != record.onnx_sha256:
            raise ArtifactError(
                f"'{engine_path.name}' is weight-stripped and its ONNX '{record.onnx_name}' is not beside it "
                "unchanged",
                hint="put the ONNX it was built from beside it, or refit it into a full engine with rehead refit",
            )
        from converters.tensorrt import _trt

        plan = _trt.refit(plan, os.fspath(onnx_path), host_code=record.version_compatible)
    session = EngineSession(plan, device=device, host_code=record.version_compatible, cuda_graph=cuda_graph)
    return session, record, notes
