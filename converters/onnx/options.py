"""``OnnxExportOptions``: what an ONNX export makes, declared once.

The one place the ONNX export's settings and their defaults are written: ``export_onnx`` reads
the record, ``rehead export onnx`` builds it from the flags a user gave (an absent flag takes the
default here), and reports serialise it (``to_json``). Contradicting settings are refused when
the record is made, naming the keyword argument at fault (``param``), before anything runs.

The module is light (the standard library, ``toolkit``'s argument checks and the INT8 search's
record): ``rehead --help`` reads the defaults here without loading NumPy, torch or ONNX. The
INT8 choices (``CALIB_METHODS``, ``INT8_TARGETS``) are declared here too, and
``converters.int8.quantize`` reads them from here.
"""

from __future__ import annotations

import dataclasses
import os

from converters.compare.defaults import DEFAULT_BATCH_SIZES
from converters.int8.record import Int8Targets
from toolkit._args import positive_int
from toolkit._option_record import OptionRecord
from toolkit.errors import InvalidArgumentError

#: the calibration methods of static INT8 (ONNX Runtime's ``CalibrationMethod``)
CALIB_METHODS = ("minmax", "entropy", "percentile")
#: what an INT8 graph is quantized for: ONNX Runtime on the CPU, or TensorRT
#: ``cpu``: uint8 activations, timed in ONNX Runtime; ``tensorrt``: symmetric int8; ``openvino``:
#: the ``cpu`` graph, with the accuracy-aware search's agreement and speed rule run in OpenVINO
INT8_TARGETS = ("cpu", "tensorrt", "openvino")


def check_target(target: str) -> None:
    """``InvalidArgumentError`` (``param="int8_target"``) unless ``target`` is one of ``INT8_TARGETS``.

    Args:
        target: the INT8 target asked for.
    """
    if target not in INT8_TARGETS:
        raise InvalidArgumentError(
            f"unknown INT8 target '{target}'",
            hint=f"int8_target is one of {', '.join(INT8_TARGETS)}",
            param="int8_target",
        )


@dataclasses.dataclass(frozen=True)
class OnnxExportOptions(OptionRecord):
    """The settings of one ONNX export (``export_onnx``).

    Args:
        opset: the ONNX opset; None (the default) takes the exporter's.
        dynamic_batch: name axis 0 ``batch`` (default True); False fixes the batch size at 1.
        fp16: fp16 weights and compute, fp32 inputs and outputs (default False).
        int8: static QDQ INT8, per-channel weights, calibrated on ``calib`` (default False).
        calib: the calibration images, ``"digits"`` or an image folder; None (the default): the
            fine-tuning data the model directory's lineage records.
        calib_samples: how many train-split images calibrate (default 128).
        calib_method: ``minmax`` (the default), ``entropy`` or ``percentile``.
        int8_target: ``cpu`` (the default: uint8 asymmetric activations, fastest in ONNX
            Runtime on x86) or ``tensorrt`` (int8 symmetric activations, zero point 0).
        bake_preprocess: take uint8 NHWC images at the model's input size and normalise in the
            graph (default False).
        optimize: run onnxscript's optimiser (default True).
        external_data: weights in a data file beside the model; None (the default) only when
            they are over 2 GiB.
        min_agreement: accuracy-aware INT8 (with ``int8``): the fastest graph whose top-1
            agreement with eager on held-out images is at least this fraction; None (the
            default): plain INT8.
        new_class_min_agreement: the same target for the new classes' images on their own
            (None, the default: no separate target).
        max_fp32_nodes: at most this many nodes back in fp32 for accuracy (None, the default:
            no limit).
        heldout: the held-out images of the agreement; None (the default): the calibration
            data's val/test split.
        heldout_samples: how many held-out images (default 256).
        speed_rule: keep in fp32 the nodes INT8 does not speed up (default True); False keeps
            every node INT8 unless it is too sensitive.
    """

    _WHAT = "ONNX export options"

    opset: int | None = None
    dynamic_batch: bool = True
    fp16: bool = False
    int8: bool = False
    calib: str | os.PathLike[str] | None = None
    calib_samples: int = 128
    calib_method: str = "minmax"
    int8_target: str = "cpu"
    bake_preprocess: bool = False
    optimize: bool = True
    external_data: bool | None = None
    min_agreement: float | None = None
    new_class_min_agreement: float | None = None
    max_fp32_nodes: int | None = None
    heldout: str | os.PathLike[str] | None = None
    heldout_samples: int = 256
    speed_rule: bool = True

    def __post_init__(self) -> None:
        if self.fp16 and self.int8:
            raise InvalidArgumentError(
                "fp16 and int8 exclude each other", hint="export one variant per file", param="int8"
            )
        positive_int(self.calib_samples, "calib_samples", example="calib_samples=128")
        if self.calib_method not in CALIB_METHODS:
            raise InvalidArgumentError(
                f"unknown calibration method '{self.calib_method}'",
                hint=f"calib_method is one of {', '.join(CALIB_METHODS)}",
                param="calib_method",
            )
        check_target(self.int8_target)
        self.int8_targets()  # the accuracy-aware search's settings agree with each other

    @property
    def precision(self) -> str:
        """``fp16``, ``int8`` or ``fp32``: the variant asked for."""
        return "fp16" if self.fp16 else "int8" if self.int8 else "fp32"

    @property
    def batch_sizes(self) -> tuple[int, ...]:
        """The batch sizes the export is checked at: ``rehead validate``'s, or 1 for a fixed batch."""
        return DEFAULT_BATCH_SIZES if self.dynamic_batch else (1,)

    def int8_targets(self) -> Int8Targets | None:
        """The accuracy-aware search's targets, or None when ``min_agreement`` is not set;
        ``InvalidArgumentError`` for a search setting without the search, or the search without int8."""
        if self.min_agreement is None:
            stray = {
                "new_class_min_agreement": self.new_class_min_agreement,
                "max_fp32_nodes": self.max_fp32_nodes,
                "heldout": self.heldout,
            }
            given = [k for k, v in stray.items() if v is not None]
            if given:
                raise InvalidArgumentError(
                    f"{given[0]} applies to accuracy-aware INT8 only",
                    hint="set min_agreement (and int8) too",
                    param=given[0],
                )
            return None
        if not self.int8:
            raise InvalidArgumentError(
                "min_agreement asks for accuracy-aware INT8, but int8 is off",
                hint="add int8=True (--int8)",
                param="min_agreement",
            )
        positive_int(self.heldout_samples, "heldout_samples", example="heldout_samples=256")
        return Int8Targets(self.min_agreement, self.new_class_min_agreement, self.max_fp32_nodes)
