"""``rehead validate --cross-check / --timings`` and ``rehead bench --cross-check`` through the CLI."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from toolkit.cli import main

FAST = ["--duration", "0.2", "--warmup", "0.05", "--max-cv", "100"]


@pytest.fixture(scope="module")
def other_model_dir(make_model_dir: Callable[..., Path]) -> Path:
    """The digits model's architecture and classes, other weights (another seed)."""
    return make_model_dir(seed=1)


def test_validate_refuses_an_export_of_another_model_naming_the_flag(
    other_model_dir: Path, onnx_fp32: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["validate", str(other_model_dir), str(onnx_fp32), "--samples", "4", "--batch-sizes", "2", "--no-latency"]
    code = main(args)
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("rehead: error:")]
    assert code == 2, err
    assert len(err) == 1 and "model.onnx" in err[0] and "weights" in err[0], err
    assert err[0].endswith("; flag: --cross-check"), err


def test_validate_cross_check_compares_on_purpose(
    other_model_dir: Path, onnx_fp32: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([
        "validate", str(other_model_dir), str(onnx_fp32), "--samples", "4", "--batch-sizes", "2", "--no-latency",
        "--cross-check",
    ])
    out = capsys.readouterr()
    # not refused: the comparison runs, and finds the other weights apart (a parity failure, exit 1)
    assert code == 1, out.err
    assert "model.onnx" in out.out and "parity FAIL" in out.out
    assert "exported from weights" not in out.err


def test_bench_refuses_then_cross_checks(
    other_model_dir: Path, onnx_fp32: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["bench", str(other_model_dir), str(onnx_fp32), "--batch-sizes", "1", *FAST]
    assert main(args) == 2
    assert capsys.readouterr().err.strip().endswith("; flag: --cross-check")
    assert main([*args, "--cross-check"]) == 0
    assert "model.onnx" in capsys.readouterr().out


def test_validate_timings_prints_where_the_time_went(
    digits_model_dir: Path, onnx_fp32: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["validate", str(digits_model_dir), str(onnx_fp32), "--samples", "4", "--batch-sizes", "2", "--no-latency"]
    assert main(base) == 0
    assert "timings (seconds):" not in capsys.readouterr().out
    assert main([*base, "--timings"]) == 0
    out = capsys.readouterr().out
    lines = out[out.index("timings (seconds):") :].splitlines()[1:]
    rows = {line.split()[0]: float(line.split()[-1]) for line in lines if line.startswith("  ")}
    assert "wall_s" in rows and rows["wall_s"] > 0, out
