"""The ONNX an engine is built from, as the build needs it: read without its weights.

``read_onnx`` checks that the file is an ONNX model with one image input (external data checked,
never loaded) and returns its input, outputs, rehead record and precision (``OnnxFacts``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from toolkit.errors import ArtifactError, InvalidArgumentError
from toolkit.records import Preprocessing

#: the keys of rehead's record in the ONNX metadata that the sidecar keeps
_MODEL_KEYS = ("arch", "class_names", "head_spec", "preprocessing", "weights_sha256", "precision", "input")


@dataclasses.dataclass(frozen=True)
class OnnxFacts:
    """What the build needs to know of an ONNX file, read without its weights."""

    path: Path
    input_name: str
    input_dims: tuple[int | str | None, ...]
    input_dtype: int
    output_names: tuple[str, ...]
    meta: Mapping[str, Any]
    precision: str

    @property
    def preprocessing(self) -> Preprocessing | None:
        """The model's preprocessing from its rehead record (None for another tool's ONNX)."""
        data = self.meta.get("preprocessing")
        return Preprocessing.from_json(data) if isinstance(data, Mapping) else None

    def model_record(self) -> dict[str, Any]:
        """rehead's record as the sidecar keeps it (``EngineRecord.model``; empty for another tool's)."""
        return {k: self.meta[k] for k in _MODEL_KEYS if k in self.meta}


def read_onnx(path: str | os.PathLike[str]) -> OnnxFacts:
    """The ONNX file's one input, outputs, rehead record (empty for another tool's) and precision.

    Args:
        path: an ``.onnx`` file (``InvalidArgumentError`` otherwise, and for a graph with other
            than one input; ``ArtifactError`` when it cannot be read).
    """
    import onnx

    from converters.onnx.external import check_external_data
    from converters.onnx.metadata import decode_metadata

    onnx_path = Path(path)
    if onnx_path.suffix.lower() != ".onnx":
        raise InvalidArgumentError(
            f"'{onnx_path.name}' is not an .onnx file", hint="build engines from rehead export onnx output"
        )
    check_external_data(onnx_path)
    try:
        model = onnx.load(os.fspath(onnx_path), load_external_data=False)
    except Exception as exc:  # DecodeError and friends: not an ONNX model
        raise ArtifactError(f"cannot read ONNX model '{onnx_path}': {type(exc).__name__}: {exc}") from exc
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise InvalidArgumentError(
            f"'{onnx_path.name}' has {len(inputs)} inputs; rehead builds engines for one image input",
            hint="export the model with rehead export onnx",
        )
    tensor = inputs[0].type.tensor_type
    dims = tuple(
        d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor.shape.dim
    )
    meta = decode_metadata({p.key: p.value for p in model.metadata_props})
    quantized = any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)
    fp16 = any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)
    precision = "int8" if quantized else ("fp16" if fp16 else "fp32")
    return OnnxFacts(
        path=onnx_path,
        input_name=inputs[0].name,
        input_dims=dims,
        input_dtype=int(tensor.elem_type),
        output_names=tuple(o.name for o in model.graph.output),
        meta=meta if "class_names" in meta else {},
        precision=precision,
    )
