"""The one comparison layer: metrics, tolerances, failure records, default inputs.

The export-time check (``converters``) and ``rehead validate`` (``validation``) both judge
"matches eager" through ``compare_outputs`` with the presets in ``tolerance``; failures are
``Failure`` records whose fields every report reads.

Names are imported on first use; the ``TYPE_CHECKING`` block names the same imports for
readers and type checkers (a test keeps the two lists equal).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from toolkit._lazy import lazy_exports

if TYPE_CHECKING:
    from converters.compare.defaults import DEFAULT_BATCH_SIZES as DEFAULT_BATCH_SIZES
    from converters.compare.defaults import DEFAULT_SAMPLES as DEFAULT_SAMPLES
    from converters.compare.defaults import DEFAULT_SEED as DEFAULT_SEED
    from converters.compare.failure import Failure as Failure
    from converters.compare.inputs import random_images as random_images
    from converters.compare.metrics import ClassSlice as ClassSlice
    from converters.compare.metrics import SliceMetrics as SliceMetrics
    from converters.compare.metrics import head_slices as head_slices
    from converters.compare.metrics import slice_metrics as slice_metrics
    from converters.compare.parity import BatchParity as BatchParity
    from converters.compare.parity import ParityResult as ParityResult
    from converters.compare.parity import SliceResult as SliceResult
    from converters.compare.parity import compare_outputs as compare_outputs
    from converters.compare.parity import parity_result as parity_result
    from converters.compare.tolerance import PRESETS as PRESETS
    from converters.compare.tolerance import Tolerance as Tolerance
    from converters.compare.tolerance import resolve_preset as resolve_preset
    from converters.compare.tolerance import with_overrides as with_overrides

_EXPORTS = {
    "Failure": "converters.compare.failure",
    "DEFAULT_BATCH_SIZES": "converters.compare.defaults",
    "DEFAULT_SAMPLES": "converters.compare.defaults",
    "DEFAULT_SEED": "converters.compare.defaults",
    "random_images": "converters.compare.inputs",
    "ClassSlice": "converters.compare.metrics",
    "SliceMetrics": "converters.compare.metrics",
    "head_slices": "converters.compare.metrics",
    "slice_metrics": "converters.compare.metrics",
    "BatchParity": "converters.compare.parity",
    "ParityResult": "converters.compare.parity",
    "SliceResult": "converters.compare.parity",
    "compare_outputs": "converters.compare.parity",
    "parity_result": "converters.compare.parity",
    "PRESETS": "converters.compare.tolerance",
    "Tolerance": "converters.compare.tolerance",
    "resolve_preset": "converters.compare.tolerance",
    "with_overrides": "converters.compare.tolerance",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS, globals())
