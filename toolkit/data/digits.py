"""The built-in ``digits`` source: scikit-learn's bundled 8x8 handwritten digits (real data, no network).

1797 grey images of the digits 0-9, 0-16 intensity. They are split once, stratified, with a
fixed seed into train (70%), val (15%) and test (15%), so every stage of rehead sees the same
held-out images. Images are resized to the model's input size and replicated to its channels.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch

from toolkit._text import listing
from toolkit.errors import InvalidArgumentError
from toolkit.records import Preprocessing

SPLITS = ("train", "val", "test")
SPLIT_SEED = 20181
DIGIT_NAMES: tuple[str, ...] = tuple(str(d) for d in range(10))


@functools.lru_cache(maxsize=1)
def _split_indices() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_digits

    labels = load_digits().target
    rng = np.random.default_rng(SPLIT_SEED)
    parts: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    for digit in range(10):
        idx = rng.permutation(np.flatnonzero(labels == digit))
        n_train, n_val = round(0.7 * len(idx)), round(0.15 * len(idx))
        parts["train"].append(idx[:n_train])
        parts["val"].append(idx[n_train : n_train + n_val])
        parts["test"].append(idx[n_train + n_val :])
    return {s: np.sort(np.concatenate(p)) for s, p in parts.items()}


@functools.lru_cache(maxsize=1)
def _raw() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.images.astype(np.float32) / 16.0, data.target.astype(np.int64)


def digits_uint8(split: str, digits: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Raw 8x8 images of ``split`` as (N, 8, 8) uint8 (0-255) and their digit labels.

    Args:
        split: ``train``, ``val`` or ``test``.
        digits: only the images of these digits (default None: all ten).
    """
    if split not in SPLITS:
        raise InvalidArgumentError(f"unknown digits split '{split}'", hint=f"one of {', '.join(SPLITS)}", param="split")
    images, labels = _raw()
    idx = _split_indices()[split]
    if digits is not None:
        wanted = check_digits(digits)
        idx = idx[np.isin(labels[idx], wanted)]
    return (images[idx] * 255.0).round().astype(np.uint8), labels[idx]


def check_digits(digits: Sequence[int]) -> list[int]:
    """A digit subset, sorted and without duplicates; ``InvalidArgumentError`` unless it is non-empty
    and within 0-9.

    Args:
        digits: the digits asked for.
    """
    out = sorted({int(d) for d in digits})
    if not out or any(not 0 <= d <= 9 for d in out):
        raise InvalidArgumentError(
            f"digit subset [{listing(digits, limit=10)}] must be non-empty and within 0-9",
            hint="e.g. 0-6",
            param="digits",
        )
    return out


def digits_tensors(
    split: str, prep: Preprocessing, digits: Sequence[int] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``split`` as normalised (N, C, H, W) float32 tensors at ``prep.input_size``, and labels.

    Labels are the digits themselves (0-9), whatever the subset.

    Args:
        split: ``train``, ``val`` or ``test``.
        prep: the model's preprocessing (input size, channels, mean and std).
        digits: only the images of these digits (default None: all ten).
    """
    raw, labels = digits_uint8(split, digits)
    x = torch.from_numpy(raw).float().div_(255.0)[:, None]
    x = torch.nn.functional.interpolate(x, size=prep.input_size, mode="bilinear", align_corners=False)
    x = x.expand(-1, prep.channels, -1, -1)
    mean = torch.tensor(prep.mean, dtype=torch.float32)[None, :, None, None]
    std = torch.tensor(prep.std, dtype=torch.float32)[None, :, None, None]
    return ((x - mean) / std).contiguous(), torch.from_numpy(labels)
