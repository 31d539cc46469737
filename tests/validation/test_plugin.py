"""The pytest plugin (loaded through the ``rehead`` pytest11 entry point) as users would use it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


def test_plugin_fixture_passes_a_correct_export(
    rehead_assert_parity: Callable[..., Any], digits_model_dir: Path, onnx_fp32: Path
) -> None:
    report = rehead_assert_parity(digits_model_dir, onnx_fp32, samples=4, batch_sizes=(2,))
    assert report.artifacts[0].parity_status == "pass"
    assert report.artifacts[0].latency == {}  # parity only


def test_plugin_fixture_fails_a_planted_mismatch(
    rehead_assert_parity: Callable[..., Any], digits_model_dir: Path, onnx_bad_new_row: Path
) -> None:
    with pytest.raises(AssertionError) as info:
        rehead_assert_parity(digits_model_dir, onnx_bad_new_row, samples=4, batch_sizes=(2,))
    text = str(info.value)
    assert "parity failed for bad-row.onnx" in text
    assert "new classes [7:10]" in text and "localisation: localised" in text
    assert "kept classes" not in text
    lines = text.splitlines()
    failed = [line for line in lines if line.startswith("  'logits'[")]
    assert failed and len(lines) == len(failed) + 2  # a heading, one line per failure, the localisation


def test_device_fixture_defaults_to_cpu(rehead_device: str) -> None:
    assert rehead_device == "cpu"
