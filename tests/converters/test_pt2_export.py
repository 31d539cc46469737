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
from toolkit.model_dir import load_model_dir

ROOT = Path(__file__).resolve().parents[2]
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
