"""Does an artifact come from the model directory it is checked against?

Every rehead export records the model's ``weights_sha256``. Comparing an artifact with another
model's directory would report an exporter bug (or an ONNX Runtime shape error) that is not
there, so ``validate`` and ``bench`` check the record first and refuse a mismatch unless the
caller asks for a deliberate cross-check.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from toolkit.records import ModelConfig


class NoRecordWarning(UserWarning):
    """An artifact without rehead's record: its lineage cannot be checked."""


def recorded_weights(path: Path) -> str | None:
    """The ``weights_sha256`` rehead recorded in the artifact, or None when it has no rehead record.

    Args:
        path: an artifact of any registered format (``converters.artifact``).
    """
    from converters import artifact

    return artifact.recorded_weights(path)


def check_lineage(config: ModelConfig, path: Path, *, cross_check: bool = False) -> str | None:
    """Raise ``LineageError`` when ``path`` records other weights than ``config`` (unless
    ``cross_check``); returns the recorded hash (None when the artifact records none).

    Args:
        config: the model directory's config (its weights hash).
        path: the artifact.
        cross_check: compare other weights on purpose: no ``LineageError`` (default False).
    """
    recorded = recorded_weights(path)
    expected = config.weights_sha256
    if recorded is None and expected:
        warnings.warn(
            f"'{path.name}' carries no rehead record (it was not exported by rehead, or another tool re-saved it "
            "with changes), so rehead cannot check "
            "that it holds this model directory's weights: a parity failure may only mean it is another model "
            "(cross_check is for an artifact whose record names other weights, compared on purpose)",
            NoRecordWarning,
            stacklevel=2,
        )
    if not cross_check:
        from converters.artifact import refuse_other_weights

        refuse_other_weights(
            path,
            recorded,
            expected,
            hint="pass the model directory the artifact was exported from, or cross_check=True "
            "to compare the two on purpose",
            param="cross_check",
        )
    return recorded
