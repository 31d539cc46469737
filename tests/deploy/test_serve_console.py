"""tritonserver's console through ``rehead serve``'s filter: the lines that are noise on a CPU host
are dropped, a real error line gets through. The real ``tritonserver`` binary of PyTriton's wheel
is started on a model repository that does not exist: it prints its CPU-host noise, then the error."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from toolkit.deploy._console import ConsoleFilter, is_noise

pytestmark = pytest.mark.timeout(120)

NVML = "Error: Failed to initialize NVML"
SIGNALS = ["Signal (2) received.", "Signal (15) received."]
CUDA_LOG = [
    'W1205 03:00:53.375446 8748 pinned_memory_manager.cc:273] "Unable to allocate pinned system memory, pinned '
    'memory pool will not be available: CUDA driver version is insufficient for CUDA runtime version"',
    'E1205 03:00:53.375552 8748 server.cc:241] "CudaDriverHelper has not been initialized."',
    'W1205 03:00:53.383412 8748 metrics.cc:798] "DCGM unable to start: DCGM initialization error"',
]
REAL = [
    "error: creating server: Internal - failed to stat file /nowhere",
    'E1205 03:01:33.204996 9324 model_lifecycle.cc:654] "failed to load \'digits\' version 1: Internal: boom"',
    "I1205 03:01:33.204996 9324 pb_stub.cc:2145]  Non-graceful termination detected. ",
    "Signal (2) received. and then something else went wrong",
    "Traceback (most recent call last):",
    "",
]


def test_noise_lines_are_named_and_real_lines_are_not() -> None:
    for line in [NVML, *CUDA_LOG]:
        assert is_noise(line, cpu=True), line
        assert not is_noise(line, cpu=False), f"a GPU complaint is real when serving on a GPU: {line}"
    for line in SIGNALS:
        assert is_noise(line, cpu=True) and is_noise(line, cpu=False)
    for line in REAL:
        assert not is_noise(line, cpu=True), line


def test_chunks_are_reassembled_into_lines() -> None:
    """PyTriton reads tritonserver's output unbuffered: chunks split lines anywhere."""
    out: list[str] = []
    console = ConsoleFilter(out.append, cpu=True)
    text = f"{NVML}\nerror: creating server: Internal - bad\n{SIGNALS[0]}\nlast words"
    for i in range(0, len(text), 7):
        console(text[i : i + 7].encode())
    assert out == ["error: creating server: Internal - bad\n"]
    console.close()
    assert out[-1] == "last words\n" and console.dropped == 2


def tritonserver() -> tuple[Path, Path]:
    pytest.importorskip("pytriton", reason="needs the serve extra: pip install 'rehead[serve]'")
    from pytriton.utils.distribution import get_libs_path, get_root_module_path

    binary = get_root_module_path() / "tritonserver" / "bin" / "tritonserver"
    if not binary.is_file():
        pytest.skip(f"PyTriton's wheel has no tritonserver binary at {binary}")
    return binary, Path(get_libs_path())


def test_a_real_tritonserver_error_gets_through_and_its_noise_does_not(tmp_path: Path) -> None:
    binary, libs = tritonserver()
    from tests.deploy.test_serve import free_ports  # (that module needs the serve extra to import)

    http, grpc, metrics = free_ports(3)
    done = subprocess.run(
        [str(binary), f"--model-repository={tmp_path / 'nowhere'}", f"--log-file={tmp_path / 'triton.log'}",
         f"--http-port={http}", f"--grpc-port={grpc}", f"--metrics-port={metrics}"],
        capture_output=True, env={"LD_LIBRARY_PATH": str(libs), "PATH": "/usr/bin:/bin"}, timeout=60, check=False,
    )
    raw = (done.stdout + done.stderr).decode("utf-8", errors="replace")
    assert done.returncode != 0, raw
    passed: list[str] = []
    console = ConsoleFilter(passed.append, cpu=True)
    console(done.stdout + done.stderr)
    console.close()
    print(f"\ntritonserver printed:\n{raw}rehead serve passes on:\n{''.join(passed)}")
    assert any(line.startswith("error: creating server:") and "nowhere" in line for line in passed), passed
    assert not any("NVML" in line for line in passed)
    # on a host without a GPU driver the binary says it could not start NVML: dropped, and counted
    assert console.dropped == raw.count(NVML)
