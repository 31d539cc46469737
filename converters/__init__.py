"""Converters: every artifact format rehead writes and runs, one folder each.

``onnx/`` (fp32, fp16, baked preprocessing), ``int8/`` (QDQ, accuracy-aware search),
``tensorrt/`` (engines), ``pt2/`` (AOTInductor), plus what they share: ``artifact`` (the one
registry of formats), ``runners/`` (the runner interface, the registry, eager PyTorch) and
``compare/`` (the one comparison layer).

Every export is linted first (``preflight``), checked right after (onnx.checker, shape
inference, the artifact's runner vs eager, judged like ``rehead validate``), carries the model's
record as metadata, and is moved into place atomically. Names are imported on first use, so that
``import converters.compare`` (pure NumPy) loads no exporter; the ``TYPE_CHECKING`` block names
the same imports for readers and type checkers, and a test keeps the two lists equal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from toolkit._lazy import lazy_exports

if TYPE_CHECKING:
    from converters.onnx.export import export_onnx as export_onnx
    from converters.onnx.external import check_external_data as check_external_data
    from converters.onnx.metadata import read_onnx_metadata as read_onnx_metadata
    from converters.onnx.options import OnnxExportOptions as OnnxExportOptions
    from converters.onnx.preflight import Finding as Finding
    from converters.onnx.preflight import preflight as preflight
    from converters.pt2.export import export_pt2 as export_pt2
    from converters.pt2.export import load_pt2 as load_pt2
    from converters.pt2.export import read_pt2_metadata as read_pt2_metadata
    from converters.pt2.options import Pt2ExportOptions as Pt2ExportOptions
    from converters.result import ExportResult as ExportResult
    from converters.result import TensorInfo as TensorInfo

_EXPORTS = {
    "ExportResult": "converters.result",
    "TensorInfo": "converters.result",
    "check_external_data": "converters.onnx.external",
    "export_onnx": "converters.onnx.export",
    "OnnxExportOptions": "converters.onnx.options",
    "Finding": "converters.onnx.preflight",
    "preflight": "converters.onnx.preflight",
    "read_onnx_metadata": "converters.onnx.metadata",
    "export_pt2": "converters.pt2.export",
    "load_pt2": "converters.pt2.export",
    "read_pt2_metadata": "converters.pt2.export",
    "Pt2ExportOptions": "converters.pt2.options",
}

__all__ = list(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS, globals())
