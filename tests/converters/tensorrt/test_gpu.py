"""TensorRT engines on a real GPU: build, run, validate, refit, tamper. Skipped with a reason where
CUDA or TensorRT is missing (every machine this project's CI has); run them with ``-m gpu`` on a
host with both. None of these has run yet: no GPU with TensorRT was available to this project."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from converters.tensorrt.options import BuildOptions
from converters.tensorrt.runtime import tensorrt_installed

pytestmark = [
    pytest.mark.gpu,
    # skipped only where TensorRT is not installed: an installed TensorRT that fails to load (an ABI
    # or CUDA mismatch) makes these tests fail with its error (require_runtime says it)
    pytest.mark.skipif(
        not tensorrt_installed(),
        reason="needs TensorRT (pip install 'rehead[gpu-cu12]' on a CUDA host); not installed here",
    ),
]


@pytest.fixture(scope="module")
def resnet18(make_model_dir: Callable[..., Path]) -> Path:
    """resnet18 at 224x224, a 7-class head padded to 10 (random rows)."""
    return make_model_dir(arch="resnet18", size=224)


@pytest.fixture(scope="module")
def onnx_files(resnet18: Path, make_model_dir: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> dict[
    str, Path
]:
    from converters import export_onnx

    out = tmp_path_factory.mktemp("trt-gpu")
    files = {"fp32": out / "r18.onnx", "int8": out / "r18-int8.onnx", "other": out / "r18-other.onnx"}
    export_onnx(resnet18, files["fp32"])
    export_onnx(resnet18, files["int8"], int8=True, int8_target="tensorrt", calib="digits", calib_samples=32)
    # the same architecture and head size with other weights: what a re-fine-tuning produces
    export_onnx(make_model_dir(arch="resnet18", size=224, seed=1), files["other"])
    return files


def _validate(model_dir: Path, engine: Path) -> None:
    from validation.suite import validate

    report = validate(model_dir, [engine], device="cuda", latency=False)
    result = report.artifacts[0]
    assert result.kind == "tensorrt"
    assert result.parity is not None and result.parity.passed, result.parity.failures[:1]


@pytest.mark.parametrize("flags", [{}, {"fp16": True}], ids=["fp32", "fp16"])
def test_engine_passes_its_preset(
    resnet18: Path, onnx_files: dict[str, Path], tmp_path: Path, flags: dict[str, bool]
) -> None:
    from converters.tensorrt.build import export_tensorrt
    from converters.tensorrt.record import read_record

    engine = tmp_path / "r18.engine"
    result = export_tensorrt(onnx_files["fp32"], engine, BuildOptions(max_batch=16, opt_batch=8, **flags))
    assert result.checks["parity_passed"] == 1.0
    record = read_record(engine)
    assert record.precision == ("fp16" if flags else "fp32") and record.parity["passed"]
    script = (tmp_path / "r18.engine.trtexec.sh").read_text().splitlines()
    commands = [line for line in script if line.startswith("trtexec ")]  # not the comment line
    assert len(commands) == 1 and commands[0] == record.trtexec and "--onnx=" in commands[0]
    _validate(resnet18, engine)


def test_int8_qdq_engine_passes_the_int8_preset(resnet18: Path, onnx_files: dict[str, Path], tmp_path: Path) -> None:
    from converters.tensorrt.build import export_tensorrt

    engine = tmp_path / "r18-int8.engine"
    export_tensorrt(onnx_files["int8"], engine, BuildOptions(max_batch=8))
    _validate(resnet18, engine)


def test_dynamic_batch_inside_the_profile_and_a_clear_error_outside(
    onnx_files: dict[str, Path], tmp_path: Path
) -> None:
    from converters.tensorrt.build import export_tensorrt
    from converters.tensorrt.session import open_engine
    from toolkit.errors import InputShapeError

    engine = tmp_path / "r18.engine"
    export_tensorrt(onnx_files["fp32"], engine, BuildOptions(min_batch=1, opt_batch=4, max_batch=8))
    session, _, _ = open_engine(engine)
    try:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((8, 3, 224, 224)).astype(np.float32)
        full = session.first_output(x)
        assert full.shape == (8, 10)
        for batch in (1, 3, 8):  # each sample's logits do not depend on the batch around it
            np.testing.assert_allclose(session.first_output(x[:batch]), full[:batch], rtol=1e-4, atol=1e-4)
        with pytest.raises(InputShapeError, match="outside the engine's profile"):
            session.run(rng.standard_normal((9, 3, 224, 224)).astype(np.float32))
    finally:
        session.close()


def test_cuda_graph_replay_equals_plain_runs(onnx_files: dict[str, Path], tmp_path: Path) -> None:
    from converters.tensorrt.build import export_tensorrt
    from converters.tensorrt.session import open_engine

    engine = tmp_path / "r18.engine"
    export_tensorrt(onnx_files["fp32"], engine, BuildOptions(max_batch=8))
    rng = np.random.default_rng(1)
    plain, _, _ = open_engine(engine)
    graphed, _, _ = open_engine(engine, cuda_graph=True)
    try:
        # capture with one input, replay with others, and switch shapes in between (4 -> 8 -> 4):
        # a stale or empty replay would return the first outputs or another shape's
        for batch in (4, 4, 8, 4, 4):
            x = rng.standard_normal((batch, 3, 224, 224)).astype(np.float32)
            np.testing.assert_allclose(graphed.first_output(x), plain.first_output(x), rtol=1e-5, atol=1e-5)
    finally:
        plain.close()
        graphed.close()


def test_refit_equals_a_fresh_build(onnx_files: dict[str, Path], tmp_path: Path) -> None:
    from converters.tensorrt.build import export_tensorrt
    from converters.tensorrt.refit import refit_engine
    from converters.tensorrt.session import open_engine

    refittable = tmp_path / "r18.engine"
    export_tensorrt(onnx_files["fp32"], refittable, BuildOptions(max_batch=8, refittable=True))
    refitted = tmp_path / "r18-refit.engine"
    result = refit_engine(refittable, onnx_files["other"], refitted)
    assert result.checks["parity_passed"] == 1.0  # judged against ONNX Runtime on the new ONNX, bias included
    fresh = tmp_path / "r18-fresh.engine"
    # not REFIT: free of its documented bias issue
    export_tensorrt(onnx_files["other"], fresh, BuildOptions(max_batch=8))
    x = np.random.default_rng(2).standard_normal((8, 3, 224, 224)).astype(np.float32)
    outputs = []
    for path in (refitted, fresh):
        session, _, _ = open_engine(path)
        try:
            outputs.append(session.first_output(x))
        finally:
            session.close()
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-4, atol=1e-4)


def test_weight_stripped_engine_runs_beside_its_onnx(onnx_files: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    from converters.tensorrt.build import export_tensorrt
    from converters.tensorrt.session import open_engine

    onnx_copy = tmp_path / onnx_files["fp32"].name
    shutil.copy(onnx_files["fp32"], onnx_copy)
    engine = tmp_path / "r18-stripped.engine"
    export_tensorrt(onnx_copy, engine, BuildOptions(max_batch=8, strip_weights=True))
    assert engine.stat().st_size < onnx_copy.stat().st_size / 2  # the weights are not in the plan
    full = tmp_path / "r18-full.engine"
    export_tensorrt(onnx_copy, full, BuildOptions(max_batch=8))
    x = np.random.default_rng(3).standard_normal((8, 3, 224, 224)).astype(np.float32)
    outputs = []
    for path in (engine, full):
        session, record, _ = open_engine(path)  # the stripped one is refitted from the ONNX beside it
        assert record.weights_stripped == (path == engine)
        try:
            outputs.append(session.first_output(x))
        finally:
            session.close()
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-4, atol=1e-4)


def test_tampered_engine_is_refused(resnet18: Path, onnx_files: dict[str, Path], tmp_path: Path) -> None:
    from converters.tensorrt.build import export_tensorrt
    from toolkit.cli import main

    engine = tmp_path / "r18.engine"
    export_tensorrt(onnx_files["fp32"], engine, BuildOptions(max_batch=8))
    data = bytearray(engine.read_bytes())
    data[len(data) // 2] ^= 0x01
    engine.write_bytes(bytes(data))
    assert main(["validate", str(resnet18), str(engine), "--device", "cuda", "--no-latency"]) == 2
