"""``REHEAD_REQUIRE_GPU=1`` turns every skipped gpu test into a failure (tests/conftest.py), and an
installed TensorRT that does not load is not read as "not installed". On this CPU machine the
switch must make a real gpu test fail: that is what a GPU job relies on to never pass on skips."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from converters.tensorrt.runtime import tensorrt_installed, tensorrt_load_error

ROOT = Path(__file__).resolve().parents[3]
#: a real gpu-marked test that needs only CUDA (and onnxruntime-gpu)
GPU_TEST = "tests/converters/onnx/test_ort_providers.py::test_a_cuda_session_runs_on_cuda_without_fallback_or_tf32"


def _pytest(require: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "REHEAD_REQUIRE_GPU"}
    if require:
        env["REHEAD_REQUIRE_GPU"] = "1"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", GPU_TEST],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_require_gpu_fails_skipped_gpu_tests_on_a_cpu_host() -> None:
    import torch

    plain, required = _pytest(require=False), _pytest(require=True)
    if torch.cuda.is_available():  # a GPU host: the switch changes nothing for a test that runs
        assert plain.returncode == required.returncode
        return
    assert plain.returncode == 0 and "1 skipped" in plain.stdout, plain.stdout[-800:]
    # a skip at setup (skipif, the central no-CUDA skip) reports as an error, one in the test as a failure
    assert required.returncode == 1 and ("1 error" in required.stdout or "1 failed" in required.stdout)
    assert "REHEAD_REQUIRE_GPU=1, and this gpu test skipped" in required.stdout


def test_tensorrt_absent_and_broken_are_told_apart() -> None:
    """Here TensorRT is not installed (only its type stubs): no load error to report. Where a wheel
    is installed and fails to load, the error is kept and require_runtime reports it."""
    if not tensorrt_installed():
        assert tensorrt_load_error() is None
    else:
        from converters.tensorrt.runtime import tensorrt_version

        assert (tensorrt_version() is None) is (tensorrt_load_error() is not None)
