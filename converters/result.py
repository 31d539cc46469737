"""Frozen records of what an export wrote: ``TensorInfo`` and ``ExportResult``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """One graph input or output: its name, shape (ints, or names for dynamic axes) and dtype name."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str

    def describe(self) -> str:
        dims = ",".join(str(d) for d in self.shape)
        return f"{self.name} {self.dtype}[{dims}]"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """What ``export_onnx`` / ``export_pt2`` wrote.

    ``format`` is ``onnx``, ``onnx-fp16``, ``onnx-int8`` or ``pt2``; ``opset`` is None for pt2;
    ``nodes_before``/``nodes_after`` count graph nodes before and after optimisation (for pt2:
    FX graph nodes, both the same); ``exporter`` is ``dynamo``, ``torchscript`` or ``aoti``;
    ``seconds`` is the wall time of the whole export. ``external_data`` lists the data files
    written beside the model (names relative to its folder). ``checks`` holds the numbers measured
    right after export (``max_abs_diff_b1``, ``max_abs_diff_b8``, ``top1_agreement_b8``, ``parity_passed``, ...).
    """

    path: Path
    format: str
    size_bytes: int
    opset: int | None
    nodes_before: int
    nodes_after: int
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    exporter: str
    seconds: float
    warnings: tuple[str, ...] = ()
    external_data: tuple[str, ...] = ()
    checks: Mapping[str, float] = dataclasses.field(default_factory=dict)
    #: the accuracy-aware INT8 search's ``Int8Decision`` (None for any other export)
    int8_search: Any = None

    def summary(self) -> str:
        """One line: path, size, opset, nodes and the input/output signature."""
        size = f"{self.size_bytes / 2**20:.1f} MiB"
        opset = f", opset {self.opset}" if self.opset is not None else ""
        ins = "; ".join(t.describe() for t in self.inputs)
        outs = "; ".join(t.describe() for t in self.outputs)
        return (
            f"wrote {self.path} ({self.format}, {size}{opset}, exporter {self.exporter}, "
            f"nodes {self.nodes_before} -> {self.nodes_after}, {self.seconds:.1f} s): "
            f"inputs {ins} -> outputs {outs}"
        )

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["path"] = str(self.path)
        data["inputs"] = [t.to_json() for t in self.inputs]
        data["outputs"] = [t.to_json() for t in self.outputs]
        data["warnings"] = list(self.warnings)
        data["external_data"] = list(self.external_data)
        data["checks"] = dict(self.checks)
        data["int8_search"] = self.int8_search.to_json() if self.int8_search is not None else None
        return data
