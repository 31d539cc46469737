"""ONNX Runtime's CUDA and TensorRT execution providers as runner options (``ort_provider``).

The provider lists are checked as a pure function; on a machine without onnxruntime-gpu the
refusals are checked end to end with the real onnxruntime (exit 2 on the CPU, exit 3 when the
provider is missing, before any model work). The ``gpu`` test runs a real CUDA EP validation.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import onnxruntime
import pytest

from converters.onnx.ort import _check_active, open_session, ort_trt_cache_dir, providers_for
from converters.onnx.runner import OrtRunner
from converters.runners import registry
from toolkit.cli import main
from toolkit.errors import HardwareUnavailableError, InvalidArgumentError

GPU_EPS = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
AVAILABLE = list(onnxruntime.get_available_providers())
no_trt_ep = pytest.mark.skipif(
    "TensorrtExecutionProvider" in AVAILABLE, reason="onnxruntime-gpu with TensorRT is installed here"
)


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("rehead: error:")]


# --- providers_for: the lists handed to InferenceSession ------------------------------------------


def test_default_providers_are_unchanged() -> None:
    assert providers_for("cpu", AVAILABLE) == ["CPUExecutionProvider"]  # this machine's real list
    assert providers_for("cuda:1", GPU_EPS) == [
        ("CUDAExecutionProvider", {"device_id": 1, "use_tf32": 0}),  # fp32 means fp32; the GPU asked for
        "CPUExecutionProvider",
    ]
    with pytest.raises(HardwareUnavailableError) as info:
        providers_for("cuda", ["CPUExecutionProvider"])
    assert info.value.param is None  # no provider was named: the device is at fault


def test_cuda_provider_takes_the_device_index() -> None:
    assert providers_for("cuda", GPU_EPS, "cuda") == [
        ("CUDAExecutionProvider", {"device_id": 0, "use_tf32": 0}),
        "CPUExecutionProvider",
    ]
    assert providers_for("cuda:1", GPU_EPS, "cuda")[0] == ("CUDAExecutionProvider", {"device_id": 1, "use_tf32": 0})


def test_cuda_ep_runs_fp32_without_tf32_and_other_precisions_as_asked() -> None:
    """ONNX Runtime's CUDA EP defaults use_tf32 to on: fp32 parity against the TF32-free eager
    reference would fail on Ampere and newer, and the Predictor's logits would differ."""
    for provider in (None, "cuda", "tensorrt"):
        lists = providers_for("cuda", GPU_EPS, provider)
        cuda = next(p for p in lists if isinstance(p, tuple) and p[0] == "CUDAExecutionProvider")
        assert cuda[1]["use_tf32"] == 0, provider
        fp16 = providers_for("cuda", GPU_EPS, provider, precision="fp16")
        cuda16 = next(p for p in fp16 if isinstance(p, tuple) and p[0] == "CUDAExecutionProvider")
        assert "use_tf32" not in cuda16[1]


def test_tensorrt_ep_fp32_is_judged_as_tf32(onnx_fp32: Path) -> None:
    """TensorRT's builder allows TF32 by default: an fp32 model on the TensorRT EP is judged with
    the tf32 preset, and the runner says so; on the CUDA EP it stays fp32."""
    trt = OrtRunner(onnx_fp32, device="cuda", provider="tensorrt")
    assert trt.precision == "tf32" and "tf32 preset" in trt.precision_note
    assert OrtRunner(onnx_fp32, device="cuda", provider="cuda").precision == "fp32"
    assert OrtRunner(onnx_fp32, device="cuda", provider="tensorrt", precision="fp16").precision == "fp16"


def test_tensorrt_provider_options(tmp_path: Path) -> None:
    got = providers_for("cuda:2", GPU_EPS, "tensorrt", precision="fp16", cache_dir=tmp_path)
    assert got == [
        (
            "TensorrtExecutionProvider",
            {
                "device_id": 2,
                "trt_engine_cache_enable": True,
                "trt_engine_cache_path": str(tmp_path),
                "trt_timing_cache_enable": True,
                "trt_timing_cache_path": str(tmp_path),
                "trt_fp16_enable": True,
            },
        ),
        ("CUDAExecutionProvider", {"device_id": 2}),  # fp16: the TF32 switch does not apply
        "CPUExecutionProvider",
    ]
    fp32 = providers_for("cuda", GPU_EPS, "tensorrt")
    options: Any = fp32[0][1]
    assert options["trt_fp16_enable"] is False and options["device_id"] == 0
    assert options["trt_engine_cache_path"] == str(ort_trt_cache_dir())


def test_trt_cache_root_follows_rehead_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REHEAD_CACHE_DIR", str(tmp_path / "root"))
    assert ort_trt_cache_dir() == tmp_path / "root" / "ort-trt"
    monkeypatch.delenv("REHEAD_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert ort_trt_cache_dir() == tmp_path / "xdg" / "rehead" / "ort-trt"


@pytest.mark.parametrize(("device", "provider"), [("cpu", "cuda"), ("cpu", "tensorrt"), ("cuda", "openvino")])
def test_provider_on_the_cpu_or_unknown_is_bad_input(device: str, provider: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        providers_for(device, GPU_EPS, provider)
    assert info.value.param == "ort_provider" and info.value.exit_code == 2


@pytest.mark.parametrize("provider", ["cuda", "tensorrt"])
def test_missing_provider_names_what_is_available(provider: str) -> None:
    with pytest.raises(HardwareUnavailableError) as info:
        providers_for("cuda", ["AzureExecutionProvider", "CPUExecutionProvider"], provider)
    line = info.value.one_line()
    assert info.value.exit_code == 3 and info.value.param == "ort_provider"
    assert "AzureExecutionProvider, CPUExecutionProvider" in line and "rehead[gpu]" in line


# --- open_session on this machine: refused, never run on the CPU instead ---------------------------


@no_trt_ep
def test_open_session_refuses_a_missing_tensorrt_ep_before_any_work(
    onnx_fp32: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REHEAD_CACHE_DIR", str(tmp_path))
    start = time.perf_counter()
    with pytest.raises(HardwareUnavailableError) as info:
        open_session(onnx_fp32, device="cuda", provider="tensorrt")
    assert time.perf_counter() - start < 5.0
    assert ", ".join(AVAILABLE) in info.value.one_line()
    assert not (tmp_path / "ort-trt").exists()  # refused before the model was read or a cache made


def test_a_session_on_another_provider_is_refused(onnx_fp32: Path) -> None:
    # a real CPU session stands for ONNX Runtime's silent fallback: the guard must name what runs
    session = open_session(onnx_fp32)
    with pytest.raises(HardwareUnavailableError) as info:
        _check_active(session, "TensorrtExecutionProvider", "model.onnx")
    assert "would run on CPUExecutionProvider" in info.value.message and info.value.param == "ort_provider"
    _check_active(session, "CPUExecutionProvider", "model.onnx")  # the one asked for: accepted


# --- runner and registry -------------------------------------------------------------------------


def test_runner_name_and_active_providers(onnx_fp32: Path) -> None:
    assert OrtRunner(onnx_fp32, device="cuda", provider="tensorrt").name == "model.onnx [tensorrt-ep]"
    with OrtRunner(onnx_fp32) as runner:
        assert runner.name == "model.onnx" and runner.providers == ()
        runner.load()
        assert runner.providers == ("CPUExecutionProvider",)


def test_open_runner_gives_the_provider_to_onnx_only(
    onnx_fp32: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = registry.open_runner(onnx_fp32, device="cuda", ort_provider="cuda")  # opened lazily: no GPU needed
    assert isinstance(runner, OrtRunner) and runner.provider == "cuda" and runner.name == "model.onnx [cuda-ep]"
    calls: list[dict[str, Any]] = []

    def plain_factory(path: Path, *, device: str, threads: int | None, prep: Any = None) -> OrtRunner:
        calls.append({"device": device, "threads": threads})
        return OrtRunner(onnx_fp32)

    monkeypatch.setitem(registry._REGISTRY, ".plug", plain_factory)
    artifact = tmp_path / "model.plug"
    artifact.write_bytes(b"x")
    assert isinstance(registry.open_runner(artifact, ort_provider="tensorrt"), OrtRunner)
    assert calls == [{"device": "cpu", "threads": None}]


# --- the CLI -------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["validate", "bench"])
def test_cli_provider_on_the_cpu_exits_2_naming_the_flag(
    command: str, digits_model_dir: Path, onnx_fp32: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([command, str(digits_model_dir), str(onnx_fp32), "--batch-sizes", "1", "--ort-provider", "tensorrt"])
    err = _error_lines(capsys.readouterr().err)
    assert code == 2, err
    assert len(err) == 1 and "CUDA GPU" in err[0] and err[0].endswith("; flag: --ort-provider"), err


def test_cli_unknown_provider_exits_2(
    digits_model_dir: Path, onnx_fp32: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["validate", str(digits_model_dir), str(onnx_fp32), "--ort-provider", "openvino"])
    err = _error_lines(capsys.readouterr().err)
    assert code == 2 and len(err) == 1 and "unknown ONNX Runtime provider 'openvino'" in err[0], err


@no_trt_ep
def test_cli_tensorrt_on_this_machine_exits_3(
    digits_model_dir: Path, onnx_fp32: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["validate", str(digits_model_dir), str(onnx_fp32), "--device", "cuda", "--ort-provider", "tensorrt"])
    err = _error_lines(capsys.readouterr().err)
    assert code == 3 and len(err) == 1, err


def test_report_settings_record_the_provider(digits_model_dir: Path, onnx_fp32: Path) -> None:
    from validation.suite import validate

    report = validate(digits_model_dir, [onnx_fp32], samples=2, batch_sizes=(1,), latency=False, reference_cache=None)
    assert "ort_provider" in report.settings and report.settings["ort_provider"] is None


# --- on a GPU with onnxruntime-gpu ---------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif("CUDAExecutionProvider" not in AVAILABLE, reason="needs onnxruntime-gpu (pip install rehead[gpu])")
def test_validate_on_the_cuda_ep(digits_model_dir: Path, onnx_fp32: Path) -> None:
    from validation.suite import validate

    report = validate(
        digits_model_dir, [onnx_fp32], samples=4, batch_sizes=(1, 4), device="cuda", ort_provider="cuda",
        latency=False, reference_cache=None,
    )
    result = report.artifacts[0]
    assert result.name == "model.onnx [cuda-ep]" and result.parity_status == "pass", result.failures
    assert report.settings["ort_provider"] == "cuda"


@pytest.mark.gpu
@pytest.mark.skipif("CUDAExecutionProvider" not in AVAILABLE, reason="needs onnxruntime-gpu (pip install rehead[gpu])")
def test_a_cuda_session_runs_on_cuda_without_fallback_or_tf32(onnx_fp32: Path) -> None:
    """No provider named on a CUDA device: the CUDA EP is checked to be active, ORT's CPU fallback
    is off (the session method; the constructor argument was ignored) and fp32 runs without TF32."""
    session = open_session(onnx_fp32, device="cuda")
    assert session.get_providers()[0] == "CUDAExecutionProvider"
    assert session._enable_fallback is False
    assert session.get_provider_options()["CUDAExecutionProvider"]["use_tf32"] == "0"
