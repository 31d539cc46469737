"""What the accuracy-aware INT8 search chooses among: the quantized nodes, their sensitivity, their groups.

Sensitivity comes from ONNX Runtime's own debugging tool, ``onnxruntime.quantization.qdq_loss_debug``:
both the fp32 graph and its all-INT8 QDQ version run on the same calibration images with every
activation saved, and each activation of the QDQ graph is compared with the fp32 one as a
signal-to-quantization-noise ratio (SQNR, dB; ``compute_activation_error``'s ``xmodel_err``).
That SQNR is cumulative (it falls with depth), so a node's own share is the *drop* from the
worst of its activation inputs to its output: the noise that node (its weights, its
arithmetic and the quantization of its output) adds. The nodes with the largest drop go back to
fp32 first.

Groups, for the speed rule: every quantized node belongs to one, by op type, with convolutions
split into ``Conv (depthwise)``, ``Conv (grouped)`` and ``Conv`` (ONNX Runtime's x86 INT8
kernels gain most on dense convolutions and least on depthwise ones), and the nodes of the
model's head (the weights under ``HeadSpec.module``) form the group ``head`` whatever their type.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

#: suffixes ONNX Runtime's QDQ quantizer gives a quantized tensor's dequantized copy
_DQ_SUFFIXES = ("_DequantizeLinear_Output", "_DequantizeLinear_Output_1")
#: at most this many images feed the sensitivity run (every activation of two graphs is kept)
SENSITIVITY_IMAGES = 16


def quantized_nodes(qdq_path: Path) -> dict[str, str]:
    """Name -> op type of the nodes a QDQ graph runs on dequantized inputs.

    Args:
        qdq_path: the QDQ ``.onnx`` file.
    """
    import onnx

    graph = onnx.load(os.fspath(qdq_path), load_external_data=False).graph
    return {
        n.name: n.op_type
        for n in graph.node
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear") and any(i.endswith(_DQ_SUFFIXES) for i in n.input)
    }


def node_groups(prepared: Path, nodes: Mapping[str, str], head_module: str) -> dict[str, str]:
    """The speed group of each node in ``nodes`` (see the module docstring).

    Args:
        prepared: the graph ``prepare_int8`` wrote.
        nodes: the quantized nodes, name -> op type (``quantized_nodes``).
        head_module: the head's module name: a node reading its weights is in the ``head`` group.
    """
    import onnx

    graph = onnx.load(os.fspath(prepared), load_external_data=False).graph
    initializers = {t.name for t in graph.initializer}
    prefix = head_module + "."
    groups: dict[str, str] = {}
    for node in graph.node:
        if node.name not in nodes:
            continue
        weights = [i for i in node.input if i in initializers]
        if any(w.startswith(prefix) for w in weights):
            groups[node.name] = "head"
        elif node.op_type == "Conv":
            group = next((int(a.i) for a in node.attribute if a.name == "group"), 1)
            channels = _channels(graph, node, initializers)
            if group > 1 and channels is not None and group == channels:
                groups[node.name] = "Conv (depthwise)"
            elif group > 1:
                groups[node.name] = "Conv (grouped)"
            else:
                groups[node.name] = "Conv"
        else:
            groups[node.name] = node.op_type
    return groups


def weighted_nodes(prepared: Path, nodes: Mapping[str, str]) -> set[str]:
    """The nodes of ``nodes`` that read an initializer with more than one element (weights).

    Args:
        prepared: the graph ``prepare_int8`` wrote.
        nodes: the quantized nodes, by name.
    """
    import onnx

    graph = onnx.load(os.fspath(prepared), load_external_data=False).graph
    sizes = {t.name: math.prod(t.dims) for t in graph.initializer}
    return {n.name for n in graph.node if n.name in nodes and any(sizes.get(i, 0) > 1 for i in n.input)}


def units(prepared: Path, nodes: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    """What moving each quantized node to fp32 takes: the node, and every quantized node that
    feeds one of its activation inputs and has no other consumer. ONNX Runtime's QDQ graph
    quantizes a tensor when either end of it is quantized, so a node alone in fp32 may still
    read a tensor that went through INT8 (the planted ``spread`` -> ``squeeze`` pair of the tests).

    Args:
        prepared: the graph ``prepare_int8`` wrote.
        nodes: the quantized nodes, by name.
    """
    import onnx

    graph = onnx.load(os.fspath(prepared), load_external_data=False).graph
    producer = {out: n for n in graph.node for out in n.output}
    uses: dict[str, int] = {}
    for node in graph.node:
        for tensor in node.input:
            uses[tensor] = uses.get(tensor, 0) + 1
    result: dict[str, tuple[str, ...]] = {}
    for node in graph.node:
        if node.name not in nodes:
            continue
        feeders = [
            producer[t].name
            for t in node.input
            if t in producer and producer[t].name in nodes and uses.get(t) == 1 and len(producer[t].output) == 1
        ]
        result[node.name] = (node.name, *feeders)
    return result


def _channels(graph: Any, node: Any, initializers: set[str]) -> int | None:
    """Output channels of a Conv, read off its weight's first dimension."""
    if len(node.input) < 2 or node.input[1] not in initializers:
        return None
    weight = next(t for t in graph.initializer if t.name == node.input[1])
    return int(weight.dims[0]) if weight.dims else None


def sensitivity(
    prepared: Path, qdq: Path, samples: np.ndarray, *, input_name: str, work: Path
) -> dict[str, float]:
    """Each quantized node's SQNR drop in dB (larger: more sensitive), measured by
    ``qdq_loss_debug`` (see the module docstring).

    A node whose output ONNX Runtime fused away (a Relu after a Conv) is judged at the first
    tensor downstream that both graphs still have.

    Args:
        prepared: the fp32 graph ``prepare_int8`` wrote.
        qdq: the all-INT8 QDQ graph quantized from it.
        samples: model inputs; at most ``SENSITIVITY_IMAGES`` of them are used.
        input_name: the graph's input name.
        work: a scratch folder.
    """
    import onnx
    from onnxruntime.quantization import qdq_loss_debug as debug

    images = samples[:SENSITIVITY_IMAGES]

    class Reader(debug.CalibrationDataReader):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            self.batches = iter([{input_name: images[i : i + 8]} for i in range(0, len(images), 8)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    activations = {}
    for name, path in (("float", prepared), ("qdq", qdq)):
        augmented = work / f"sensitivity-{name}.onnx"
        debug.modify_model_output_intermediate_tensors(
            os.fspath(path), os.fspath(augmented), save_as_external_data=_has_external_data(path)
        )
        activations[name] = debug.collect_activations(os.fspath(augmented), Reader())
        augmented.unlink(missing_ok=True)
    matched = debug.create_activation_matching(activations["qdq"], activations["float"])
    errors = debug.compute_activation_error(matched)
    sqnr = {name: err["xmodel_err"] for name, err in errors.items() if "xmodel_err" in err}

    graph = onnx.load(os.fspath(prepared), load_external_data=False).graph
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for tensor in node.input:
            consumers.setdefault(tensor, []).append(node)
    quantized = quantized_nodes(qdq)
    drops: dict[str, float] = {}
    for node in graph.node:
        if node.name not in quantized:
            continue
        inputs = [sqnr[i] for i in node.input if i in sqnr]
        out = _downstream_sqnr(node, sqnr, consumers)
        if out is None:
            continue
        before = min(inputs) if inputs else math.inf
        drop = (before - out) if math.isfinite(before) else max(0.0, 100.0 - out)
        drops[node.name] = round(float(drop), 3)
    return drops


def _downstream_sqnr(node: Any, sqnr: Mapping[str, float], consumers: Mapping[str, list[Any]]) -> float | None:
    """SQNR at ``node``'s output, or at the first single-consumer successor's that has one."""
    current = node
    for _ in range(4):
        outs = [o for o in current.output if o in sqnr]
        if outs:
            return min(sqnr[o] for o in outs)
        nxt = consumers.get(current.output[0], []) if current.output else []
        if len(nxt) != 1:
            return None
        current = nxt[0]
    return None


def _has_external_data(path: Path) -> bool:
    from converters.onnx.external import external_locations

    return bool(external_locations(path))
