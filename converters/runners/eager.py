"""Eager PyTorch runner: fp32 (the reference, TF32 off) or fp16/bf16 autocast, on CPU or CUDA."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from converters.runners.base import Runner
from toolkit._device import strict_fp32
from toolkit.errors import InternalError, InvalidArgumentError

AUTOCAST = {"fp16": torch.float16, "bf16": torch.bfloat16}
EAGER_PRECISIONS = ("fp32", "fp64", "fp16", "bf16")


class EagerRunner(Runner):
    """Run an ``nn.Module`` in eval mode.

    ``precision``: ``fp32`` (default; TF32 off), ``fp64`` (a copy in float64, used to measure
    PyTorch's own fp32 rounding), ``fp16``/``bf16`` (autocast). ``output_name`` names the
    module's single output (default ``logits``).
    """

    kind = "eager"

    def __init__(
        self,
        module: nn.Module,
        *,
        device: str = "cpu",
        precision: str = "fp32",
        output_name: str = "logits",
        name: str | None = None,
    ) -> None:
        super().__init__()
        if precision not in EAGER_PRECISIONS:
            raise InvalidArgumentError(
                f"eager precision '{precision}' is not supported",
                hint=f"one of {', '.join(EAGER_PRECISIONS)}",
            )
        self.module = module
        self.device = device
        self.precision = precision
        self.output_names = (output_name,)
        self.name = name or f"eager-{precision}"
        self.asynchronous = device.startswith("cuda")
        self._model: nn.Module | None = None

    def _load(self) -> None:
        import copy

        model = self.module
        if self.precision == "fp64":
            model = copy.deepcopy(model).double()
        self._model = model.to(self.device).eval()

    def prepare(self, batch: np.ndarray) -> torch.Tensor:
        """The batch as a tensor on the runner's device (float64 for ``fp64``).

        Args:
            batch: a float32 NCHW batch.
        """
        tensor = torch.from_numpy(np.ascontiguousarray(batch))
        if self.precision == "fp64":
            tensor = tensor.double()
        return tensor.to(self.device, non_blocking=True)

    def infer(self, prepared: Any) -> torch.Tensor:
        """Run the module in inference mode (autocast for fp16/bf16, TF32 off); its first output.

        Args:
            prepared: what ``prepare`` returned.
        """
        if self._model is None:
            raise InternalError(f"runner '{self.name}' used before load()")
        with torch.inference_mode(), strict_fp32():
            if self.precision in AUTOCAST:
                device_type = "cuda" if self.device.startswith("cuda") else "cpu"
                with torch.autocast(device_type, dtype=AUTOCAST[self.precision]):
                    out = self._model(prepared)
            else:
                out = self._model(prepared)
        if isinstance(out, (tuple, list)):
            out = out[0]
        return out

    def fetch(self, raw: Any) -> dict[str, np.ndarray]:
        """The output as a float32 array on the host.

        Args:
            raw: what ``infer`` returned.
        """
        return {self.output_names[0]: raw.detach().float().cpu().numpy()}

    def synchronize(self) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize(self.device)
