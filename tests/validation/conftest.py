"""Fixtures for the validation tests: real ONNX exports of the digits model, and planted faults."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from validation.latency import LatencySettings

#: short latency settings for unit tests (seconds); a generous CV bound on this shared machine
FAST = LatencySettings(warmup_s=0.05, min_runs=5, min_duration_s=0.2, max_cv=10.0)


@pytest.fixture(scope="session")
def onnx_fp16(digits_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from converters import export_onnx

    out = tmp_path_factory.mktemp("onnx16") / "model-fp16.onnx"
    export_onnx(digits_model_dir, out, fp16=True, progress=False)
    return out


def edit_initializer(src: Path, dst: Path, name: str, edit: Callable[[np.ndarray], None]) -> Path:
    """Copy ``src`` to ``dst`` with initializer ``name`` changed in place by ``edit`` (onnx.numpy_helper)."""
    model = onnx.load(str(src))
    for init in model.graph.initializer:
        if init.name == name:
            values = numpy_helper.to_array(init).copy()
            edit(values)
            init.CopyFrom(numpy_helper.from_array(values, name))
            break
    else:
        raise KeyError(f"no initializer {name!r} in {src}")
    onnx.save(model, str(dst))
    return dst


def head_initializer(path: Path, suffix: str) -> str:
    """The name of the head's weight/bias initializer (``fc.weight``), whatever the exporter called it."""
    model = onnx.load(str(path), load_external_data=False)
    names = [i.name for i in model.graph.initializer if i.name.endswith(suffix) and "fc" in i.name]
    if not names:
        last = [i.name for i in model.graph.initializer][-6:]
        raise KeyError(f"no fc initializer ending in {suffix!r}: {last}")
    return names[0]


@pytest.fixture(scope="session")
def onnx_bad_new_row(
    onnx_fp32: Path, digits_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """One new-class row (class 8) of the head weight perturbed."""
    from toolkit.model_dir import read_config

    new = read_config(digits_model_dir).head.new_indices
    assert 8 in new  # the fixture model pads 7 digits to 10: rows 7, 8, 9 are new

    def perturb(w: np.ndarray) -> None:
        w[8] += 0.05

    dst = tmp_path_factory.mktemp("bad") / "bad-row.onnx"
    return edit_initializer(onnx_fp32, dst, head_initializer(onnx_fp32, "weight"), perturb)


@pytest.fixture(scope="session")
def onnx_nan(onnx_fp32: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A NaN planted in the head bias of a kept class."""

    def plant(b: np.ndarray) -> None:
        b[2] = np.nan

    dst = tmp_path_factory.mktemp("nan") / "nan.onnx"
    return edit_initializer(onnx_fp32, dst, head_initializer(onnx_fp32, "bias"), plant)


@pytest.fixture(scope="session")
def onnx_fixed_batch(onnx_fp32: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fp32 export with its batch axis fixed at 2 (input and output)."""
    model = onnx.load(str(onnx_fp32))
    for value in (model.graph.input[0], model.graph.output[0]):
        dim = value.type.tensor_type.shape.dim[0]
        dim.Clear()
        dim.dim_value = 2
    dst = tmp_path_factory.mktemp("fixed") / "fixed-b2.onnx"
    onnx.save(model, str(dst))
    return dst
