"""export_pt2: an AOTInductor package with a dynamic batch, loadable without the model's Python code.

Compiling takes ~30-60 s even for a tiny model, so one export serves every test. It runs in a
fresh interpreter, as ``rehead export pt2`` does, so that what it prints can be checked too:
torch prints some notices only once per process.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import converters
from toolkit.errors import InvalidArgumentError, OutputExistsError
from toolkit.models.model_dir import load_model_dir

ROOT = Path(__file__).resolve().parents[3]
_EXPORT = (
    "import pickle, sys, converters;"
    "r = converters.export_pt2(sys.argv[1], sys.argv[2]);"
    "open(sys.argv[3], 'wb').write(pickle.dumps(r))"
)


def _fresh_python(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -c ...`` in a new interpreter at the repository root; the test models importable."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests" / "converters")])}
    return subprocess.run(
        [sys.executable, "-c", *args], capture_output=True, text=True, check=True, cwd=ROOT, env=env, timeout=600
    )


@pytest.fixture(scope="module")
def pt2_run(custom_model_dir, tmp_path_factory: pytest.TempPathFactory) -> tuple[converters.ExportResult, str]:  # type: ignore[no-untyped-def]
    """The export's result and everything the process printed (stdout and stderr)."""
    folder = tmp_path_factory.mktemp("pt2")
    done = _fresh_python(_EXPORT, str(custom_model_dir("make_tiny")), str(folder / "m.pt2"), str(folder / "r.pkl"))
    result: converters.ExportResult = pickle.loads((folder / "r.pkl").read_bytes())
    return result, done.stdout + done.stderr


@pytest.fixture(scope="module")
def tiny_pt2(pt2_run: tuple[converters.ExportResult, str]) -> converters.ExportResult:
    return pt2_run[0]


def test_pt2_export_prints_nothing(pt2_run: tuple[converters.ExportResult, str]) -> None:
    assert pt2_run[1].strip() == ""  # progress=False: a library call prints nothing


def test_torchs_cuda_home_notice_is_dropped(pt2_run: tuple[converters.ExportResult, str]) -> None:
    # A CUDA build of torch without a GPU logs "No CUDA runtime is found, using CUDA_HOME=..."
    # when AOTInductor first imports torch.utils.cpp_extension; export_pt2 drops exactly that.
    control = _fresh_python("import torch.utils.cpp_extension")
    if "CUDA_HOME" not in control.stderr:
        pytest.skip("torch prints no CUDA_HOME notice here (a GPU, a CPU build, or no CUDA toolkit)")
    assert "CUDA_HOME" not in pt2_run[1]


def test_pt2_matches_eager_at_1_3_17(tiny_pt2: converters.ExportResult, custom_model_dir) -> None:  # type: ignore[no-untyped-def]
    module = load_model_dir(custom_model_dir("make_tiny")).module
    runner = converters.load_pt2(tiny_pt2.path)
    for batch in (1, 3, 17):
        x = torch.randn(batch, 3, 16, 16)
        with torch.inference_mode():
            assert (runner(x) - module(x)).abs().max().item() <= 1e-4
    assert tiny_pt2.format == "pt2" and tiny_pt2.exporter == "aoti" and tiny_pt2.opset is None
    assert tiny_pt2.inputs[0].shape == ("batch", 3, 16, 16) and tiny_pt2.outputs[0].shape == ("batch", 10)


def test_pt2_loads_without_the_model_code(tiny_pt2: converters.ExportResult) -> None:
    # A fresh interpreter where the factory module (converters_testmodels) is not importable.
    code = (
        "import sys, torch; m = torch._inductor.aoti_load_package(sys.argv[1]);"
        "print(tuple(m(torch.randn(5, 3, 16, 16)).shape))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tiny_pt2.path)],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
        timeout=300,
    )
    assert out.stdout.strip().splitlines()[-1] == "(5, 10)"


def test_pt2_carries_metadata(tiny_pt2: converters.ExportResult) -> None:
    meta = converters.read_pt2_metadata(tiny_pt2.path)
    assert meta["class_names"] == [str(d) for d in range(10)] and meta["precision"] == "fp32"
    assert json.dumps(meta["head_spec"])


def test_pt2_refuses_existing_output_and_wrong_suffix(custom_model_dir, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "m.pt2"
    out.write_bytes(b"previous")
    with pytest.raises(OutputExistsError):
        converters.export_pt2(custom_model_dir("make_tiny"), out, progress=False)
    assert out.read_bytes() == b"previous"
    with pytest.raises(InvalidArgumentError, match=r"\.pt2"):
        converters.export_pt2(custom_model_dir("make_tiny"), tmp_path / "m.zip", progress=False)


# --- the device a package was compiled for: recorded, and the only kind it runs on ------------------


def _with_device_record(package: Path, out: Path, device: str | None) -> Path:
    """A copy of ``package`` whose stored metadata records ``device`` (None: no record, as a package
    written before rehead recorded it). Only the JSON beside the compiled model changes; nothing of
    it is loaded by the tests below."""
    import zipfile

    with zipfile.ZipFile(package) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename.endswith("_metadata.json"):
                meta = json.loads(data)
                meta.pop("rehead.device", None)
                if device is not None:
                    meta["rehead.device"] = device
                data = json.dumps(meta).encode()
            dst.writestr(item, data)
    return out


def test_pt2_records_the_device_it_was_compiled_for(tiny_pt2: converters.ExportResult, tmp_path: Path) -> None:
    from converters.pt2.export import package_device

    assert converters.read_pt2_metadata(tiny_pt2.path)["device"] == "cpu"
    assert package_device(tiny_pt2.path) == "cpu"
    old = _with_device_record(tiny_pt2.path, tmp_path / "old.pt2", None)
    assert package_device(old) == "cpu" and converters.read_pt2_metadata(old)["device"] == "cpu"
    assert package_device(_with_device_record(tiny_pt2.path, tmp_path / "gpu.pt2", "cuda")) == "cuda"


def test_a_cpu_package_is_refused_on_cuda_before_anything_runs(
    tiny_pt2: converters.ExportResult, tmp_path: Path
) -> None:
    from converters.runners.registry import open_runner

    old = _with_device_record(tiny_pt2.path, tmp_path / "old.pt2", None)
    for package in (tiny_pt2.path, old):
        for device in ("cuda", "cuda:1"):
            with pytest.raises(InvalidArgumentError, match=r"compiled for cpu, not for device 'cuda") as info:
                open_runner(package, device=device)
            assert info.value.exit_code == 2 and "device='cpu'" in (info.value.hint or "")
            with pytest.raises(InvalidArgumentError, match="compiled for cpu"):
                converters.load_pt2(package, device=device)
    # the refusal came from the record alone: CUDA was never touched
    assert not torch.cuda.is_initialized()


def test_a_cuda_package_is_refused_on_the_cpu(tiny_pt2: converters.ExportResult, tmp_path: Path) -> None:
    from converters.pt2.runner import Pt2Runner

    gpu = _with_device_record(tiny_pt2.path, tmp_path / "gpu.pt2", "cuda")
    with pytest.raises(InvalidArgumentError, match="compiled for cuda, not for device 'cpu'"):
        Pt2Runner(gpu, device="cpu")
    with pytest.raises(InvalidArgumentError, match="compiled for cuda"):
        converters.load_pt2(gpu, device="cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is here: the no-GPU refusal cannot be exercised")
def test_export_pt2_for_cuda_without_a_gpu_is_exit_3(
    custom_model_dir, tmp_path: Path, capsys: pytest.CaptureFixture[str]  # type: ignore[no-untyped-def]
) -> None:
    from toolkit.cli import main

    out = tmp_path / "m.pt2"
    assert main(["export", "pt2", str(custom_model_dir("make_tiny")), "-o", str(out), "--device", "cuda"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no CUDA GPU" in err[0], err
    assert list(tmp_path.iterdir()) == []


def test_the_predictor_picks_a_package_by_the_device_it_records(
    tiny_pt2: converters.ExportResult, tmp_path: Path
) -> None:
    import shutil

    from toolkit.deploy.bundle import BundleArtifact, Manifest
    from toolkit.deploy.choice import choose_artifact
    from toolkit.errors import HardwareUnavailableError

    (tmp_path / "artifacts").mkdir()
    shutil.copy(tiny_pt2.path, tmp_path / "artifacts" / "cpu.pt2")
    _with_device_record(tiny_pt2.path, tmp_path / "artifacts" / "gpu.pt2", "cuda")

    def manifest(*files: str) -> Manifest:
        entries = tuple(BundleArtifact(f"artifacts/{f}", "pt2", "fp32", True, False, {}, {}) for f in files)
        return Manifest("", (), (), {}, {}, entries, {}, False)

    entry, backend, device, notes = choose_artifact(
        tmp_path, manifest("gpu.pt2", "cpu.pt2"), backend=None, device="cpu"
    )
    assert (entry.file, backend, device) == ("artifacts/cpu.pt2", "pt2", "cpu")
    assert notes == ("artifacts/gpu.pt2: compiled for cuda, not for cpu",)
    if torch.cuda.is_available():
        assert choose_artifact(tmp_path, manifest("gpu.pt2"), backend=None, device=None)[2] == "cuda"
    else:  # the recorded device, and none here
        with pytest.raises(HardwareUnavailableError, match=r"gpu\.pt2: compiled for cuda, not for this machine"):
            choose_artifact(tmp_path, manifest("gpu.pt2"), backend=None, device=None)
    assert choose_artifact(tmp_path, manifest("cpu.pt2"), backend=None, device=None)[2] == "cpu"
