"""``rehead export onnx|pt2`` through ``toolkit.cli.main``: exit codes, one-line errors, nothing half-written."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolkit.cli import main


def test_export_onnx_writes_and_prints_summary(
    digits_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m.onnx"
    assert main(["export", "onnx", str(digits_model_dir), "-o", str(out)]) == 0
    captured = capsys.readouterr()
    line = captured.out.strip().splitlines()[-1]
    # the library is quiet by default; the CLI turns its progress on (stderr, one line per step)
    assert "export m.onnx" in captured.err, captured.err
    assert line.startswith(f"wrote {out}") and "images float32[batch,3,32,32]" in line and "opset" in line
    assert out.stat().st_size > 1_000_000


def test_existing_output_without_overwrite_is_exit_2(
    digits_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m.onnx"
    out.write_bytes(b"previous")
    assert main(["export", "onnx", str(digits_model_dir), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists" in err[0] and "--overwrite" in err[0]
    assert out.read_bytes() == b"previous"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fp16", "--int8"], "exclude each other"),
        (["--opset", "99"], "opset"),
        (["--int8", "--calib-method", "median"], "calibration method"),
        (["--int8", "--calib-samples", "0"], "positive"),
        (["--int8", "--calib", "/nonexistent/images"], "does not exist"),
    ],
)
def test_bad_flags_are_exit_2_and_write_nothing(
    digits_model_dir: Path, tmp_path: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m.onnx"
    assert main(["export", "onnx", str(digits_model_dir), "-o", str(out), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert list(tmp_path.iterdir()) == []


def test_missing_model_dir_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "pt2", str(tmp_path / "nope"), "-o", str(tmp_path / "m.pt2")]) == 2
    assert "not a model directory" in capsys.readouterr().err
    assert main(["export", "onnx", str(tmp_path / "nope"), "-o", str(tmp_path / "m.onnx")]) == 2
    assert list(tmp_path.iterdir()) == []


def test_unsupported_op_is_exit_2_naming_the_op(
    custom_model_dir,
    tmp_path: Path,  # type: ignore[no-untyped-def]
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["export", "onnx", str(custom_model_dir("make_eig")), "-o", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "linalg_eig" in err[-1] and err[-1].startswith("rehead: error:")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--int8", "--calib-samples", "0"], "--calib-samples"),
        (["--int8", "--calib-method", "median"], "--calib-method"),
        (["--int8", "--int8-target", "gpu"], "--int8-target"),
        (["--opset", "99"], "--opset"),
    ],
)
def test_library_errors_name_the_flag_at_fault(
    digits_model_dir: Path, tmp_path: Path, args: list[str], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The library names its keyword argument (calib_samples); the CLI adds the flag that set it."""
    assert main(["export", "onnx", str(digits_model_dir), "-o", str(tmp_path / "m.onnx"), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith(f"; flag: {flag}"), err


def test_an_error_without_a_flag_names_none(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "onnx", str(tmp_path / "nope"), "-o", str(tmp_path / "m.onnx")]) == 2
    assert "flag:" not in capsys.readouterr().err


def test_int8_without_calib_and_no_recorded_data_is_exit_2_naming_calib(
    digits_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--calib defaults to the data in the model directory's lineage; an extended, never fine-tuned
    model records none, so the export refuses instead of calibrating on the bundled digits."""
    assert main(["export", "onnx", str(digits_model_dir), "-o", str(tmp_path / "m.onnx"), "--int8"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("rehead: error:")]
    assert len(err) == 1 and err[0].endswith("; flag: --calib"), err
    assert list(tmp_path.iterdir()) == []
