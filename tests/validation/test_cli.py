"""``rehead validate`` / ``rehead bench``: exit codes, messages, reports."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from toolkit.cli import main

FAST = ["--duration", "0.2", "--warmup", "0.05", "--max-cv", "100"]


def test_validate_passes_and_writes_reports(
    digits_model_dir: Path, onnx_fp32: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([
        "validate", str(digits_model_dir), str(onnx_fp32), "--data", "digits", "--samples", "8",
        "--batch-sizes", "1,4", *FAST, "--report", str(tmp_path / "rep"), "--json", str(tmp_path / "r.json"),
        "--junit", str(tmp_path / "junit.xml"),
    ])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "model.onnx" in out.out and "PASS" in out.out and "speed-up" in out.out
    assert (tmp_path / "rep" / "report.html").is_file()
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["status"] == "pass" and data["settings"]["batch_sizes"] == [1, 4]
    assert (tmp_path / "junit.xml").read_text().startswith("<?xml")
    # the same outputs again without --overwrite: refused before any work, exit 2
    again = main(["validate", str(digits_model_dir), str(onnx_fp32), "--json", str(tmp_path / "r.json")])
    assert again == 2 and "already exists" in capsys.readouterr().err


def test_tolerance_exceeded_exits_1_with_slice_numbers(
    digits_model_dir: Path, onnx_bad_new_row: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([
        "validate", str(digits_model_dir), str(onnx_bad_new_row), "--samples", "4", "--batch-sizes", "2",
        "--no-latency", "--json", str(tmp_path / "r.json"),
    ])
    out = capsys.readouterr()
    assert code == 1
    err = out.err.strip().splitlines()[-1]
    assert err.startswith("rehead: error: validation failed for bad-row.onnx")
    assert "cosine" in err and "top-1 agreement" in err and "worst class 8" in err and "more)" in err
    assert len(err) < 600  # the first failure and a count, not every failure on one line
    assert "'logits'[new classes [7:10]]" in out.out and "LOCALISE" in out.out and "'fc'" in out.out
    fails = [line for line in out.out.splitlines() if line.startswith("FAIL ")]
    assert 1 < len(fails) <= 5 and all(len(line) < 400 for line in fails)  # one line per failure
    assert "Traceback" not in out.err
    data = json.loads((tmp_path / "r.json").read_text())  # reports are written before the exit
    assert data["status"] == "fail"


def test_atol_override_loosens_the_gate(
    digits_model_dir: Path, onnx_bad_new_row: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([
        "validate", str(digits_model_dir), str(onnx_bad_new_row), "--samples", "4", "--batch-sizes", "2",
        "--no-latency", "--atol", "1000",
    ])
    assert code == 0, capsys.readouterr().err


def test_wrong_npz_exits_2_naming_shape_and_dtype(
    digits_model_dir: Path, onnx_fp32: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import numpy as np

    np.savez(tmp_path / "x.npz", images=np.zeros((2, 3, 32, 32), dtype=np.float64))
    code = main(["validate", str(digits_model_dir), str(onnx_fp32), "--data", str(tmp_path / "x.npz")])
    err = capsys.readouterr().err
    assert code == 2
    assert "dtype float64" in err and "float32[N,3,32,32] (NCHW)" in err


def test_unknown_suffix_exits_2(digits_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "model.tflite"
    other.write_bytes(b"x")
    assert main(["validate", str(digits_model_dir), str(other)]) == 2
    assert "no runner for 'model.tflite'" in capsys.readouterr().err


def test_cuda_without_gpu_exits_3_within_seconds(
    digits_model_dir: Path, onnx_fp32: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU; the no-GPU path cannot be exercised")
    start = time.perf_counter()
    for command in ("validate", "bench"):
        assert main([command, str(digits_model_dir), str(onnx_fp32), "--device", "cuda"]) == 3
        assert "no CUDA GPU" in capsys.readouterr().err
    assert time.perf_counter() - start < 10


def test_bench_reports_latency_and_head(
    digits_model_dir: Path, onnx_fp32: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([
        "bench", str(digits_model_dir), str(onnx_fp32), "eager:bf16", "--batch-sizes", "1,2", "--threads", "1",
        *FAST, "--json", str(tmp_path / "b.json"),
    ])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "head 'fc' batch 1" in out.out and "head 'fc' batch 2" in out.out
    title = out.out.splitlines()[0]
    assert title.startswith("rehead bench — resnet18: latency only, parity not checked"), title
    assert "PASS" not in out.out and "FAIL" not in out.out  # no parity verdict without a parity run
    rows = [line.split("│") for line in out.out.splitlines() if line.startswith("│")]
    named = [(r[1].strip(), r[4].strip()) for r in rows]
    assert [bs for _, bs in named] == ["1", "2"] * 3  # eager, model.onnx, eager:bf16: every batch size
    assert [name for name, _ in named if name] == ["eager-fp32 (reference)", "model.onnx", "eager:bf16"]
    data = json.loads((tmp_path / "b.json").read_text())
    assert data["settings"]["threads"] == 1 and data["environment"]["threads"] == 1
    assert [a["name"] for a in data["artifacts"]] == ["model.onnx", "eager:bf16"]
    assert all(a["parity"] is None for a in data["artifacts"])
    assert set(data["artifacts"][0]["latency"]) == {"1", "2"}
