"""Converters: a model directory to ONNX (fp32, fp16, INT8) and AOTInductor ``.pt2`` packages.

Every export is linted first (``preflight``), checked right after (onnx.checker, shape
inference, ONNX Runtime or the package vs eager, judged like ``rehead validate``), carries the model's record
as metadata, and is moved into place atomically. Heavy backends (onnxruntime, onnxconverter-common)
are imported only when used.
"""

from converters._result import ExportResult, TensorInfo
from converters.external import check_external_data
from converters.metadata import read_onnx_metadata
from converters.onnx_export import export_onnx
from converters.preflight import Finding, preflight
from converters.pt2 import export_pt2, load_pt2, read_pt2_metadata

__all__ = [
    "ExportResult",
    "Finding",
    "TensorInfo",
    "check_external_data",
    "export_onnx",
    "export_pt2",
    "load_pt2",
    "preflight",
    "read_onnx_metadata",
    "read_pt2_metadata",
]
