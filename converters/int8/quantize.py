"""INT8: ONNX Runtime static quantization, QDQ format, per-channel weights, real calibration samples.

Two targets. ``cpu``: uint8 asymmetric activations, int8 symmetric per-channel weights (U8S8),
the combination ONNX Runtime's x86 kernels (VNNI/AMX) run fastest: about 2.5x fp32 for resnet18
here, where S8S8 was no faster than fp32. ``tensorrt``: int8 symmetric activations and weights
(zero point 0), what TensorRT's explicit quantization requires, and float biases (TensorRT
refuses a DequantizeLinear of INT32). Both are QDQ.
The model first goes through ``quant_pre_process`` (symbolic shape inference and ORT's graph
optimisation), as ONNX Runtime recommends.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from converters.onnx.external import save_onnx
from converters.onnx.options import CALIB_METHODS, check_target  # the choices, declared with the options
from toolkit.errors import ExportError, InternalError, InvalidArgumentError, require

CALIB_BATCH = 16


def _method(name: str, quant: Any) -> Any:
    table = {
        "minmax": quant.CalibrationMethod.MinMax,
        "entropy": quant.CalibrationMethod.Entropy,
        "percentile": quant.CalibrationMethod.Percentile,
    }
    if name not in table:
        raise InvalidArgumentError(
            f"unknown calibration method '{name}'",
            hint=f"calib_method is one of {', '.join(CALIB_METHODS)}",
            param="calib_method",
        )
    return table[name]


def prepare_int8(src: Path, work: Path, *, external: str | None = None) -> Path:
    """``quant_pre_process`` the fp32 model at ``src`` into ``work/int8-pre.onnx``, every node named.

    ONNX Runtime's graph optimisation leaves some nodes unnamed (a decomposed HardSwish): they get
    ``<op>_<index>`` names, so that ``quantize_prepared(exclude=...)`` can name any node.

    Args:
        src: the fp32 ``.onnx``.
        work: the scratch folder to write into.
        external: the external-data file name of a large model (``int8-pre.data`` is written); None
            (the default): all in one file.
    """
    import onnx

    require("onnxruntime.quantization", purpose="INT8 quantization")
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = work / "int8-pre.onnx"
    big = external is not None
    try:
        quant_pre_process(
            os.fspath(src),
            os.fspath(prepared),
            save_as_external_data=big,
            all_tensors_to_one_file=True,
            external_data_location="int8-pre.data" if big else None,
        )
    except Exception as exc:  # symbolic shape inference raises bare Exceptions on ops it cannot type
        # The graph passed onnx.checker, shape inference and ONNX Runtime before it got here:
        # a failure now is a defect in the quantization tool chain, not in the user's model.
        raise InternalError(
            f"ONNX Runtime's quantization pre-processing failed on a checked graph: {str(exc)[:200]}",
            hint="export fp32 or fp16 meanwhile, and report this with the full traceback",
        ) from exc
    model = onnx.load(os.fspath(prepared), load_external_data=False)
    seen: set[str] = set()
    renamed = False
    for index, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{index}"
            renamed = True
        seen.add(node.name)
    if renamed:  # external data stays where it is: only the graph's protobuf is rewritten
        onnx.save_model(model, os.fspath(prepared))
    return prepared


def quantize_int8(
    src: Path,
    dst: Path,
    samples: np.ndarray,
    *,
    method: str = "minmax",
    input_name: str = "images",
    external: str | None = None,
    work: Path,
    target: str = "cpu",
) -> None:
    """Quantize the fp32 model at ``src`` into ``dst``. Every node is quantized.

    Args:
        src: the fp32 ``.onnx``.
        dst: the QDQ ``.onnx`` to write.
        samples: the calibration model inputs.
        method: ``minmax`` (the default), ``entropy`` or ``percentile`` (99.999th).
        input_name: the graph's input name (default ``images``).
        external: the external-data file name of ``dst``; None (the default): all in one file.
        work: a scratch folder.
        target: ``cpu`` (U8S8, the default) or ``tensorrt`` (S8S8, symmetric); see ``INT8_TARGETS``.
    """
    check_target(target)
    prepared = prepare_int8(src, work, external=external)
    quantize_prepared(
        prepared, dst, samples, method=method, input_name=input_name, external=external, target=target
    )


def quantize_prepared(
    prepared: Path,
    dst: Path,
    samples: np.ndarray,
    *,
    method: str = "minmax",
    input_name: str = "images",
    external: str | None = None,
    target: str = "cpu",
    exclude: Sequence[str] = (),
    cache: Path | None = None,
) -> None:
    """Quantize the model ``prepare_int8`` wrote into ``dst``, leaving the nodes named in
    ``exclude`` in fp32.

    Args:
        prepared: the graph ``prepare_int8`` wrote.
        dst: the QDQ ``.onnx`` to write.
        samples: the calibration model inputs.
        method: ``minmax`` (the default), ``entropy`` or ``percentile`` (99.999th).
        input_name: the graph's input name (default ``images``).
        external: the external-data file name of ``dst``; None (the default): all in one file.
        target: ``cpu`` (the default: uint8 activations) or ``tensorrt`` (symmetric int8 activations).
        exclude: the names of the nodes to leave in fp32 (default none).
        cache: a calibration cache file (ONNX Runtime's ``calibration_cache_path``): written by the
            first call, read by the next ones, so a search over ``exclude`` calibrates once (ONNX
            Runtime releases without that parameter calibrate on ``samples`` again each call).
    """
    quant: Any = require("onnxruntime.quantization", purpose="INT8 quantization")
    calibrate = _method(method, quant)
    big = external is not None

    class Reader(quant.CalibrationDataReader):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            self.batches = iter(
                [{input_name: samples[i : i + CALIB_BATCH]} for i in range(0, len(samples), CALIB_BATCH)]
            )

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    trt = target == "tensorrt"
    # TensorRT's parser takes only activation types behind a DequantizeLinear: ORT's INT32 bias
    # quantization is refused there (onnx-tensorrt #850), and TensorRT fuses float biases itself
    extra = {"ActivationSymmetric": trt, "WeightSymmetric": True, "QuantizeBias": not trt}
    if method == "percentile":
        extra["CalibPercentile"] = 99.999  # type: ignore[assignment]
    cached: dict[str, Any] = {}
    if cache is not None and "calibration_cache_path" in inspect.signature(quant.quantize_static).parameters:
        cached["calibration_cache_path"] = os.fspath(cache)
    try:
        with _quiet():  # ONNX Runtime's quantizer logs on the root logger ("Axis 1 is out-of-range ...")
            quant.quantize_static(
                os.fspath(prepared),
                os.fspath(dst),
                Reader(),
                quant_format=quant.QuantFormat.QDQ,
                per_channel=True,
                activation_type=quant.QuantType.QInt8 if trt else quant.QuantType.QUInt8,
                weight_type=quant.QuantType.QInt8,
                calibrate_method=calibrate,
                nodes_to_exclude=list(exclude),
                use_external_data_format=big,
                extra_options=extra,
                **cached,
            )
    except (ValueError, RuntimeError) as exc:
        why = f"INT8 quantization failed ({method} calibration): {str(exc)[:200]}"
        if method != "minmax":  # histogram methods can fail on the statistics of these activations
            raise ExportError(why, hint="try calib_method='minmax'", param="calib_method") from exc
        # min/max of real activations always exists: failing here is the quantizer's defect
        raise InternalError(why, hint="export fp32 or fp16 meanwhile, and report this with the full traceback") from exc
    if big:
        _relocate(dst, external)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The root logger at ERROR for the duration (ONNX Runtime's quantization tools log warnings
    there that say nothing to rehead's users); its level is restored after."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _relocate(path: Path, location: str | None) -> None:
    """Rewrite the quantized model so its external data lives in one file named ``location``."""
    import onnx

    save_onnx(onnx.load(os.fspath(path)), path, location)
