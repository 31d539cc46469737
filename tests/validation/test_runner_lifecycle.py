"""Runners are closed on every path, errors included, and check their inputs in the base class."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from converters.compare import Failure
from converters.onnx.runner import OrtRunner
from converters.runners.base import Runner
from toolkit.errors import InputShapeError
from toolkit.models.model_dir import load_model_dir
from validation import validate


class Broken(Runner):
    """A runner whose model fails on the second batch (after the first one worked)."""

    name = "broken"

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.closed = False

    def _load(self) -> None:
        pass

    def infer(self, prepared: Any) -> Any:
        self.calls += 1
        if self.calls > 1:
            raise InputShapeError("planted failure in the second batch")
        return prepared

    def fetch(self, raw: Any) -> dict[str, np.ndarray]:
        return {"logits": np.zeros((len(raw), 10), dtype=np.float32)}

    def close(self) -> None:
        self.closed = True


def test_runners_are_closed_when_validation_fails_midway(digits_model_dir: Path, onnx_fp32: Path) -> None:
    broken = Broken()
    ort = OrtRunner(onnx_fp32)
    with pytest.raises(InputShapeError, match="planted failure"):
        validate(digits_model_dir, [ort, broken], samples=4, batch_sizes=(2,), latency=False, reference_cache=None)
    assert broken.closed
    assert ort._session is None  # the ONNX Runtime session was released too


def test_base_class_checks_inputs_before_running(onnx_fp32: Path) -> None:
    with OrtRunner(onnx_fp32) as runner:
        runner.check_input(np.zeros((2, 3, 32, 32), dtype=np.float32))
        with pytest.raises(InputShapeError, match="dtype float64"):
            runner.check_input(np.zeros((2, 3, 32, 32)))
        with pytest.raises(InputShapeError, match="channel count 1"):
            runner.check_input(np.zeros((2, 1, 32, 32), dtype=np.float32))
    assert runner._session is None


def test_parity_failure_names_the_worst_class_in_the_failing_slice(digits_model_dir: Path, onnx_fp32: Path) -> None:
    from tests.validation.conftest import edit_initializer, head_initializer

    loaded = load_model_dir(digits_model_dir)
    name = head_initializer(onnx_fp32, ".bias")
    planted = edit_initializer(onnx_fp32, onnx_fp32.with_name("bias8.onnx"), name, lambda b: b.__setitem__(8, b[8] + 1))
    report = validate(loaded, [planted], samples=4, batch_sizes=(2,), latency=False, reference_cache=None)
    new = [f for f in report.failures if f.class_slice == "new"]
    assert new and all(isinstance(f, Failure) for f in new)
    assert {(f.worst_class, f.worst_class_name) for f in new} == {(8, "8")}
    assert "worst class 8 '8'" in new[0].message
    assert Failure.from_json(new[0].to_json()) == new[0]
