"""Preprocessing baked into the graph: uint8 NHWC camera frames in, normalisation inside."""

from __future__ import annotations

import torch
from torch import nn

from toolkit.records import Preprocessing


class BakedPreprocess(nn.Module):
    """Wrap ``model`` so it takes uint8 NHWC images at the model's input size (no resize).

    ``forward(images)``: (N, H, W, C) uint8 -> float, /255, minus ``mean``, divided by ``std``
    (folded into one multiply-add), NCHW, then the model.
    """

    def __init__(self, model: nn.Module, prep: Preprocessing) -> None:
        super().__init__()
        self.model = model
        std = torch.tensor(prep.std, dtype=torch.float32)
        mean = torch.tensor(prep.mean, dtype=torch.float32)
        self.scale: torch.Tensor
        self.shift: torch.Tensor
        self.register_buffer("scale", (1.0 / (255.0 * std)).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("shift", (-mean / std).view(1, -1, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The wrapped model's logits on normalised uint8 NHWC pixels.

        Args:
            images: uint8 NHWC pixels at the model's input size.
        """
        x = images.permute(0, 3, 1, 2).to(torch.float32)
        out: torch.Tensor = self.model(x * self.scale + self.shift)
        return out


def to_uint8_nhwc(x: torch.Tensor, prep: Preprocessing) -> torch.Tensor:
    """Undo normalisation of float samples: the uint8 NHWC frames they came from.

    Args:
        x: normalised (N, C, H, W) float samples.
        prep: the model's preprocessing (its mean and std).
    """
    std = torch.tensor(prep.std, dtype=torch.float32).view(1, -1, 1, 1)
    mean = torch.tensor(prep.mean, dtype=torch.float32).view(1, -1, 1, 1)
    pixels = ((x * std + mean) * 255.0).round().clamp(0, 255)
    return pixels.to(torch.uint8).permute(0, 2, 3, 1).contiguous()
