"""An ``.onnx`` file as an artifact: its runner, companions, precision and record (``converters.artifact``)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from toolkit.errors import ArtifactError, MetadataMissingError

_QUANT_OPS = frozenset(
    {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "MatMulInteger", "ConvInteger"}
)


#: who can run an ``.onnx`` file (``open_runner(runtime=...)``)
RUNTIMES = ("onnxruntime", "openvino")


def open_runner(
    path: Path,
    *,
    device: str,
    threads: int | None,
    prep: Any = None,
    ort_provider: str | None = None,
    runtime: str | None = None,
    ov_precision: str | None = None,
) -> Any:
    """ONNX Runtime, or OpenVINO with ``runtime="openvino"``.

    Args:
        path: the ``.onnx`` file.
        device: ``cpu`` or ``cuda[:N]`` (for OpenVINO also its own device names).
        threads: intra-op threads (None: the runtime's choice).
        prep: the model's preprocessing, for a graph that takes uint8 pixels (default None).
        ort_provider: ONNX Runtime's CUDA or TensorRT execution provider (default None: the device's).
        runtime: ``onnxruntime`` (None, the default) or ``openvino``.
        ov_precision: OpenVINO's inference precision (default None: ``f32``).
    """
    if runtime not in (None, *RUNTIMES):
        from toolkit.errors import InvalidArgumentError

        raise InvalidArgumentError(
            f"unknown runtime '{runtime}' for an ONNX file", hint=f"one of {', '.join(RUNTIMES)}", param="runtime"
        )
    if runtime == "openvino":
        from converters.openvino.runner import OpenVinoRunner

        return OpenVinoRunner(
            path,
            device=device,
            threads=threads,
            ov_precision=ov_precision or "f32",
            precision=precision(path),
            preprocessing=prep,
        )
    from converters.onnx.runner import OrtRunner

    return OrtRunner(
        path, device=device, threads=threads, precision=precision(path), preprocessing=prep, provider=ort_provider
    )


def companions(path: Path) -> list[tuple[Path, str]]:
    """The external-data files, each checked for a safe name and present beside the model.

    Args:
        path: the ``.onnx`` file.
    """
    from converters.onnx.external import check_location_name, external_locations

    found: list[tuple[Path, str]] = []
    for location in external_locations(path):
        check_location_name(location, model=path.name)
        source = path.parent / location
        if not source.is_file():
            raise ArtifactError(f"'{path.name}' needs its external data '{location}', which is missing")
        found.append((source, location))
    return found


def recorded_model(path: Path) -> dict[str, Any] | None:
    """rehead's metadata in the file, or None for an ONNX another tool wrote.

    Args:
        path: the ``.onnx`` file.
    """
    from converters.onnx.metadata import read_onnx_metadata

    try:
        data = read_onnx_metadata(path)
    except MetadataMissingError:
        return None
    return dict(data) if isinstance(data, dict) else None


@functools.lru_cache(maxsize=64)
def _graph_precision(path: str, mtime: float) -> str:
    import onnx

    from converters.onnx import graph

    model = onnx.load(path, load_external_data=False)
    if any(node.op_type in _QUANT_OPS for node in graph.nodes(model)):
        return "int8"
    if any(t.data_type == onnx.TensorProto.FLOAT16 for t in graph.tensors(model)):
        return "fp16"
    return "fp32"


def precision(path: Path) -> str:
    """The ``precision`` rehead recorded, else the graph's: quantisation nodes are int8, float16
    weights fp16 (model-local functions and subgraphs included).

    Args:
        path: the ``.onnx`` file.
    """
    recorded = str((recorded_model(path) or {}).get("precision", "")).lower()
    if recorded in ("fp32", "fp16", "int8"):
        return recorded
    if recorded in ("float16", "half"):
        return "fp16"
    return _graph_precision(str(path), path.stat().st_mtime)


def size(path: Path) -> int:
    """The file plus the external-data files inside its folder (never followed outside it).

    Args:
        path: the ``.onnx`` file.
    """
    from converters.onnx.external import external_locations

    total = path.stat().st_size
    folder = path.parent.resolve()
    try:
        locations = external_locations(path)
    except ArtifactError:
        return total
    for location in locations:
        extra = (path.parent / location).resolve()
        if extra.is_relative_to(folder) and extra.is_file():
            total += extra.stat().st_size
    return total
