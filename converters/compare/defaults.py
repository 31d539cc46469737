"""The default parity inputs' numbers: samples, seed and batch sizes, in one light module.

The export check, ``rehead validate`` and the options records (``OnnxExportOptions``,
``ValidateSettings``) read them from here; this module imports nothing, so that the CLI can show
them in ``--help`` without loading NumPy (``inputs`` draws the images).
"""

from __future__ import annotations

#: samples, seed and batch sizes of a default parity check (export check and ``validate``)
DEFAULT_SAMPLES = 32
DEFAULT_SEED = 0
DEFAULT_BATCH_SIZES = (1, 8)
