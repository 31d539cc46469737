"""export_pt2: an AOTInductor package with a dynamic batch, loadable without the model's Python code.

Compiling takes ~30-60 s even for a tiny model, so one session-scoped export serves every test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import converters
from toolkit.errors import InvalidArgumentError, OutputExistsError
from toolkit.model_dir import load_model_dir


@pytest.fixture(scope="module")
def tiny_pt2(custom_model_dir, tmp_path_factory: pytest.TempPathFactory) -> converters.ExportResult:  # type: ignore[no-untyped-def]
    return converters.export_pt2(
        custom_model_dir("make_tiny"), tmp_path_factory.mktemp("pt2") / "m.pt2", progress=False
    )


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
