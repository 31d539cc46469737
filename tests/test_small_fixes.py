"""What a new user tripped on, the small items: a missing image is a missing image, ``bench`` says it
benchmarks, an ONNX that rehead did not export says so, and a failure's hint names a report only
when one was written."""

from __future__ import annotations

from pathlib import Path

import onnx
import onnx.numpy_helper
import pytest

from toolkit.cli import main
from toolkit.data.images import load_image
from toolkit.errors import DataError


def test_a_missing_image_says_check_the_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist") as info:
        load_image(tmp_path / "nope.png")
    assert info.value.hint == "check the path"


def test_bench_progress_says_benchmarking(digits_model_dir: Path, onnx_fp32: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    assert main(["bench", str(digits_model_dir), str(onnx_fp32), "--batch-sizes", "1", "--duration", "0.05",
                 "--warmup", "0.01"]) in (0, 1)  # fmt: skip
    err = capsys.readouterr().err
    assert "benchmarking" in err and "validating" not in err, err


def test_an_onnx_without_rehead_record_says_so(digits_model_dir: Path, onnx_fp32: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    model = onnx.load(str(onnx_fp32))
    del model.metadata_props[:]
    foreign = tmp_path / "foreign.onnx"
    onnx.save(model, str(foreign))
    code = main(["validate", str(digits_model_dir), str(foreign), "--no-latency", "--batch-sizes", "1",
                 "--samples", "8"])  # fmt: skip
    err = capsys.readouterr().err
    warning = [line for line in err.splitlines() if line.startswith("rehead: warning:")]
    assert code == 0, err  # the same weights: parity holds, the warning only says what was not checked
    assert len(warning) == 1 and "carries no rehead record" in warning[0] and "--cross-check" in warning[0], err

    # a failure without --report (a planted error in the head's bias): the hint says how to get a
    # report, not "open the report"
    bias = next(t for t in model.graph.initializer if list(t.dims) == [10])
    planted = onnx.numpy_helper.to_array(bias) + 1.0
    bias.CopyFrom(onnx.numpy_helper.from_array(planted, bias.name))
    onnx.save(model, str(foreign))
    code = main(["validate", str(digits_model_dir), str(foreign), "--no-latency", "--batch-sizes", "1",
                 "--samples", "8"])  # fmt: skip
    err = capsys.readouterr().err
    error = [line for line in err.splitlines() if line.startswith("rehead: error:")]
    assert code == 1 and len(error) == 1, err
    assert "write a report (--report DIR or --json FILE)" in error[0] and "open the report" not in error[0], err
