"""fp16 weights and compute with fp32 inputs/outputs (onnxconverter-common's float16 converter)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from converters.onnx.external import save_onnx
from toolkit.errors import InternalError, require

# Ops kept in fp32: reductions and exponentials overflow or lose range in fp16
# (LayerNorm variance, softmax sums, GELU's erf), and resizes that ORT lacks fp16 kernels for.
SENSITIVE_OPS = (
    "LayerNormalization",
    "ReduceMean",
    "ReduceSum",
    "ReduceL2",
    "Pow",
    "Sqrt",
    "Reciprocal",
    "Exp",
    "Log",
    "Softmax",
    "LogSoftmax",
    "Erf",
    "InstanceNormalization",
    "GroupNormalization",
)


def convert_fp16(src: Path, dst: Path, *, external: str | None) -> None:
    """Convert the fp32 model at ``src`` to fp16 at ``dst``.

    Args:
        src: the fp32 ``.onnx``.
        dst: the fp16 ``.onnx`` to write.
        external: the external-data file name of ``dst``, or None: all in one file.
    """
    import onnx

    float16: Any = require("onnxconverter_common.float16", purpose="fp16 conversion")
    model = onnx.load(os.fspath(src))
    block = [*float16.DEFAULT_OP_BLOCK_LIST, *SENSITIVE_OPS]
    try:
        with warnings.catch_warnings():
            # one warning per tiny weight truncated to fp16's range: noise, not news
            warnings.filterwarnings("ignore", message="the float32 number", category=UserWarning)
            half = float16.convert_float_to_float16(
                model, keep_io_types=True, op_block_list=block, disable_shape_infer=external is not None
            )
    except Exception as exc:  # the converter raises ValueError/RuntimeError on graphs it cannot type
        # The fp32 graph passed onnx.checker and ONNX Runtime: a converter failure is a defect in
        # the export tool chain, not in the user's model.
        raise InternalError(
            f"fp16 conversion of a checked graph failed: {type(exc).__name__}: {str(exc)[:200]}",
            hint="export fp32 (or convert with onnxruntime's float16 tool) meanwhile, and report this "
            "with the full traceback",
        ) from exc
    save_onnx(half, dst, external)
