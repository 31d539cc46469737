"""The default parity inputs, shared by the export check and ``rehead validate``.

Both draw the same seeded standard-normal images and run the artifact at the same batch
sizes, so that with default settings they judge an artifact on exactly the same data.
"""

from __future__ import annotations

import numpy as np

from toolkit.records import Preprocessing

#: samples, seed and batch sizes of a default parity check (export check and ``validate``)
DEFAULT_SAMPLES = 32
DEFAULT_SEED = 0
DEFAULT_BATCH_SIZES = (1, 8)


def random_images(prep: Preprocessing, samples: int = DEFAULT_SAMPLES, seed: int = DEFAULT_SEED) -> np.ndarray:
    """``samples`` float32 NCHW standard-normal images at the model's input size, drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal(prep.input_shape(samples)).astype(np.float32)
