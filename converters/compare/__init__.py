"""The one comparison layer: metrics, tolerances, failure records, default inputs.

The export-time check (``converters``) and ``rehead validate`` (``validation``) both judge
"matches eager" through ``compare_outputs`` with the presets in ``tolerance``; failures are
``Failure`` records whose fields every report reads.
"""

from converters.compare.failure import Failure
from converters.compare.inputs import DEFAULT_BATCH_SIZES, DEFAULT_SAMPLES, DEFAULT_SEED, random_images
from converters.compare.metrics import ClassSlice, SliceMetrics, head_slices, slice_metrics
from converters.compare.parity import BatchParity, ParityResult, SliceResult, compare_outputs, parity_result
from converters.compare.tolerance import PRESETS, Tolerance, resolve_preset, with_overrides

__all__ = [
    "DEFAULT_BATCH_SIZES",
    "DEFAULT_SAMPLES",
    "DEFAULT_SEED",
    "PRESETS",
    "BatchParity",
    "ClassSlice",
    "Failure",
    "ParityResult",
    "SliceMetrics",
    "SliceResult",
    "Tolerance",
    "compare_outputs",
    "head_slices",
    "parity_result",
    "random_images",
    "resolve_preset",
    "slice_metrics",
    "with_overrides",
]
