"""AOTInductor runner: a ``.pt2`` package loaded with ``torch._inductor.aoti_load_package``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from validation.runners.base import Runner


class Pt2Runner(Runner):
    """Run an AOTInductor package on the device it was compiled for (``device``: cpu or cuda)."""

    kind = "pt2"

    def __init__(self, path: str | os.PathLike[str], *, device: str = "cpu", name: str | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.device = device
        self.name = name or self.path.name
        self.asynchronous = device.startswith("cuda")
        self._fn: Any = None

    def _load(self) -> None:
        from converters.pt2 import load_pt2

        self._fn = load_pt2(self.path)

    def prepare(self, batch: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)

    def infer(self, prepared: Any) -> Any:
        with torch.inference_mode():
            out = self._fn(prepared)
        return out[0] if isinstance(out, (tuple, list)) else out

    def fetch(self, raw: Any) -> dict[str, np.ndarray]:
        return {self.output_names[0]: raw.detach().float().cpu().numpy()}

    def synchronize(self) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize(self.device)
