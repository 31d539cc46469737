"""The eager reference: the fp32 model's outputs on the parity inputs, computed once and cached.

Every artifact and every batch size is compared against the same reference, computed in
chunks of ``CHUNK`` images. It is cached on disk under a key made of the model's weights (a
hash of the module's tensors as they are now, not only of the file they came from), the
inputs, the device and the torch version, so that a CI job validating several artifacts of one
model pays for one eager pass. The cache folder is ``$REHEAD_CACHE_DIR/reference`` (default
``~/.cache/rehead/reference``); files are written atomically and a damaged one is recomputed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from converters.runners.eager import EagerRunner
from toolkit import _atomic
from toolkit.errors import OutputNotWritableError
from validation.parity import run_batched

#: images per eager call for the reference
CHUNK = 32


def default_cache_dir() -> Path:
    """``$REHEAD_CACHE_DIR/reference``, else ``$XDG_CACHE_HOME/rehead/reference`` (``~/.cache``)."""
    root = os.environ.get("REHEAD_CACHE_DIR")
    if root:
        return Path(root) / "reference"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rehead" / "reference"


def module_digest(module: nn.Module) -> str:
    """sha256 over the module's parameters and buffers (names, dtypes, shapes and bytes).

    Args:
        module: the model.
    """
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        t = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def cache_key(module: nn.Module, images: np.ndarray, device: str) -> str:
    """The cache file's key: the module's digest, the images (dtype, shape, bytes), device, torch and ``CHUNK``.

    Args:
        module: the eager model.
        images: the inputs.
        device: where eager runs.
    """
    digest = hashlib.sha256()
    digest.update(module_digest(module).encode())
    digest.update(f"{images.dtype}:{images.shape}:{device}:{torch.__version__}:{CHUNK}".encode())
    digest.update(np.ascontiguousarray(images).tobytes())
    return digest.hexdigest()[:32]


def reference_outputs(
    module: nn.Module,
    images: np.ndarray,
    *,
    device: str = "cpu",
    cache_dir: str | os.PathLike[str] | None = None,
) -> tuple[dict[str, np.ndarray], EagerRunner, bool]:
    """The eager fp32 outputs on ``images``; the runner that made them (its time is model time);
    and whether they came from the cache.

    Args:
        module: the eager model.
        images: the parity inputs.
        device: where eager runs (default ``cpu``).
        cache_dir: the cache folder (default None: no cache).
    """
    runner = EagerRunner(module, device=device, precision="fp32", name="eager-fp32")
    path = Path(cache_dir) / f"{cache_key(module, images, device)}.npz" if cache_dir is not None else None
    if path is not None and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as bundle:
                return {k: bundle[k] for k in bundle.files}, runner, True
        except (OSError, ValueError):  # a damaged cache file is recomputed and replaced
            pass
    outputs = run_batched(runner, images, CHUNK)
    if path is not None:
        buffer = io.BytesIO()
        np.savez(buffer, **outputs)  # type: ignore[arg-type]  # numpy's stub types **kwds as allow_pickle
        # a read-only cache costs time, never the validation
        with contextlib.suppress(OSError, OutputNotWritableError):
            _atomic.write_bytes(path, buffer.getvalue(), overwrite=True)
    return outputs, runner, False
