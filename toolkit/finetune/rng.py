"""RNG states of torch, numpy and Python as plain tensors and lists, loadable with ``weights_only=True``.

``random.getstate()`` and ``numpy.random.get_state()`` return tuples holding a numpy array
and ints; the weights-only unpickler refuses numpy arrays, so both are stored as int64
tensors and lists of ints, and rebuilt on restore.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy's legacy global RNG and Python's ``random``."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def capture() -> dict[str, Any]:
    """The current global RNG states, as tensors, ints, floats and lists only."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # type: ignore[misc]
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": {
            "version": int(version),
            "internal": torch.tensor(internal, dtype=torch.int64),
            "gauss": gauss,
        },
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore(state: dict[str, Any]) -> None:
    """Put back the global RNG states saved by ``capture``."""
    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["internal"].tolist()), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state(
        (npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"], npy["cached"])
    )
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def derived_generator(seed: int, *parts: int) -> torch.Generator:
    """A CPU generator whose seed depends only on ``seed`` and ``parts`` (epoch, batch index)."""
    mixed = seed
    for part in parts:
        mixed = (mixed * 1_000_003 + part + 0x9E3779B9) % (2**63 - 1)
    return torch.Generator().manual_seed(mixed)
