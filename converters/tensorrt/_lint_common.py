"""What the TensorRT lint's checks share: the default ONNX domains, a graph's constants, a tensor's
element count and whether its values sit in external data (never read)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx

DEFAULT_DOMAINS = ("", "ai.onnx")


def element_count(tensor: onnx.TensorProto) -> int:
    """How many elements ``tensor`` holds (its dims' product).

    Args:
        tensor: an ONNX tensor.
    """
    count = 1
    for dim in tensor.dims:
        count *= int(dim)
    return count


def is_external(tensor: onnx.TensorProto) -> bool:
    """Whether ``tensor``'s values sit in an external-data file.

    Args:
        tensor: an ONNX tensor.
    """
    from converters.onnx import graph

    return graph.external_location(tensor) is not None


def constants(graph: onnx.GraphProto) -> dict[str, onnx.TensorProto]:
    """Initializers and Constant-node outputs of ``graph``, by tensor name.

    Args:
        graph: an ONNX graph.
    """
    found = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in DEFAULT_DOMAINS and node.output:
            for attr in node.attribute:
                if attr.name == "value" and attr.HasField("t"):
                    found[node.output[0]] = attr.t
    return found
