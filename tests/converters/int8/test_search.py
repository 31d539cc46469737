"""Accuracy-aware INT8 (``export_onnx(int8=True, min_agreement=...)``): real quantization, real
ONNX Runtime sessions, real timings; a planted INT8-sensitive pair must end up in fp32."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import converters
from converters.int8.record import Int8Decision, Int8Targets, decision_path, read_decision
from converters.int8.search import MIN_GAIN
from toolkit.errors import ArtifactError, DataError, GateFailedError, InvalidArgumentError
from toolkit.models.model_dir import load_model_dir, save_model_dir


@pytest.fixture(scope="module")
def planted_dir(trained_tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trained TinyNet with the planted ``spread``/``squeeze`` pair (identity in fp32)."""
    import converters_testmodels as tm

    loaded = load_model_dir(trained_tiny_dir)
    planted = tm.make_planted()
    missing = planted.load_state_dict(loaded.module.state_dict(), strict=False)
    assert sorted(missing.missing_keys) == ["spread.weight", "squeeze.weight"]
    x = torch.rand(4, 3, 16, 16)
    with torch.no_grad():  # the plant changes nothing in fp32
        torch.testing.assert_close(planted.eval()(x), loaded.module(x), rtol=1e-4, atol=1e-4)
    out = tmp_path_factory.mktemp("planted") / "model"
    save_model_dir(planted, loaded.config.replace(arch="py:converters_testmodels:make_planted"), out)
    return out


@pytest.fixture(scope="module")
def searched(planted_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> converters.ExportResult:
    out = tmp_path_factory.mktemp("searched") / "model.onnx"
    return converters.export_onnx(planted_dir, out, int8=True, calib="digits", min_agreement=0.95, progress=False)


def _planted_nodes(path: Path) -> set[str]:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return {n.name for n in graph.node if any(i.startswith(("spread.", "squeeze.")) for i in n.input)}


def test_all_int8_misses_the_target_on_the_planted_model(searched: converters.ExportResult) -> None:
    decision = searched.int8_search
    assert decision is not None
    first = decision.variants[0]
    assert first.name == "all-int8" and first.fp32_nodes == 0
    assert not first.met and first.agreement["all"] < 0.5  # the planted pair wrecks plain INT8


def test_the_planted_pair_is_kept_in_fp32_and_the_target_is_met(
    searched: converters.ExportResult, planted_dir: Path, tmp_path: Path
) -> None:
    decision = searched.int8_search
    assert decision is not None and decision.met
    assert decision.agreement["all"] >= 0.95
    fp32 = {n.node: n for n in decision.fp32_nodes}
    # the names of the pair's nodes in the prepared graph (ONNX Runtime keeps the exporter's names)
    converters.export_onnx(planted_dir, tmp_path / "fp32.onnx", progress=False)
    pair = _planted_nodes(tmp_path / "fp32.onnx")
    assert len(pair) == 2
    # (kept for sensitivity even when the fp32 graph wins on speed at the end)
    assert all(fp32[n].reason == "sensitivity" for n in pair), decision.fp32_nodes
    assert all(fp32[n].sensitivity_db is not None for n in pair)
    if decision.chosen == "int8":
        # the written graph runs the pair on float inputs: no DequantizeLinear feeds them
        from converters.int8.nodes import quantized_nodes

        assert not pair & set(quantized_nodes(searched.path))
    # the search measured the agreement it reports: the written model agrees with eager on
    # the held-out images at least as well as the target says
    assert decision.heldout["source"] == "digits val split" and decision.heldout["images"] > 100


def test_decision_is_in_the_metadata_and_beside_the_model(searched: converters.ExportResult) -> None:
    decision = searched.int8_search
    assert decision is not None
    meta = converters.read_onnx_metadata(searched.path)
    assert meta["quantization"]["search"] == decision.to_json()
    on_disk = read_decision(searched.path)
    assert on_disk == decision
    assert Int8Decision.from_json(json.loads(json.dumps(decision.to_json()))) == decision
    assert decision_path(searched.path).name == "model.onnx.int8.json"
    lat = decision.latency_ms
    assert set(lat) == {"fp32", "all_int8", "chosen"} and lat["chosen"] <= lat["fp32"]
    assert all(v.latency_ms is not None and v.latency_ms > 0 for v in decision.variants)


def test_speed_rule_follows_its_own_measurements(searched: converters.ExportResult) -> None:
    """Every group the speed rule timed (real sessions, side by side) was kept in INT8 exactly
    when INT8 was at least MIN_GAIN faster, and its nodes carry the matching reason."""
    decision = searched.int8_search
    assert decision is not None and decision.groups
    reasons = {n.node: n.reason for n in decision.fp32_nodes}
    for group in decision.groups:
        assert group.kept_int8 == (group.int8_ms < group.fp32_ms * (1 - MIN_GAIN)), group
        if not group.kept_int8 and decision.chosen == "int8":
            members = [n for n in decision.fp32_nodes if n.group == group.group and n.reason == "no speed gain"]
            assert members, group
    assert set(reasons.values()) <= {"sensitivity", "no speed gain", "fp32 chosen"}


def test_speed_rule_keeps_in_fp32_an_op_type_int8_does_not_speed_up(
    custom_model_dir, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    """A small graph whose elementwise tail (HardSwish: HardSigmoid + Mul, Add) gains nothing
    from QDQ in ONNX Runtime: measured, not mocked, at least one such group goes back to fp32."""
    model_dir = _with_data(custom_model_dir("make_swish"), tmp_path / "swish")
    result = converters.export_onnx(
        model_dir, tmp_path / "m.onnx", int8=True, calib="digits", min_agreement=0.5, progress=False
    )
    decision = result.int8_search
    assert decision is not None
    slow = [g for g in decision.groups if not g.kept_int8]
    assert slow, decision.groups
    if decision.chosen == "int8":
        reasons = {n.group: n.reason for n in decision.fp32_nodes}
        assert all(reasons[g.group] == "no speed gain" for g in slow)


def _with_data(model_dir: Path, out: Path) -> Path:
    loaded = load_model_dir(model_dir)
    save_model_dir(loaded.module, loaded.config.replace(lineage=({"stage": "finetune", "data": "digits"},)), out)
    return out


def test_unreachable_target_exits_1_with_the_best_figure(planted_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    with pytest.raises(GateFailedError) as caught:
        converters.export_onnx(planted_dir, out, int8=True, calib="digits", min_agreement=0.95, max_fp32_nodes=1,
                               progress=False)
    assert caught.value.exit_code == 1 and caught.value.param == "min_agreement"
    assert "best reached: all" in caught.value.message and "up to 1 nodes" in caught.value.message
    assert list(tmp_path.iterdir()) == []  # nothing written, no staging folder, no decision


def test_cli_refuses_an_unreachable_target_in_one_line(planted_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    env_path = str(Path(__file__).parents[1])  # tests/converters: the test models
    proc = subprocess.run(
        [sys.executable, "-m", "toolkit.cli", "export", "onnx", str(planted_dir), "-o", str(out), "--int8",
         "--calib", "digits", "--min-agreement", "0.95", "--max-fp32-nodes", "1"],
        capture_output=True, text=True, timeout=300, env={**_env(), "PYTHONPATH": env_path},
    )
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("rehead: error:")]
    assert len(errors) == 1 and "--max-fp32-nodes" in errors[0] and "Traceback" not in proc.stderr
    assert not out.exists() and not decision_path(out).exists()


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"int8": True, "min_agreement": 1.5}, "min_agreement"),
        ({"int8": True, "min_agreement": 0.0}, "min_agreement"),
        ({"int8": True, "min_agreement": True}, "min_agreement"),
        ({"int8": True, "min_agreement": 0.9, "new_class_min_agreement": -1}, "new_class_min_agreement"),
        ({"int8": True, "min_agreement": 0.9, "max_fp32_nodes": -2}, "max_fp32_nodes"),
        ({"int8": True, "min_agreement": 0.9, "heldout_samples": 0}, "heldout_samples"),
        ({"min_agreement": 0.9}, "min_agreement"),
        ({"int8": True, "max_fp32_nodes": 3}, "max_fp32_nodes"),
        ({"int8": True, "heldout": "somewhere"}, "heldout"),
    ],
)
def test_bad_targets_are_refused_before_anything_runs(
    planted_dir: Path, tmp_path: Path, kwargs: dict[str, object], param: str
) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        converters.export_onnx(planted_dir, tmp_path / "m.onnx", calib="digits", progress=False, **kwargs)
    assert caught.value.param == param and caught.value.exit_code == 2
    assert list(tmp_path.iterdir()) == []


def test_a_flat_heldout_folder_is_refused(planted_dir: Path, tmp_path: Path) -> None:
    flat = tmp_path / "flat" / "3"
    flat.mkdir(parents=True)
    with pytest.raises(DataError) as caught:
        converters.export_onnx(planted_dir, tmp_path / "m.onnx", int8=True, calib="digits", min_agreement=0.9,
                               heldout=tmp_path / "flat", progress=False)
    assert caught.value.param == "heldout" and caught.value.exit_code == 2
    assert not (tmp_path / "m.onnx").exists()


def test_decision_record_refuses_another_schema(searched: converters.ExportResult) -> None:
    data = searched.int8_search.to_json()  # type: ignore[union-attr]
    with pytest.raises(ArtifactError, match="schema_version"):
        Int8Decision.from_json({**data, "schema_version": 99})
    with pytest.raises(ArtifactError, match="malformed"):
        Int8Decision.from_json({**data, "targets": {"min_agreement": 7}})
    assert Int8Targets(0.99).met({"all": 0.99, "new": 0.1})
    assert not Int8Targets(0.99, 0.9).met({"all": 0.995, "new": 0.89})


def test_a_plain_export_removes_a_stale_decision(planted_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    decision_path(out).write_text("{}")
    converters.export_onnx(planted_dir, out, progress=False)
    assert not decision_path(out).exists()


def test_validate_shows_the_decision_and_plots_the_variants(
    searched: converters.ExportResult, planted_dir: Path, tmp_path: Path
) -> None:
    from validation.report import write_reports
    from validation.suite import validate

    report = validate(planted_dir, [searched.path], latency=False, head_latency=False, localise=False,
                      reference_cache=None)
    artifact = report.artifacts[0]
    assert artifact.int8_search == searched.int8_search.to_json()  # type: ignore[union-attr]
    write_reports(report, report_dir=tmp_path / "report")
    html = (tmp_path / "report" / "report.html").read_text()
    assert "INT8 search: model.onnx" in html and "variants tried" not in html  # the plot is an image
    assert html.count("data:image/png;base64") >= 2
    data = json.loads((tmp_path / "report" / "report.json").read_text())
    assert data["artifacts"][0]["int8_search"]["chosen"] == searched.int8_search.chosen  # type: ignore[union-attr]


def test_search_with_external_data_writes_a_loadable_model(planted_dir: Path, tmp_path: Path) -> None:
    """Weights beside the graph (as over 2 GiB): whichever graph the search writes (INT8 or the
    fp32 fallback), its data file travels with it and the model runs."""
    import onnxruntime as ort

    out = tmp_path / "m.onnx"
    result = converters.export_onnx(planted_dir, out, int8=True, calib="digits", min_agreement=0.95,
                                    external_data=True, progress=False)
    assert result.external_data and (tmp_path / result.external_data[0]).is_file()
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.run(None, {"images": torch.rand(2, 3, 16, 16).numpy()})[0].shape == (2, 10)
    assert read_decision(out) == result.int8_search
