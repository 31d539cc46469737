"""The export check and ``rehead validate`` judge "matches eager" the same way.

A grid of errors is planted into the head of a real ONNX export; for every point the export
check's own verdict (``converters.onnx.checks.check_parity`` on the export's default inputs) and
``validate`` with default settings must agree, and the grid must hold both passes and failures.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from converters.compare import DEFAULT_BATCH_SIZES, random_images
from converters.onnx import checks as _checks
from tests.validation.conftest import edit_initializer, head_initializer
from toolkit.models.model_dir import load_model_dir
from validation import validate

DELTAS = (0.0, 1e-7, 1e-5, 1e-4, 3e-4, 1e-3, 1e-2, 1.0)


def _plant(kind: str, delta: float, rows: tuple[int, ...]):
    def edit(values: np.ndarray) -> None:
        if kind == "bias":
            values[list(rows)] += delta
        else:
            values[list(rows), : values.shape[1] // 2] += delta

    return edit


@pytest.mark.parametrize("where", ["new-rows", "kept-rows", "bias"])
def test_export_check_and_validate_agree_on_planted_errors(
    digits_model_dir: Path, onnx_fp32: Path, tmp_path: Path, where: str
) -> None:
    loaded = load_model_dir(digits_model_dir)
    head = loaded.config.head
    rows = tuple(head.new_indices) if where != "kept-rows" else tuple(head.kept_indices[:2])
    name = head_initializer(onnx_fp32, ".bias" if where == "bias" else ".weight")
    images = random_images(loaded.config.preprocessing)
    reference = _checks.eager_outputs(loaded.module.eval(), images)
    verdicts = []
    for i, delta in enumerate(DELTAS):
        planted = edit_initializer(onnx_fp32, tmp_path / f"planted-{i}.onnx", name, _plant(where, delta, rows))
        export_view, _ = _checks.check_parity(
            _checks.ort_runner(_checks.session(planted)),
            reference,
            images,
            loaded.config,
            precision="fp32",
            batch_sizes=DEFAULT_BATCH_SIZES,
            net=loaded.module,
        )
        report = validate(loaded, [planted], latency=False, localise=False, reference_cache=tmp_path / "cache")
        validate_view = report.artifacts[0].parity
        assert validate_view is not None
        assert export_view.passed == validate_view.passed, (where, delta, export_view.failures[:1])
        assert [(f.metric, f.class_slice, f.batch_size) for f in export_view.failures] == [
            (f.metric, f.class_slice, f.batch_size) for f in validate_view.failures
        ]
        verdicts.append(export_view.passed)
    assert verdicts[0] and not verdicts[-1], f"the grid must hold a pass and a failure: {verdicts}"
    # the reference was computed once and then read from the cache for every other grid point
    assert report.inputs["reference_cached"] is True
