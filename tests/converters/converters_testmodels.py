"""Small custom models for the converter tests, built through ``py:converters_testmodels:<factory>``."""

from __future__ import annotations

import torch
from torch import nn


class TinyNet(nn.Module):
    """Two conv-BN-ReLU blocks, global pool, a linear head ``fc`` (16 features)."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(0.1),
        )
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fc(self.features(x))
        return out


class EigNet(TinyNet):
    """TinyNet whose logits pass through ``linalg.eigvals``: no ONNX exporter translates it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = super().forward(x)
        pairs = logits[:, :4].reshape(-1, 2, 2)
        return logits + torch.linalg.eigvals(pairs).real.sum()


class FixedBatchNet(TinyNet):
    """TinyNet whose reshape takes the batch as a Python int: traced, it becomes a constant."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = int(x.shape[0])
        return self.fc(self.features(x).reshape(batch, 16))  # type: ignore[no-any-return]


class Int64BufferNet(TinyNet):
    """TinyNet carrying an INT64 lookup buffer (TensorRT casts those to INT32)."""

    def __init__(self, num_classes: int = 10, wide: bool = False) -> None:
        super().__init__(num_classes)
        self.register_buffer("table", torch.arange(128, dtype=torch.int64) * (2**40 if wide else 1))


def make_tiny(num_classes: int = 10) -> nn.Module:
    return TinyNet(num_classes)


def make_eig(num_classes: int = 10) -> nn.Module:
    return EigNet(num_classes)


def make_fixed_batch(num_classes: int = 10) -> nn.Module:
    return FixedBatchNet(num_classes)


class PlantedNet(TinyNet):
    """TinyNet with a planted INT8-sensitive pair after its first block: 1x1 convs ``spread``
    (channel 0 times 1e4) and ``squeeze`` (channel 0 times 1e-4). In fp32 the pair is the
    identity; quantized per tensor, ``spread``'s output spans [0, 1e4] and every other channel
    rounds to a few levels, so INT8 misses any agreement target until the pair stays fp32."""

    SCALE = 1e4

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__(num_classes)
        self.spread = nn.Conv2d(8, 8, 1, bias=False)
        self.squeeze = nn.Conv2d(8, 8, 1, bias=False)
        with torch.no_grad():
            gain = torch.ones(8)
            gain[0] = self.SCALE
            self.spread.weight.copy_(torch.diag(gain)[:, :, None, None])
            self.squeeze.weight.copy_(torch.diag(1 / gain)[:, :, None, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = self.features[:3](x)
        out: torch.Tensor = self.fc(self.features[3:](self.squeeze(self.spread(first))))
        return out


def make_planted(num_classes: int = 10) -> nn.Module:
    return PlantedNet(num_classes)


class SwishNet(TinyNet):
    """TinyNet with an elementwise tail after each block (HardSwish, a residual Add): ops whose
    QDQ versions ONNX Runtime runs no faster than fp32 on small tensors."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__(num_classes)
        self.features[2] = nn.Hardswish()
        self.features[6] = nn.Hardswish()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = self.features[:3](x)
        first = first + nn.functional.hardswish(first)
        second = self.features[3:7](first)
        second = second + nn.functional.hardswish(second)
        out: torch.Tensor = self.fc(self.features[7:](second))
        return out


def make_swish(num_classes: int = 10) -> nn.Module:
    return SwishNet(num_classes)
