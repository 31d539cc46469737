"""Self-describing models: the model directory's record stored in ONNX ``metadata_props``.

Keys are prefixed ``rehead.``; structured values are JSON. ``read_onnx_metadata`` decodes them
without loading the weights.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from toolkit.errors import ArtifactError, MetadataMissingError
from toolkit.records import ModelConfig

PREFIX = "rehead."
_JSON_KEYS = ("class_names", "head_spec", "preprocessing", "versions", "input", "quantization")


def versions() -> dict[str, str]:
    """Versions of rehead and of the libraries that shaped the artifact."""
    import onnx
    import torch

    from toolkit import __version__

    found = {"rehead": __version__, "torch": torch.__version__, "onnx": onnx.__version__}
    try:
        import onnxruntime

        found["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    return found


def build_metadata(
    config: ModelConfig,
    *,
    precision: str,
    input_spec: Mapping[str, Any],
    quantization: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """The ``metadata_props`` for a model exported from ``config``.

    Args:
        config: the model's config.
        precision: ``fp32``, ``fp16`` or ``int8``.
        input_spec: the input the graph takes (layout, dtype, whether preprocessing is baked in).
        quantization: how INT8 was made (default None: not quantized).
    """
    values: dict[str, Any] = {
        "arch": config.arch,
        "class_names": list(config.class_names),
        "head_spec": config.head.to_json(),
        "preprocessing": config.preprocessing.to_json(),
        "versions": versions(),
        "weights_sha256": config.weights_sha256,
        "precision": precision,
        "input": dict(input_spec),
    }
    if quantization is not None:
        values["quantization"] = dict(quantization)
    return {
        PREFIX + key: json.dumps(value, sort_keys=True) if key in _JSON_KEYS else str(value)
        for key, value in values.items()
    }


def decode_metadata(props: Mapping[str, str]) -> dict[str, Any]:
    """Decode ``rehead.*`` properties; other properties are kept under their own keys.

    Args:
        props: the model's ``metadata_props``, key -> value.
    """
    out: dict[str, Any] = {}
    for key, value in props.items():
        if not key.startswith(PREFIX):
            out[key] = value
            continue
        name = key.removeprefix(PREFIX)
        if name in _JSON_KEYS:
            try:
                out[name] = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ArtifactError(f"metadata '{key}' is not valid JSON: {exc}") from exc
        else:
            out[name] = value
    return out


def read_onnx_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata of the ``.onnx`` file at ``path``, decoded (weights and external data not loaded).

    Keys: ``class_names`` (list), ``head_spec`` (dict), ``preprocessing`` (dict), ``versions``
    (dict), ``weights_sha256``, ``precision`` (``fp32``/``fp16``/``int8``), ``arch``, ``input``
    (dict: ``layout`` NCHW/NHWC, ``dtype``, ``baked_preprocessing``). External-data locations are
    checked first (``check_external_data``). ``MetadataMissingError`` (an ``ArtifactError``) when
    the file is a readable ONNX model without rehead's metadata (exported by another tool).

    Args:
        path: the ``.onnx`` file.
    """
    import onnx

    from converters.onnx.external import check_external_data

    check_external_data(path)
    try:
        model = onnx.load(os.fspath(path), load_external_data=False)
    except Exception as exc:  # DecodeError and friends: the file is not an ONNX model
        raise ArtifactError(f"cannot read ONNX model '{path}': {type(exc).__name__}: {exc}") from exc
    return require_metadata(decode_metadata({p.key: p.value for p in model.metadata_props}), path)


def require_metadata(meta: dict[str, Any], path: str | os.PathLike[str]) -> dict[str, Any]:
    """``meta`` if it holds rehead's record; ``MetadataMissingError`` otherwise.

    Args:
        meta: decoded metadata (``decode_metadata``).
        path: the file it came from, for the message.
    """
    if "class_names" not in meta:
        raise MetadataMissingError(
            f"'{path}' carries no rehead metadata", hint="export it from its model directory with rehead"
        )
    return meta


def stamp_metadata(path: str | os.PathLike[str], props: Mapping[str, str]) -> None:
    """Replace the ``rehead.*`` metadata of the model at ``path`` (weights and external data untouched).

    Args:
        path: the ``.onnx`` file, rewritten in place (a staged file: ``export_onnx`` stamps
            before it publishes).
        props: the new ``rehead.*`` properties (``build_metadata``); other properties are kept.
    """
    import onnx

    model = onnx.load(os.fspath(path), load_external_data=False)
    kept = [(p.key, p.value) for p in model.metadata_props if not p.key.startswith(PREFIX)]
    del model.metadata_props[:]
    for key, value in [*kept, *props.items()]:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save_model(model, os.fspath(path))
