"""The graph signature: sha256 of an ONNX graph's structure without its weight values.

Two exports of the same architecture and head size share it whatever their weights, which is
what refitting an engine needs; the sidecar records it (``EngineRecord.graph_signature``).
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from toolkit.errors import ArtifactError


def graph_signature(onnx_path: str | os.PathLike[str]) -> str:
    """sha256 of the ONNX graph's structure: inputs, outputs, nodes (op, domain, names, non-tensor
    attributes) and initialisers (name, type, shape), without weight values or metadata.

    Exports of one architecture with one head size share it whatever their weights; any change
    of layer, head size or opset changes it. External data is never read.

    Args:
        onnx_path: the ONNX file (``ArtifactError`` when it is not one).
    """
    import onnx

    from converters.onnx.external import check_external_data

    check_external_data(onnx_path)
    try:
        model = onnx.load(os.fspath(onnx_path), load_external_data=False)
    except Exception as exc:  # DecodeError and friends: not an ONNX model
        raise ArtifactError(f"cannot read ONNX model '{onnx_path}': {type(exc).__name__}: {exc}") from exc
    return _signature(model)


def _value_info(info: Any) -> list[Any]:
    tensor = info.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor.shape.dim]
    return [info.name, tensor.elem_type, dims]


def _attribute(attr: Any) -> list[Any]:
    import onnx

    if attr.type == onnx.AttributeProto.GRAPH:
        return [attr.name, "graph", _graph(attr.g)]
    if attr.type == onnx.AttributeProto.GRAPHS:
        return [attr.name, "graphs", [_graph(g) for g in attr.graphs]]
    if attr.type in (onnx.AttributeProto.TENSOR, onnx.AttributeProto.TENSORS):
        tensors = [attr.t] if attr.type == onnx.AttributeProto.TENSOR else list(attr.tensors)
        return [attr.name, "tensor", [[t.data_type, list(t.dims)] for t in tensors]]
    return [attr.name, onnx.helper.get_attribute_value(attr)]


def _graph(graph: Any) -> dict[str, Any]:
    def text(value: Any) -> Any:
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else value

    return {
        "inputs": [_value_info(v) for v in graph.input],
        "outputs": [_value_info(v) for v in graph.output],
        "initializers": sorted([i.name, i.data_type, list(i.dims)] for i in graph.initializer),
        "nodes": [
            [
                n.op_type,
                n.domain,
                n.name,
                list(n.input),
                list(n.output),
                [[a[0], text(a[1])] if len(a) == 2 else a for a in (_attribute(x) for x in n.attribute)],
            ]
            for n in graph.node
        ],
    }


def _plain(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _signature(model: Any) -> str:
    body = {
        "opsets": sorted([o.domain, o.version] for o in model.opset_import),
        "graph": _graph(model.graph),
        "functions": sorted(f"{f.domain}::{f.name}" for f in model.functions),
    }
    text = json.dumps(body, sort_keys=True, default=_plain)
    return hashlib.sha256(text.encode()).hexdigest()
