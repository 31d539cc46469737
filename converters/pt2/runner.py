"""AOTInductor runner: a ``.pt2`` package loaded with ``torch._inductor.aoti_load_package``.

AOTInductor does not check the device of its inputs: a package compiled for the CPU and fed CUDA
tensors (or the reverse) can crash the process. The runner therefore reads the device the package
records (``converters.pt2.export.package_device``) when it is constructed and refuses another kind of
device there, before anything is loaded or run.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from converters.runners.base import Runner
from toolkit._device import strict_fp32


class Pt2Runner(Runner):
    """Run an AOTInductor package on the device it was compiled for (``device``: ``cpu``, ``cuda``
    or ``cuda:N``); ``InvalidArgumentError`` (exit 2) at construction when the package was
    compiled for another kind of device. fp32 on CUDA runs with TF32 off, like the reference."""

    kind = "pt2"

    def __init__(self, path: str | os.PathLike[str], *, device: str = "cpu", name: str | None = None) -> None:
        from converters.pt2.export import check_package_device

        super().__init__()
        self.path = Path(path)
        self.device = check_package_device(self.path, device)
        self.name = name or self.path.name
        self.asynchronous = device.startswith("cuda")
        self._fn: Any = None

    def _load(self) -> None:
        from converters.pt2.export import load_pt2

        self._fn = load_pt2(self.path, device=self.device)

    def prepare(self, batch: np.ndarray) -> torch.Tensor:
        """The batch as a float32 tensor on the runner's device.

        Args:
            batch: a float32 NCHW batch.
        """
        return torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)

    def infer(self, prepared: Any) -> Any:
        # TF32 off on CUDA (the fp32 preset); nothing to switch on the CPU
        """Run the package (TF32 off on CUDA); its first output.

        Args:
            prepared: what ``prepare`` returned.
        """
        with torch.inference_mode(), strict_fp32() if self.asynchronous else contextlib.nullcontext():
            out = self._fn(prepared)
        return out[0] if isinstance(out, (tuple, list)) else out

    def fetch(self, raw: Any) -> dict[str, np.ndarray]:
        """The output as a float32 array on the host.

        Args:
            raw: what ``infer`` returned.
        """
        return {self.output_names[0]: raw.detach().float().cpu().numpy()}

    def synchronize(self) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize(self.device)
