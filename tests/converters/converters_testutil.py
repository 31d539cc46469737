"""Helpers shared by the converter tests."""

from __future__ import annotations

from pathlib import Path

import torch


def digits_test(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The held-out digits test split at the model's input size."""
    from toolkit.data import load_samples
    from toolkit.models.model_dir import read_config

    return load_samples("digits", read_config(path).preprocessing, split="test")


def ort_run(path: Path, x: torch.Tensor) -> torch.Tensor:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(sess.run(["logits"], {"images": x.numpy()})[0])
