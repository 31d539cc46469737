"""What an artifact is: precision (from rehead metadata, else from the graph), size on disk."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

_QUANT_OPS = {
    "QuantizeLinear",
    "DequantizeLinear",
    "QLinearConv",
    "QLinearMatMul",
    "MatMulInteger",
    "ConvInteger",
}


def onnx_metadata(path: Path) -> dict[str, Any]:
    """rehead's metadata of an ONNX file via ``converters.read_onnx_metadata`` (empty if unavailable)."""
    from converters import read_onnx_metadata
    from toolkit.errors import MetadataMissingError

    try:
        data = read_onnx_metadata(path)
    except MetadataMissingError:  # exported by another tool: read the graph instead
        return {}
    return dict(data) if isinstance(data, dict) else {}


@functools.lru_cache(maxsize=64)
def _graph_precision(path: str, mtime: float) -> str:
    import onnx

    model = onnx.load(path, load_external_data=False)
    if any(node.op_type in _QUANT_OPS for node in model.graph.node):
        return "int8"
    if any(init.data_type == onnx.TensorProto.FLOAT16 for init in model.graph.initializer):
        return "fp16"
    return "fp32"


def artifact_precision(path: Path) -> str:
    """``fp32``, ``fp16`` or ``int8``: the ``precision`` rehead recorded in the file, else read
    from the graph (quantisation nodes → int8, float16 weights → fp16)."""
    if path.suffix.lower() == ".onnx":
        recorded = str(onnx_metadata(path).get("precision", "")).lower()
        if recorded in ("fp32", "fp16", "int8"):
            return recorded
        if recorded in ("float16", "half"):
            return "fp16"
        return _graph_precision(str(path), path.stat().st_mtime)
    if path.suffix.lower() in (".engine", ".plan"):
        from converters.tensorrt.record import read_record

        return read_record(path).precision
    return "fp32"


def artifact_size(path: Path) -> int:
    """Bytes on disk, including ONNX external-data files next to it."""
    if not path.is_file():
        return 0
    total = path.stat().st_size
    if path.suffix.lower() == ".onnx":
        import onnx

        seen: set[str] = set()
        model = onnx.load(str(path), load_external_data=False)
        for init in model.graph.initializer:
            for entry in init.external_data:
                if entry.key == "location" and entry.value not in seen:
                    seen.add(entry.value)
                    extra = (path.parent / entry.value).resolve()
                    # count only files inside the artifact's folder (never follow '..' or absolute paths)
                    if extra.is_relative_to(path.parent.resolve()) and extra.is_file():
                        total += extra.stat().st_size
    return total
