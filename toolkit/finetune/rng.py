"""The RNG state of a run, for checkpoints: torch's CPU generator and the training GPU's.

Under torchrun each rank's state is captured and restored (``ranks``).

A run draws from torch's global RNG (dropout takes no generator) inside
``toolkit.heads.modules.seeded(seed, device)``, which puts the caller's state back afterwards;
data order and augmentation come from ``derived_generator``. The state is stored as plain
uint8 tensors, loadable with ``weights_only=True``.
"""

from __future__ import annotations

from typing import Any

import torch


def capture(device: torch.device) -> dict[str, Any]:
    """The current RNG state of the CPU and, when training on a GPU, of that GPU.

    Args:
        device: the training device.
    """
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore(state: dict[str, Any], device: torch.device, *, rank: int = 0) -> None:
    """Put back the RNG state saved by ``capture`` (a GPU's only when training on a GPU).

    A checkpoint of a run on several processes holds each rank's state under ``ranks``; a rank
    beyond those (the group grew) starts from rank 0's.

    Args:
        state: what ``capture`` saved (or a checkpoint's, with ``ranks``).
        device: the training device.
        rank: this process's rank (default 0).
    """
    ranks = state.get("ranks")
    if ranks:
        state = ranks[rank] if rank < len(ranks) else ranks[0]
    torch.set_rng_state(state["torch"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def derived_generator(seed: int, *parts: int) -> torch.Generator:
    """A CPU generator whose seed depends only on ``seed`` and ``parts`` (epoch, batch index).

    Args:
        seed: the run's seed.
        *parts: the numbers mixed in (epoch, batch index).
    """
    mixed = seed
    for part in parts:
        mixed = (mixed * 1_000_003 + part + 0x9E3779B9) % (2**63 - 1)
    return torch.Generator().manual_seed(mixed)
