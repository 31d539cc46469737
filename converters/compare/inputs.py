"""The default parity inputs, shared by the export check and ``rehead validate``.

Both draw the same seeded standard-normal images and run the artifact at the same batch
sizes, so that with default settings they judge an artifact on exactly the same data. Their
numbers live in ``defaults`` (no NumPy there) and are re-exported here.
"""

from __future__ import annotations

import numpy as np

from converters.compare.defaults import DEFAULT_BATCH_SIZES as DEFAULT_BATCH_SIZES
from converters.compare.defaults import DEFAULT_SAMPLES as DEFAULT_SAMPLES
from converters.compare.defaults import DEFAULT_SEED as DEFAULT_SEED
from toolkit.records import Preprocessing


def random_images(prep: Preprocessing, samples: int = DEFAULT_SAMPLES, seed: int = DEFAULT_SEED) -> np.ndarray:
    """Float32 NCHW standard-normal images at the model's input size.

    Args:
        prep: the model's preprocessing (its input size).
        samples: how many images (default ``DEFAULT_SAMPLES``).
        seed: the random generator's seed (default ``DEFAULT_SEED``).
    """
    rng = np.random.default_rng(seed)
    return rng.standard_normal(prep.input_shape(samples)).astype(np.float32)
