"""ONNX Runtime runner: the CPU execution provider, or CUDA where onnxruntime-gpu is installed
(its CUDA or TensorRT execution provider named with ``provider``).

Sessions come from ``converters.onnx.ort.open_session``, the same settings the export check uses.

On CUDA the runner binds device buffers (ONNX Runtime's IO binding): ``prepare`` copies the input
onto the GPU once, ``infer`` runs on it and leaves the outputs there, ``fetch`` copies them back.
Latency then times the model alone, as the TensorRT and pt2 runners' CUDA events do, not the
host-device copies around it (``host_timer``: ``perf_counter+iobinding``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from converters.runners.base import Runner
from toolkit.errors import InputShapeError
from toolkit.records import Preprocessing

_NP_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}


def to_pixels(batch: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """Normalised float NCHW -> the uint8 NHWC pixels they came from (rounded, clipped).

    Args:
        batch: normalised float NCHW images.
        prep: the model's preprocessing (its mean and std).
    """
    mean = np.asarray(prep.mean, dtype=np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(prep.std, dtype=np.float32).reshape(1, -1, 1, 1)
    pixels = np.clip(np.rint((batch * std + mean) * 255.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(pixels.transpose(0, 2, 3, 1))


def on_pixel_grid(images: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """``images`` moved onto the uint8 pixel grid (what a baked graph sees), normalised again.

    Args:
        images: normalised float NCHW images.
        prep: the model's preprocessing (its mean and std).
    """
    mean = np.asarray(prep.mean, dtype=np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(prep.std, dtype=np.float32).reshape(1, -1, 1, 1)
    pixels = to_pixels(images, prep).transpose(0, 3, 1, 2).astype(np.float32)
    return np.ascontiguousarray(((pixels / 255.0) - mean) / std, dtype=np.float32)


class _Bound(NamedTuple):
    """A prepared CUDA batch: the IO binding and the input's shape (for messages)."""

    binding: Any
    shape: tuple[int, ...]


class OrtRunner(Runner):
    """Run an ONNX file with ONNX Runtime.

    ``threads``: intra-op threads (default: ONNX Runtime's choice, recorded as ``None``);
    ``device``: ``cpu`` or ``cuda``.
    ``provider``: ONNX Runtime's execution provider on a CUDA device, ``cuda`` or ``tensorrt``
    (default None: the device's default providers); the name then says which
    (``model.onnx [tensorrt-ep]``) and ``providers`` lists the session's active providers once
    loaded, the one asked for first.
    ``model_bytes``: run this serialised model instead of reading ``path`` (used for
    intermediate-tensor copies).
    """

    kind = "onnxruntime"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        device: str = "cpu",
        threads: int | None = None,
        precision: str = "fp32",
        name: str | None = None,
        model_bytes: bytes | None = None,
        preprocessing: Preprocessing | None = None,
        provider: str | None = None,
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self.device = device
        self.threads = threads
        self.precision = precision
        self.provider = provider
        self.name = name or (f"{self.path.name} [{provider}-ep]" if provider else self.path.name)
        #: the session's execution providers in precedence order (empty until loaded)
        self.providers: tuple[str, ...] = ()
        self._model_bytes = model_bytes
        self._session: Any = None
        self._checked_after_run = False
        #: TensorRT's builder allows TF32 by default and rehead passes the TensorRT EP no switch for it:
        #: an fp32 model on it is judged as TF32 (the ``tf32`` precision, its preset), and said so
        self.precision_note = ""
        if provider == "tensorrt" and precision == "fp32":
            self.precision = "tf32"
            self.precision_note = "TensorRT EP: TF32 allowed while it builds, judged with the tf32 preset"
        self.input_name = "images"
        self.input_dtype: Any = np.float32
        self.input_shape: tuple[int | str | None, ...] = ()
        #: True when the graph takes uint8 NHWC pixels (preprocessing baked in); ``preprocessing``
        #: then turns the float NCHW parity inputs back into pixels
        self.baked = False
        self.preprocessing = preprocessing
        if device.startswith("cuda"):
            self.host_timer = "perf_counter+iobinding"

    def _load(self) -> None:
        from converters.onnx.ort import open_session

        source = self._model_bytes if self._model_bytes is not None else self.path
        self._session = open_session(
            source,
            device=self.device,
            threads=self.threads,
            name=str(self.path),
            provider=self.provider,
            precision=self.precision,
        )
        self.providers = tuple(self._session.get_providers())
        first = self._session.get_inputs()[0]
        self.input_name = first.name
        self.baked = first.type == "tensor(uint8)"
        self.input_note = " (the graph itself takes uint8 NHWC pixels)" if self.baked else ""
        self.input_dtype = np.uint8 if self.baked else _NP_TYPES.get(first.type, np.float32)
        shape = tuple(first.shape)
        # compare and report in the NCHW layout the parity inputs use
        self.input_shape = (
            (shape[0], shape[3], shape[1], shape[2]) if self.baked and len(shape) == 4 else shape
        )
        batch = self.input_shape[0] if self.input_shape else None
        self.fixed_batch = batch if isinstance(batch, int) and batch > 0 else None
        self.output_names = tuple(o.name for o in self._session.get_outputs())

    @property
    def on_cuda(self) -> bool:
        return self.device.startswith("cuda")

    def prepare(self, batch: np.ndarray) -> Any:
        """The session's feed (uint8 NHWC pixels for a baked graph); on CUDA an IO binding with it on the GPU.

        Args:
            batch: a float32 NCHW batch.
        """
        feed = self._feed(batch)
        if not self.on_cuda:
            return feed
        return self._bind(feed)

    def _bind(self, feed: dict[str, np.ndarray]) -> Any:
        """An IO binding with ``feed`` copied onto the GPU and every output left there."""
        import onnxruntime as ort

        from converters.onnx.ort import cuda_device_id

        index = cuda_device_id(self.device)
        binding = self._session.io_binding()
        for name, array in feed.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(array, "cuda", index))
        for name in self.output_names:
            binding.bind_output(name, "cuda", index)
        return _Bound(binding, tuple(next(iter(feed.values())).shape))

    def _feed(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        if self.baked:
            if self.preprocessing is None:
                raise InputShapeError(
                    f"'{self.path.name}' takes uint8 NHWC pixels (preprocessing baked in) "
                    "but no preprocessing is known",
                    hint="validate it against its model directory",
                )
            return {self.input_name: to_pixels(batch, self.preprocessing)}
        return {self.input_name: np.ascontiguousarray(batch, dtype=self.input_dtype)}

    def infer(self, prepared: Any) -> Any:
        """Run the session on a prepared batch; ``InputShapeError`` when ONNX Runtime rejects the input.

        Args:
            prepared: what ``prepare`` returned.
        """
        try:
            if isinstance(prepared, _Bound):
                # synchronous: ORT waits for its CUDA stream before returning
                self._session.run_with_iobinding(prepared.binding)
                outputs: Any = prepared
            else:
                outputs = list(self._session.run(None, prepared))
        except Exception as exc:  # ORT raises its own exception types
            shape = prepared.shape if isinstance(prepared, _Bound) else tuple(next(iter(prepared.values())).shape)
            raise InputShapeError(
                f"ONNX Runtime rejected input {shape} for '{self.path.name}': "
                f"{str(exc).splitlines()[0][:300]}",
                hint="check the batch size against the artifact's input shape "
                f"{tuple(self.input_shape)} and the model's preprocessing",
            ) from exc
        if not self._checked_after_run:  # the first run is where a provider fails and ORT falls back
            from converters.onnx.ort import check_still_active

            check_still_active(self._session, self.device, self.provider, str(self.path))
            self._checked_after_run = True
        return outputs

    def fetch(self, raw: Any) -> dict[str, np.ndarray]:
        """The outputs as float32 arrays by name (copied from the GPU for an IO binding).

        Args:
            raw: what ``infer`` returned.
        """
        values = raw.binding.copy_outputs_to_cpu() if isinstance(raw, _Bound) else raw
        return {n: np.asarray(v, dtype=np.float32) for n, v in zip(self.output_names, values, strict=True)}

    def close(self) -> None:
        self._session = None
