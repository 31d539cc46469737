"""OpenVINO IRs in bundles: packaged with their .bin and verified, run by the Predictor, served by Triton."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.deploy.conftest import FAST, QUICK
from toolkit.deploy.predictor import Predictor


@pytest.fixture(scope="module")
def ir(digits_model_dir: Path, onnx_fp32: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from converters.openvino.export import export_openvino

    out = tmp_path_factory.mktemp("ir") / "model.xml"
    export_openvino(onnx_fp32, out, model_dir=digits_model_dir)
    return out


@pytest.fixture(scope="module")
def ov_bundle(digits_model_dir: Path, ir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from toolkit.deploy.bundle import package

    out = tmp_path_factory.mktemp("ovb") / "bundle"
    package(digits_model_dir, [ir], out, latency_settings=FAST, **QUICK)
    return out


def test_the_ir_travels_with_its_bin_and_verifies(ov_bundle: Path) -> None:
    from toolkit.deploy import verify

    manifest = verify(ov_bundle)
    (entry,) = manifest.artifacts
    assert entry.kind == "openvino" and entry.passed
    assert entry.file == "artifacts/model.xml" and list(entry.companions) == ["artifacts/model.bin"]
    assert {"artifacts/model.xml", "artifacts/model.bin"} <= {f.name for f in manifest.files}


def test_a_changed_bin_is_refused(ov_bundle: Path, tmp_path: Path) -> None:
    from toolkit.deploy import verify
    from toolkit.errors import BundleMismatchError

    copy = Path(shutil.copytree(ov_bundle, tmp_path / "bundle"))
    weights = next(copy.rglob("model.bin"))
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(BundleMismatchError, match=r"model\.bin"):
        verify(copy)


def test_the_predictor_runs_the_ir_as_validation_did(ov_bundle: Path, ir: Path) -> None:
    from converters.runners.registry import open_runner

    x = np.random.default_rng(3).standard_normal((5, 3, 32, 32)).astype(np.float32)
    with Predictor.from_bundle(ov_bundle) as predictor:
        assert predictor.backend == "openvino" and predictor.artifact.name == "model.xml"
        got = predictor.logits(x)
    with open_runner(ir) as runner:
        expected = runner.run(x)["logits"]
    np.testing.assert_array_equal(got, expected)


def test_the_runtime_choice_times_with_the_predictors_threads_and_keeps_the_winner(
    digits_model_dir: Path, onnx_fp32: Path, ir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ONNX and an IR: ONNX Runtime and OpenVINO on the ONNX and OpenVINO on the IR are timed
    with the threads asked for, and the fastest's loaded runner is the one the Predictor runs
    (three opens, not a fourth for the winner)."""
    from converters.runners import registry
    from toolkit.deploy.bundle import package

    bundle = tmp_path / "bundle"
    package(digits_model_dir, [onnx_fp32, ir], bundle, latency_settings=FAST, **QUICK)
    real, opened = registry.open_runner, []

    def spy(path: Path, **options: Any) -> Any:
        runner = real(path, **options)
        opened.append((options.get("threads"), runner))
        return runner

    monkeypatch.setattr(registry, "open_runner", spy)
    with Predictor.from_bundle(bundle, threads=1) as predictor:
        assert len(opened) == 3 and {threads for threads, _ in opened} == {1}
        assert any(runner is predictor._runner for _, runner in opened)
        assert any("fastest here" in note for note in predictor.notes), predictor.notes
        x = np.random.default_rng(4).standard_normal((2, 3, 32, 32)).astype(np.float32)
        assert predictor.logits(x).shape == (2, 10)


def _parse(model_dir: Path) -> Any:
    from google.protobuf import text_format

    pb = pytest.importorskip("tritonclient.grpc.model_config_pb2")
    config = pb.ModelConfig()
    text_format.Parse((model_dir / "config.pbtxt").read_text(encoding="utf-8"), config)
    return config


def test_triton_gets_an_openvino_backend_model(ov_bundle: Path, tmp_path: Path) -> None:
    from toolkit.deploy.triton import triton_repository

    triton_repository(ov_bundle, tmp_path / "repo", name="digits", artifact="model.xml")
    config = _parse(tmp_path / "repo" / "digits")
    assert config.backend == "openvino" and config.platform == ""
    assert sorted(p.name for p in (tmp_path / "repo" / "digits" / "1").iterdir()) == ["model.bin", "model.xml"]
    inputs = {t.name: list(t.dims) for t in config.input}
    outputs = {t.name: list(t.dims) for t in config.output}
    assert inputs == {"images": [3, 32, 32]} and outputs == {"logits": [10]}
    assert config.max_batch_size == 8 and config.output[0].label_filename == "labels.txt"
