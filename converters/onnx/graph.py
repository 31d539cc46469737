"""The one walk over an ONNX graph: every node and every tensor, wherever it sits.

A model's nodes are not all in ``model.graph.node``: control flow (``If``/``Loop``/``Scan``)
holds subgraphs in node attributes, and model-local functions (``model.functions``) hold node
lists that the runtimes inline when they load the model. Every check that asks "does this model
contain ..." (a quantisation node, a custom-domain op, a tensor stored outside the file) must
see all of them, or a model can hide what the check looks for one level down. Each reader of a
graph in rehead (the artifact registry, external data, the pre-load check, the TensorRT lint,
the Triton writer) walks it here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import onnx


def _subgraphs(node: onnx.NodeProto) -> Iterator[onnx.GraphProto]:
    for attr in node.attribute:
        if attr.HasField("g"):
            yield attr.g
        yield from attr.graphs


def _walk(nodes: Iterable[onnx.NodeProto]) -> Iterator[onnx.NodeProto]:
    for node in nodes:
        yield node
        for graph in _subgraphs(node):
            yield from _walk(graph.node)


def nodes(model: onnx.ModelProto, *, functions: bool = True) -> Iterator[onnx.NodeProto]:
    """Every node of ``model``: the main graph's, its subgraphs' (recursively) and, unless
    ``functions`` is False, the nodes of every model-local function (and their subgraphs).

    Args:
        model: the loaded model (external data need not be loaded).
        functions: include the bodies of ``model.functions``.
    """
    yield from _walk(model.graph.node)
    if functions:
        for function in model.functions:
            yield from _walk(function.node)


def _graph_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    yield from graph.initializer
    yield from _node_tensors(graph.node)


def _node_tensors(node_list: Iterable[onnx.NodeProto]) -> Iterator[onnx.TensorProto]:
    for node in node_list:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
        for graph in _subgraphs(node):
            yield from _graph_tensors(graph)


def tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    """Every stored tensor of ``model``: initializers of the main graph and of every subgraph,
    and tensor-valued attributes (``Constant`` values) anywhere, function bodies included.

    Args:
        model: the loaded model (external data need not be loaded).
    """
    yield from _graph_tensors(model.graph)
    for function in model.functions:
        yield from _node_tensors(function.node)


def local_functions(model: onnx.ModelProto) -> set[tuple[str, str]]:
    """The ``(domain, name)`` of each model-local function: a node calling one is not a custom op.

    Args:
        model: the loaded model.
    """
    return {(function.domain, function.name) for function in model.functions}


def external_location(tensor: Any) -> str | None:
    """The ``location`` of a tensor stored outside the file, or None for one stored inside.

    Args:
        tensor: an ``onnx.TensorProto``.
    """
    if tensor.data_location != onnx.TensorProto.EXTERNAL:
        return None
    return {entry.key: entry.value for entry in tensor.external_data}.get("location", "")
