"""The reduced demo end to end (what CI runs of `rehead demo`): every stage, the summary, reuse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from toolkit.cli import main


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    out = tmp_path_factory.mktemp("demo") / "run"
    return out, main(["demo", "--quick", "-o", str(out)])


def test_demo_writes_every_stage_and_report(demo_run: tuple[Path, int]) -> None:
    out, code = demo_run
    assert code == 0
    for folder in ("pretrained", "extended", "finetuned"):
        assert (out / folder / "model.safetensors").is_file() and (out / folder / "config.json").is_file()
    # the openvino extra is part of the quick start and CI: the demo writes both graphs as IRs too
    for name in ("model.onnx", "model-int8.onnx", "model.pt2", "model.xml", "model.bin", "model-int8.xml"):
        assert (out / "artifacts" / name).stat().st_size > 1000
    for name in ("report.html", "report.json", "junit.xml"):
        assert (out / "report" / name).is_file()
    cfg = json.loads((out / "finetuned" / "config.json").read_text())
    assert cfg["head"]["strategy"] == "imprint" and cfg["class_names"] == [str(d) for d in range(10)]
    assert [s["stage"] for s in cfg["lineage"]][-1] == "finetune"
    summary = json.loads((out / "summary.json").read_text())
    rows = {r["artifact"]: r for r in summary["rows"]}
    assert set(rows) == {"eager", "model.onnx", "model-int8.onnx", "model.pt2", "model.xml", "model-int8.xml"}
    assert rows["model.xml"]["test_top1"] == pytest.approx(rows["eager"]["test_top1"], abs=1 / 270)
    assert rows["model.xml"]["size_bytes"] > (out / "artifacts" / "model.bin").stat().st_size
    # fp32 artifacts agree with eager on every test image; INT8 stays close
    assert rows["model.onnx"]["test_top1"] == pytest.approx(rows["eager"]["test_top1"], abs=1 / 270)
    assert rows["model.pt2"]["test_top1"] == pytest.approx(rows["eager"]["test_top1"], abs=1 / 270)
    assert abs(rows["model-int8.onnx"]["test_top1"] - rows["eager"]["test_top1"]) < 0.05
    assert all(r["parity"] in ("pass", "reference") for r in rows.values())
    assert rows["eager"]["test_top1_old"] > 0.5, "even the reduced demo learns the old digits"


def test_demo_ends_with_a_bundle_a_triton_repository_and_a_live_round_trip(
    demo_run: tuple[Path, int], capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    out, code = demo_run
    assert code == 0
    capsys.readouterr()
    assert main(["verify", str(out / "bundle")]) == 0
    manifest = json.loads((out / "bundle" / "manifest.json").read_text())
    assert {a["file"].split("/")[-1] for a in manifest["artifacts"]} >= {"model.onnx", "model.xml"}
    assert (out / "triton" / "digits" / "config.pbtxt").is_file()
    assert (out / "triton" / "digits" / "1" / "model.onnx").is_file()
    state = json.loads((out / "demo-state.json").read_text())
    assert {"package", "triton"} <= set(state)
    if importlib.util.find_spec("pytriton") is None:
        pytest.skip("the serve extra is not installed: the demo skips its live round trip (CI installs it)")
    printed = main(["demo", "--quick", "-o", str(out)])  # every stage reused; the round trip runs again
    assert printed == 0
    assert "live rehead serve round trip: 8 digits over HTTP" in capsys.readouterr().out


def test_second_run_reuses_and_tampering_redoes(demo_run: tuple[Path, int],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = demo_run
    state = json.loads((out / "demo-state.json").read_text())
    assert set(state) == {"pretrain", "extend", "finetune", "export", "validate", "package", "triton"}
    # tamper with an exported artifact: its stage and the stages after it run again
    onnx_path = out / "artifacts" / "model.onnx"
    import hashlib

    tampered = onnx_path.read_bytes() + b"\0"
    onnx_path.write_bytes(tampered)
    capsys.readouterr()
    assert main(["demo", "--quick", "--no-pt2", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "[pretrain] reused" in err and "[finetune] reused" in err
    assert "rehead demo: export ..." in err and "rehead demo: validate ..." in err
    assert "rehead demo: pretrain ..." not in err
    after = json.loads((out / "demo-state.json").read_text())
    assert "artifacts/model.pt2" not in after["export"]["files"]
    assert after["export"]["recipe"] != state["export"]["recipe"]
    assert after["export"]["files"]["artifacts/model.onnx"] != hashlib.sha256(tampered).hexdigest()


def test_demo_rejects_unknown_strategy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--quick", "-s", "nope", "-o", str(tmp_path / "d")]) == 2
    assert "unknown strategy 'nope'" in capsys.readouterr().err
