"""OpenVINO runner: an IR (``.xml`` + ``.bin``) or an ``.onnx`` file compiled by OpenVINO.

Options are the runtime's own knobs, recorded in the report: the inference precision (``f32``,
``bf16``, ``f16``; judged with the matching preset), the device (``CPU`` here; ``GPU``, ``NPU``,
``AUTO`` passed through), threads, and the latency hint (one stream, ``PERFORMANCE_HINT``
``LATENCY``). OpenVINO's default inference precision on a CPU with AMX or AVX512-BF16 is bf16,
not f32: rehead always sets it, so that an fp32 artifact is run in fp32 unless bf16 is asked for.
A quantised (QDQ) graph runs its INT8 parts in INT8 whatever the hint says.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from converters.onnx.runner import to_pixels
from converters.openvino import _runtime
from converters.runners.base import Runner
from toolkit.errors import ArtifactError, InputShapeError
from toolkit.records import Preprocessing


class OpenVinoRunner(Runner):
    """Run a model with OpenVINO.

    Args:
        path: the ``.xml`` IR (its ``.bin`` beside it) or an ``.onnx`` file.
        device: ``cpu`` (OpenVINO's ``CPU``) or an OpenVINO device name.
        threads: ``INFERENCE_NUM_THREADS`` (None: OpenVINO's choice).
        ov_precision: the inference precision, ``f32`` (default), ``bf16`` or ``f16``.
        precision: the artifact's own precision (``int8`` for a QDQ graph), from the registry.
        preprocessing: the model's preprocessing, for a graph that takes uint8 pixels.
    """

    kind = "openvino"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        device: str = "cpu",
        threads: int | None = None,
        ov_precision: str = "f32",
        precision: str = "fp32",
        preprocessing: Preprocessing | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self.ov_device = _runtime.ov_device(device)
        self.device = "cpu" if self.ov_device == "CPU" else self.ov_device.lower()
        self.threads = threads
        self.ov_precision = _runtime.check_precision(ov_precision)
        # judged at the coarser of the file's precision (int8 QDQ, fp16 weights) and the inference one
        inference = _runtime.PRESET_OF[self.ov_precision]
        self.precision = precision if precision == "int8" or inference == "fp32" else inference
        self.preprocessing = preprocessing
        suffix = "" if self.ov_precision == "f32" else f" [{self.ov_precision}]"
        runtime = " [openvino]" if self.path.suffix.lower() == ".onnx" else ""
        self.name = name or f"{self.path.name}{runtime}{suffix}"
        self.baked = False
        self._compiled: Any = None
        self._request: Any = None

    def config(self) -> dict[str, Any]:
        """The properties the model is compiled with (recorded in reports)."""
        config: dict[str, Any] = {
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": "1",
            "INFERENCE_PRECISION_HINT": self.ov_precision,
        }
        if self.threads is not None:
            config["INFERENCE_NUM_THREADS"] = str(self.threads)
        return config

    def _load(self) -> None:
        core = _runtime.core()
        if self.path.suffix.lower() == ".xml":
            from converters.openvino.artifact import check_weights

            check_weights(self.path)
        if self.ov_precision != "f32" and self.ov_precision not in _runtime.supported_precisions(self.ov_device):
            from toolkit.errors import HardwareUnavailableError

            raise HardwareUnavailableError(
                f"OpenVINO's {self.ov_device} here cannot infer in {self.ov_precision}",
                hint=f"it offers {', '.join(_runtime.supported_precisions(self.ov_device))}",
            )
        try:
            model = core.read_model(str(self.path))
            self._compiled = core.compile_model(model, self.ov_device, self.config())
        except RuntimeError as exc:
            raise ArtifactError(
                f"OpenVINO cannot load '{self.path.name}': {str(exc).strip().splitlines()[0][:300]}",
                hint="re-export it with rehead export openvino",
            ) from exc
        self._request = self._compiled.create_infer_request()
        port = self._compiled.input(0)
        self.input_name = port.any_name
        self.baked = port.get_element_type().get_type_name() == "u8"
        self.input_note = " (the graph itself takes uint8 NHWC pixels)" if self.baked else ""
        shape = [d.get_length() if d.is_static else None for d in port.get_partial_shape()]
        self.input_shape = (shape[0], shape[3], shape[1], shape[2]) if self.baked and len(shape) == 4 else tuple(shape)
        batch = self.input_shape[0] if self.input_shape else None
        self.fixed_batch = batch if isinstance(batch, int) and batch > 0 else None
        self.output_names = tuple(out.any_name for out in self._compiled.outputs)

    def prepare(self, batch: np.ndarray) -> Any:
        """The input for the infer request: uint8 NHWC pixels for a baked graph, else contiguous float32.

        Args:
            batch: a float32 NCHW batch.
        """
        self.load()
        if self.baked:
            if self.preprocessing is None:
                raise InputShapeError(
                    f"'{self.path.name}' takes uint8 NHWC pixels (preprocessing baked in) "
                    "but no preprocessing is known",
                    hint="validate it against its model directory",
                )
            return to_pixels(batch, self.preprocessing)
        return np.ascontiguousarray(batch, dtype=np.float32)

    def infer(self, prepared: Any) -> Any:
        """Run the infer request; ``InputShapeError`` when OpenVINO rejects the input.

        Args:
            prepared: what ``prepare`` returned.
        """
        try:
            self._request.infer({0: prepared})
        except RuntimeError as exc:
            raise InputShapeError(
                f"OpenVINO rejected input {tuple(prepared.shape)} for '{self.path.name}': "
                f"{str(exc).strip().splitlines()[0][:300]}",
                hint=f"check the batch size against the artifact's input shape {tuple(self.input_shape)}",
            ) from exc
        return [self._request.get_output_tensor(i).data for i in range(len(self.output_names))]

    def fetch(self, raw: Any) -> dict[str, np.ndarray]:
        """The outputs as float32 arrays by name.

        Args:
            raw: what ``infer`` returned.
        """
        return {n: np.array(v, dtype=np.float32) for n, v in zip(self.output_names, raw, strict=True)}

    def close(self) -> None:
        self._request = None
        self._compiled = None
