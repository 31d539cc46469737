"""Parity on real images by default: held-out images of the data a model directory records, else
random inputs said in every report, and ``require_real_data`` to make random-only a failure."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from rich.console import Console

from toolkit.cli import main
from toolkit.errors import GateFailedError
from validation.report import write_reports
from validation.report.console import print_summary
from validation.suite import validate


def _with_lineage(model_dir: Path, out: Path, data: str) -> Path:
    """A copy of ``model_dir`` whose lineage records fine-tuning on ``data`` (as finetune writes it)."""
    shutil.copytree(model_dir, out)
    config = json.loads((out / "config.json").read_text())
    config["lineage"] = [*config.get("lineage", []), {"stage": "finetune", "data": data}]
    (out / "config.json").write_text(json.dumps(config))
    return out


def _parity_only(model_dir: Path, artifact: Path, **kwargs: object):  # type: ignore[no-untyped-def]
    return validate(model_dir, [artifact], samples=6, batch_sizes=(1, 4), latency=False, progress=False, **kwargs)


def test_recorded_data_gives_held_out_images_by_default(
    digits_model_dir: Path, onnx_fp32: Path, tmp_path: Path
) -> None:
    model = _with_lineage(digits_model_dir, tmp_path / "tuned", "digits")
    report = _parity_only(model, onnx_fp32)
    inputs = report.to_json()["inputs"]
    # the digits' val split: never the train split the model was tuned on
    assert inputs["source"] == "held-out digits val split (lineage: digits)", inputs
    assert inputs["random_only"] is False and inputs["warning"] == "" and inputs["count"] == 6
    assert report.artifacts[0].parity_status == "pass"
    strict = _parity_only(model, onnx_fp32, require_real_data=True)
    assert strict.artifacts[0].parity_status == "pass"


def test_random_only_is_said_in_every_report(digits_model_dir: Path, onnx_fp32: Path, tmp_path: Path) -> None:
    report = _parity_only(digits_model_dir, onnx_fp32)
    inputs = report.to_json()["inputs"]
    assert inputs["random_only"] is True and inputs["source"] == "random(seed=0)"
    assert inputs["note"] == "the model directory records no fine-tuning data"
    line = inputs["warning"]
    assert line.startswith("parity inputs: random only (the model directory records no fine-tuning data)")
    assert "\n" not in line and "--require-real-data" in line
    write_reports(report, report_dir=tmp_path / "r")
    for name in ("report.html", "report.json", "junit.xml"):
        assert "parity inputs: random only" in (tmp_path / "r" / name).read_text(), name
    console = Console(record=True, width=400)
    print_summary(report, console)
    assert sum("parity inputs: random only" in row for row in console.export_text().splitlines()) == 1
    assert report.artifacts[0].parity_status == "pass"  # said, not failed, unless asked


def test_asked_for_random_is_said_too(digits_model_dir: Path, onnx_fp32: Path) -> None:
    report = _parity_only(digits_model_dir, onnx_fp32, data="random")
    assert report.inputs["warning"].startswith("parity inputs: random only (random inputs were asked for)")


def test_recorded_data_missing_here_falls_back_to_random_and_says_why(
    digits_model_dir: Path, onnx_fp32: Path, tmp_path: Path
) -> None:
    model = _with_lineage(digits_model_dir, tmp_path / "tuned", str(tmp_path / "gone"))
    report = _parity_only(model, onnx_fp32)
    assert report.inputs["random_only"] is True
    assert f"its recorded data '{tmp_path / 'gone'}' gave no held-out images here" in report.inputs["note"]


def test_require_real_data_fails_a_random_only_run(digits_model_dir: Path, onnx_fp32: Path) -> None:
    report = _parity_only(digits_model_dir, onnx_fp32, require_real_data=True)
    art = report.artifacts[0]
    assert art.parity_status == "fail"
    first = art.failures[0]
    assert (first.kind, first.metric) == ("inputs", "real_data") and "random inputs only" in first.message
    # only the inputs failed: the outputs themselves matched
    assert len(art.failures) == 1 and art.parity is not None and art.parity.localisation is None
    with pytest.raises(GateFailedError, match="random inputs only"):
        report.raise_for_status()


def test_cli_require_real_data_is_exit_1(
    digits_model_dir: Path, onnx_fp32: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["validate", str(digits_model_dir), str(onnx_fp32), "--samples", "4", "--batch-sizes", "1", "--no-latency"]
    assert main([*args, "--require-real-data"]) == 1
    assert "random inputs only" in capsys.readouterr().err
    assert main(args) == 0
    assert "parity inputs: random only" in capsys.readouterr().out


def test_random_only_is_what_was_drawn_not_what_a_file_is_called(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np

    from toolkit.records import Preprocessing
    from validation.inputs import load_inputs

    prep = Preprocessing(input_size=(8, 8))
    monkeypatch.chdir(tmp_path)
    np.savez("random_val.npz", images=np.zeros((3, 3, 8, 8), np.float32))  # real images, a name starting "random"
    inputs = load_inputs("random_val.npz", prep)
    assert inputs.source == "random_val.npz" and inputs.random_only is False
    assert load_inputs("random", prep, samples=2).random_only is True
