"""TensorRT engines (``.engine``/``.plan``): build, refit, run, record and lint, one module each.

``options`` (``BuildOptions``, the build's settings declared once), ``profile`` (the optimisation
profile), ``source`` (the ONNX an engine is built from), ``build`` (``export_tensorrt``),
``refit`` (``refit_engine``), ``parity`` (the check every engine gets before it is written),
``session`` (``EngineSession``, ``open_engine``), ``runner`` (``TensorRTRunner`` for validate),
``record`` (the sidecar, read back and checked), ``signature`` (the graph signature a refit
needs), ``trtexec`` (the equivalent trtexec line), ``runtime`` (is TensorRT here, and a GPU?),
``_trt`` (the one module that calls TensorRT), ``ops`` and ``lint`` (``rehead lint --target
tensorrt``), ``artifact`` (the registry's entry). Names are imported on first use: nothing here
imports TensorRT, torch or onnx until it is needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from toolkit._lazy import lazy_exports

if TYPE_CHECKING:
    from converters.tensorrt.build import export_tensorrt as export_tensorrt
    from converters.tensorrt.lint import lint_onnx as lint_onnx
    from converters.tensorrt.options import BuildOptions as BuildOptions
    from converters.tensorrt.record import EngineRecord as EngineRecord
    from converters.tensorrt.record import read_record as read_record
    from converters.tensorrt.record import verify_engine as verify_engine
    from converters.tensorrt.refit import refit_engine as refit_engine
    from converters.tensorrt.session import EngineSession as EngineSession
    from converters.tensorrt.session import open_engine as open_engine

_EXPORTS = {
    "export_tensorrt": "converters.tensorrt.build",
    "lint_onnx": "converters.tensorrt.lint",
    "BuildOptions": "converters.tensorrt.options",
    "EngineRecord": "converters.tensorrt.record",
    "read_record": "converters.tensorrt.record",
    "verify_engine": "converters.tensorrt.record",
    "refit_engine": "converters.tensorrt.refit",
    "EngineSession": "converters.tensorrt.session",
    "open_engine": "converters.tensorrt.session",
}

__all__ = list(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS, globals())
