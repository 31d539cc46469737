"""The default inputs of every parity check: held-out images of the model's own data, else noise.

Parity on random noise can pass while real images fail (rf-detr #1233: a ``.pte`` export that
passed on random inputs collapsed on real images). When the model directory's lineage records the
data it was fine-tuned on (``{"stage": "finetune", "data": ...}``), the export check and
``rehead validate`` therefore run on held-out images of it: the bundled digits' val split, or a
folder's ``val/`` or ``test/`` split, never the training images. Without a usable record they run
on the seeded random images (``converters.compare.random_images``) and say why (``note``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from converters.compare import DEFAULT_SAMPLES, DEFAULT_SEED, random_images
from toolkit.errors import DataError, InvalidArgumentError
from toolkit.records import ModelConfig


@dataclasses.dataclass(frozen=True)
class ParityInputs:
    """The inputs of a parity check, the export check's and ``rehead validate``'s alike.

    ``images`` (N, C, H, W) float32, ``labels`` (N,) or ``None``; ``source`` says where they came
    from (``held-out digits val split (lineage: digits)``, a folder, a ``.npz``,
    ``random(seed=0)``); ``note`` why the default fell back to random inputs (empty otherwise);
    ``random``: they are seeded random tensors, not images (set where they are drawn, never read
    from a name: a folder may be called ``random_val``).
    """

    images: np.ndarray
    labels: np.ndarray | None
    source: str
    note: str = ""
    random: bool = False

    @property
    def random_only(self) -> bool:
        """True when the inputs are seeded random tensors, not images."""
        return self.random

    @property
    def count(self) -> int:
        return int(self.images.shape[0])

    @property
    def nonfinite(self) -> int:
        """How many input values are NaN or Inf (parity with such inputs cannot pass)."""
        return int(np.size(self.images) - np.count_nonzero(np.isfinite(self.images)))


def default_check_inputs(
    config: ModelConfig, *, samples: int = DEFAULT_SAMPLES, seed: int = DEFAULT_SEED
) -> ParityInputs:
    """Up to ``samples`` held-out images of the data ``config.lineage`` records, else seeded random
    images with a ``note`` saying why.

    Args:
        config: the model's config (its lineage names the data, its preprocessing the input size).
        samples: how many images (default ``DEFAULT_SAMPLES``).
        seed: the seed of the random images (default ``DEFAULT_SEED``).
    """
    from converters.int8.calibration import choose_calibration, heldout_samples, recorded_data

    recorded = recorded_data(config)
    why = "the model directory records no fine-tuning data"
    if recorded is not None:
        try:
            source = choose_calibration(None, config).source
            x, y, where = heldout_samples(source, config, samples)
        except (InvalidArgumentError, DataError) as exc:
            why = f"its recorded data '{recorded}' gave no held-out images here ({exc.message})"
        else:
            images = np.ascontiguousarray(x.numpy(), dtype=np.float32)
            return ParityInputs(images, y.numpy(), f"held-out {where} (lineage: {recorded})")
    images = random_images(config.preprocessing, samples, seed)
    return ParityInputs(images, None, f"random(seed={seed})", why, random=True)
