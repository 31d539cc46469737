"""Reports: JSON (versioned schema), JUnit XML, console table, and the HTML page in a real browser."""

from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from toolkit.errors import OutputExistsError
from validation.report import json_text, write_reports
from validation.result import SCHEMA, SCHEMA_VERSION, ValidationReport
from validation.suite import validate

from .conftest import FAST


@pytest.fixture(scope="module")
def report(digits_model_dir: Path, onnx_fp32: Path, onnx_bad_new_row: Path) -> ValidationReport:
    return validate(
        digits_model_dir, [onnx_fp32, onnx_bad_new_row], data="digits", samples=8, batch_sizes=(1, 4),
        latency_settings=FAST, progress=False,
    )


def test_json_follows_the_versioned_schema(report: ValidationReport) -> None:
    data = json.loads(json_text(report))
    assert data["schema"] == SCHEMA and data["schema_version"] == SCHEMA_VERSION
    assert data["status"] == "fail"
    assert data["model"]["new_indices"] == [7, 8, 9]
    assert data["environment"]["cpu"] and data["environment"]["threads"] >= 1
    assert "torch" in data["environment"]["versions"] and "onnxruntime" in data["environment"]["versions"]
    good, bad = data["artifacts"]
    assert good["status"] in ("pass", "inconclusive") and good["parity_status"] == "pass"
    assert bad["parity_status"] == "fail" and bad["parity"]["localisation"]["module"] == "fc"
    slices = {s["slice"]: s for s in bad["parity"]["batches"][0]["slices"]}
    assert set(slices) == {"all", "kept", "new"}
    assert slices["new"]["passed"] is False and slices["kept"]["passed"] is True
    for key in ("max_abs", "mean_abs", "p99_abs", "max_rel", "cosine_min", "sqnr_db", "top1", "top5", "kl_max"):
        assert key in slices["new"]["metrics"]
    lat = good["latency"]["4"]
    for key in ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "mean_ms", "std_ms", "cv", "throughput", "status"):
        assert key in lat
    assert good["speedup"]["4"] > 0 and good["cold_start"]["total_ms"] > 0
    assert data["head_latency"]["batches"][0]["old_head"]["p50_ms"] > 0
    assert data["reference"]["latency"]["1"]["runs"] >= FAST.min_runs
    # kept-slice SQNR is finite or the string "inf": strict JSON, no bare NaN/Infinity
    assert "NaN" not in json_text(report) and "Infinity" not in json_text(report)


def test_junit_lists_a_case_per_check(report: ValidationReport, tmp_path: Path) -> None:
    written = write_reports(report, junit_path=tmp_path / "junit.xml")
    root = ET.parse(written["junit"]).getroot()
    suite = root.find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert len(cases) == 2 * (2 + 2)  # 2 artifacts × (parity + latency) × 2 batch sizes
    failed = [c for c in cases if c.find("failure") is not None]
    assert {c.get("name") for c in failed} == {"parity[batch=1]", "parity[batch=4]"}
    assert all("bad-row.onnx" in (c.get("classname") or "") for c in failed)
    assert "new classes [7:10]" in (failed[0].find("failure").text or "")  # type: ignore[union-attr]
    assert int(suite.get("failures", "0")) == 2


def test_outputs_are_not_clobbered(report: ValidationReport, tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("keep me")
    with pytest.raises(OutputExistsError):
        write_reports(report, report_dir=tmp_path / "new-dir", json_path=target)
    assert target.read_text() == "keep me"
    assert not (tmp_path / "new-dir").exists()  # refused before anything was written
    write_reports(report, json_path=target, overwrite=True)
    assert json.loads(target.read_text())["schema"] == SCHEMA


def test_console_table_has_a_row_per_artifact(report: ValidationReport) -> None:
    from rich.console import Console

    from validation.report.console import print_summary

    console = Console(record=True, width=200)
    print_summary(report, console)
    text = console.export_text()
    assert "model.onnx" in text and "bad-row.onnx" in text and "eager-fp32 (reference)" in text
    assert "FAIL" in text and "new classes [7:10]" in text and "LOCALISE" in text


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _browser(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    chromium = _chromium()
    assert chromium is not None
    base = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
        f"--user-data-dir={profile}", "--virtual-time-budget=10000",
    ]
    return subprocess.run(base + args, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.skipif(
    _chromium() is None,
    reason="chromium is not installed (apt-get update && apt-get install -y chromium); "
    "the HTML report cannot be checked in a browser",
)
def test_html_renders_plots_and_tables_in_chromium(report: ValidationReport, tmp_path: Path) -> None:
    written = write_reports(report, report_dir=tmp_path / "report")
    html = written["html"]
    assert sorted(p.name for p in html.parent.iterdir()) == ["junit.xml", "report.html", "report.json"]
    page = html.read_text()
    assert page.count('src="data:image/png;base64,') >= 5  # self-contained: histograms, per-class, latency
    assert "http://" not in page and "https://" not in page

    dom = _browser(["--dump-dom", html.as_uri()], tmp_path / "profile-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'data-rendered="ok"' in dom.stdout, dom.stdout[:500]
    images = page.count("<img ")
    assert f"rendered {images}/{images} plots" in dom.stdout
    assert "new classes [7:10]" in dom.stdout and "Latency" in dom.stdout

    shot = tmp_path / "report.png"
    done = _browser([f"--screenshot={shot}", "--window-size=1280,2400", html.as_uri()], tmp_path / "profile-png")
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as img:
        colors = img.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colors is not None and len(colors) > 200  # text, tables and plots, not a blank page
