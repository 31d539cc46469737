"""Safe loading of weights: safetensors, or ``.pt``/``.pth`` state dicts with ``weights_only=True``.

A whole pickled ``nn.Module`` needs arbitrary code execution to load; it is refused unless the
caller passes ``allow_pickle=True``. Truncated or empty files raise
``CorruptCheckpointError`` naming the file; NaN/Inf weights raise ``NonFiniteWeightsError``.
"""

from __future__ import annotations

import json
import os
import struct
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from toolkit.errors import (
    CorruptCheckpointError,
    NonFiniteWeightsError,
    UnsafeCheckpointError,
)

#: safetensors headers above this size are refused before they are read (bytes).
MAX_SAFETENSORS_HEADER = 64 * 1024 * 1024
#: and so are files that declare more tensors than this.
MAX_TENSORS = 200_000

def _warn_forced_unsafe_env() -> None:
    if os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "").strip() not in ("", "0"):
        warnings.warn(
            "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD is set: torch would unpickle arbitrary code; "
            "rehead still loads with weights_only=True",
            RuntimeWarning,
            stacklevel=3,
        )


def check_safetensors_header(path: Path) -> dict[str, Any]:
    """Read and bound-check a safetensors header without loading any tensor.

    Args:
        path: the ``.safetensors`` file.
    """
    size = path.stat().st_size
    if size < 8:
        raise CorruptCheckpointError(f"corrupt checkpoint '{path}': {size} bytes is too short for safetensors")
    with open(path, "rb") as handle:
        (header_len,) = struct.unpack("<Q", handle.read(8))
        if header_len > MAX_SAFETENSORS_HEADER or header_len > size - 8:
            raise CorruptCheckpointError(
                f"corrupt checkpoint '{path}': header claims {header_len} bytes "
                f"(file has {size}, limit {MAX_SAFETENSORS_HEADER})"
            )
        raw = handle.read(header_len)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptCheckpointError(f"corrupt checkpoint '{path}': header is not JSON ({exc})") from exc
    if not isinstance(header, dict):
        raise CorruptCheckpointError(f"corrupt checkpoint '{path}': header is not a JSON object")
    if len(header) > MAX_TENSORS:
        raise CorruptCheckpointError(f"corrupt checkpoint '{path}': {len(header)} tensors exceed {MAX_TENSORS}")
    data_len = size - 8 - header_len
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and 0 <= offsets[0] <= offsets[1] <= data_len):
            raise CorruptCheckpointError(
                f"corrupt checkpoint '{path}': tensor '{name}' points outside the file (truncated?)"
            )
    return header


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    check_safetensors_header(path)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CorruptCheckpointError(f"corrupt checkpoint '{path}': {exc}") from exc


def _load_pickle(path: Path, *, allow_pickle: bool) -> Any:
    _warn_forced_unsafe_env()
    if path.stat().st_size == 0:
        raise CorruptCheckpointError(f"corrupt checkpoint '{path}': the file is empty")
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ... here
        text = str(exc)
        unsafe = "weights_only" in text or "Unsupported global" in text or "GLOBAL" in text
        if not unsafe:
            raise CorruptCheckpointError(f"corrupt checkpoint '{path}': {text.splitlines()[0][:200]}") from exc
        if not allow_pickle:
            raise UnsafeCheckpointError(
                f"'{path}' is not a plain state dict: loading it would execute pickled code",
                hint="save model.state_dict() instead, or pass allow_pickle=True if you trust the file's author",
                param="allow_pickle",
            ) from exc
    try:
        return torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as exc:
        raise CorruptCheckpointError(f"corrupt checkpoint '{path}': {str(exc).splitlines()[0][:200]}") from exc


def _extract_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model_state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CorruptCheckpointError(
            f"'{path}' holds no state dict (a mapping of names to tensors)",
            hint="save with torch.save(model.state_dict(), path) or safetensors",
        )
    return {str(k): v for k, v in obj.items()}


def check_finite(state: Mapping[str, torch.Tensor], source: str) -> None:
    """Refuse NaN/Inf in any floating-point tensor.

    Args:
        state: the tensors, by name.
        source: where they came from, for the error message.
    """
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise NonFiniteWeightsError(f"'{source}': tensor '{name}' holds {bad} NaN/Inf values")


def load_state_dict(path: str | os.PathLike[str], *, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """Load a state dict from ``.safetensors`` or ``.pt``/``.pth``/``.bin``, safely.

    Strips a ``module.`` prefix left by DataParallel. Refuses NaN/Inf.

    Args:
        path: the checkpoint file.
        allow_pickle: load a file that needs full unpickling (a whole pickled module), which runs
            its code (default False).
    """
    p = Path(path)
    if not p.is_file():
        raise CorruptCheckpointError(f"checkpoint '{p}' does not exist or is not a file", hint="check the path")
    if p.suffix == ".safetensors":
        state = _load_safetensors(p)
    else:
        state = _extract_state_dict(_load_pickle(p, allow_pickle=allow_pickle), p)
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    check_finite(state, str(p))
    return state

