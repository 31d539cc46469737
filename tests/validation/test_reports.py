"""Reports: JSON (versioned schema), JUnit XML, console table, and the HTML page in a real browser."""

from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from toolkit.errors import OutputExistsError
from validation.gates import gates
from validation.latency import LatencyStats, summarize
from validation.report import json_text, write_reports
from validation.report.junit import junit_xml
from validation.result import SCHEMA, SCHEMA_VERSION, ArtifactResult, ValidationReport
from validation.suite import validate

from .conftest import FAST

MAX_CV = 0.25


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


# --- reports built from records: real LatencyStats (``summarize``) and the real gates ----------------


def _stats(bs: int, ms: float, *, noisy: bool = False) -> LatencyStats:
    """40 timed runs around ``ms``; ``noisy`` alternates ms and 4·ms (CV about 0.7 > MAX_CV)."""
    spread = [1 + 3 * (i % 2) for i in range(40)] if noisy else [1 + 0.01 * (i % 5) for i in range(40)]
    return summarize([ms * k for k in spread], batch_size=bs, duration_s=0.5, max_cv=MAX_CV, timer="perf_counter")


def _artifact(name: str, latency: dict[int, LatencyStats], reference: dict[int, LatencyStats]) -> ArtifactResult:
    return ArtifactResult(
        name=name, path=f"/exports/{name}", kind="onnxruntime", precision="fp32", device="cpu",
        size_bytes=3 << 20, preset="fp32", latency=latency,
        speedup={bs: reference[bs].p50_ms / s.p50_ms for bs, s in latency.items()},
    )


def _records_report(
    artifacts: list[ArtifactResult], reference: dict[int, LatencyStats], *, parity: bool, head: bool = False
) -> ValidationReport:
    sizes = sorted(reference)
    head_latency = None
    if head:
        rows = [
            {"batch_size": bs, "old_head": _stats(bs, 0.02, noisy=bs == sizes[0]).to_json(),
             "new_head": _stats(bs, 0.03).to_json(), "new_over_old": 1.5}
            for bs in sizes
        ]
        head_latency = {"module": "fc", "shapes": {"old_head": "linear 512x7", "new_head": "Linear 'fc' 512x10"},
                        "batches": rows}
    return ValidationReport(
        created="2026-01-01T00:00:00+00:00",
        model={"path": "/models/m", "arch": "resnet18", "num_classes": 10, "class_names": [str(d) for d in range(10)],
               "kept_indices": list(range(7)), "new_indices": [7, 8, 9]},
        environment={"cpu": "test", "versions": {}},
        settings={"batch_sizes": sizes, "parity": parity, "latency": {"max_cv": MAX_CV}},
        inputs={"source": "random(seed=0)", "count": max(sizes), "nonfinite": 0, "reference_cached": False},
        reference_latency=reference, head_latency=head_latency, artifacts=artifacts, gates={}, timing={},
    )


def test_junit_reports_a_gate_failure_under_its_own_batch_size_only() -> None:
    reference = {1: _stats(1, 10.0), 16: _stats(16, 80.0)}
    art = _artifact("model.onnx", {1: _stats(1, 1.0), 16: _stats(16, 12.0)}, reference)
    art.gate_failures = gates(art, reference, max_p99_ms=5.0, min_speedup=None)
    assert [(f.batch_size, f.conclusive) for f in art.gate_failures] == [(16, True)]  # planted: batch 16 only
    report = _records_report([art], reference, parity=False)
    suite = ET.fromstring(junit_xml(report).split("\n", 1)[1]).find("testsuite")
    assert suite is not None
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert set(cases) == {"latency[batch=1]", "latency[batch=16]"}
    assert cases["latency[batch=1]"].find("failure") is None and cases["latency[batch=1]"].find("skipped") is None
    failure = cases["latency[batch=16]"].find("failure")
    assert failure is not None and "at batch 16" in failure.get("message", "")
    assert suite.get("failures") == "1" and suite.get("tests") == "2"


def test_junit_puts_input_failures_in_their_own_case(
    digits_model_dir: Path, onnx_fp32: Path, tmp_path: Path
) -> None:
    x = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)
    x[1, 0, 0, 0] = np.nan
    np.savez(tmp_path / "inputs.npz", images=x)
    report = validate(digits_model_dir, [onnx_fp32], data=str(tmp_path / "inputs.npz"), batch_sizes=(2,),
                      latency=False, localise=False, progress=False)
    suite = ET.fromstring(junit_xml(report).split("\n", 1)[1]).find("testsuite")
    assert suite is not None
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert set(cases) == {"parity[batch=2]", "parity[inputs]"}
    inputs = cases["parity[inputs]"].find("failure")
    assert inputs is not None and "1 NaN/Inf values" in (inputs.text or "")
    batch = cases["parity[batch=2]"].find("failure")
    assert batch is not None and "parity inputs hold" not in (batch.text or "")  # not repeated per batch


def test_bench_console_shows_every_batch_size_and_no_parity_verdict() -> None:
    from rich.console import Console

    from validation.report.console import print_summary

    reference = {1: _stats(1, 20.0), 8: _stats(8, 40.0)}
    report = _records_report(
        [_artifact("model.onnx", {1: _stats(1, 1.0, noisy=True), 8: _stats(8, 10.0)}, reference)],
        reference, parity=False, head=True,
    )
    console = Console(record=True, width=160)
    print_summary(report, console)
    text = console.export_text()
    title = text.splitlines()[0]
    assert title.startswith("rehead bench — resnet18: latency only, parity not checked")
    assert "1 of 4 measurements inconclusive" in title
    assert "PASS" not in text and "FAIL" not in text and "validate" not in text
    rows = [line for line in text.splitlines() if line.startswith("│")]
    batches = [line.split("│")[4].strip() for line in rows]
    assert batches == ["1", "8", "1", "8"]  # eager, then the artifact: every batch size, not only the last
    noisy_row, quiet_row = rows[2], rows[3]
    cv = report.artifacts[0].latency[1].cv
    assert f"(inconclusive: CV {cv:.2f} > 0.25)" in noisy_row
    assert "inconclusive" not in quiet_row and "4.00×" in quiet_row
    assert "INCONCLUSIVE model.onnx: latency at batch 1: coefficient of variation" in text
    head = [line for line in text.splitlines() if line.startswith("head 'fc'")]
    assert len(head) == 2 and "inconclusive: old head CV" in head[0] and "inconclusive" not in head[1]


def test_console_shows_a_few_failures_one_line_each() -> None:
    from rich.console import Console

    from validation.report.console import MAX_LINES, print_summary

    sizes = (1, 2, 4, 8)
    reference = {bs: _stats(bs, 50.0 * bs) for bs in sizes}
    artifacts = [
        _artifact(name, {bs: _stats(bs, 10.0 * bs) for bs in sizes}, reference) for name in ("a.onnx", "b.onnx")
    ]
    for art in artifacts:
        art.gate_failures = gates(art, reference, max_p99_ms=1.0, min_speedup=None)
    report = _records_report(artifacts, reference, parity=True)
    assert len(report.failures) == 8
    console = Console(record=True, width=120)
    print_summary(report, console)
    lines = console.export_text().splitlines()
    fails = [line for line in lines if line.startswith("FAIL ")]
    assert len(fails) == MAX_LINES and fails[0] == f"FAIL {report.failures[0].line()}"
    assert f"... {8 - MAX_LINES} more (see the report)" in lines
    assert max(len(line) for line in lines) < 200  # no line repeats every failure
    assert lines[0].rstrip() == "rehead validate — resnet18 (FAIL)"


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
    assert "agreement" in text and "MiB" in text
    rows = [line.split("│") for line in text.splitlines() if line.startswith("│")]
    batches = [r[8].strip() for r in rows if r[8].strip()]
    assert batches == ["1", "4"] * 3  # eager and both artifacts at every batch size
    bad = next(f for f in report.failures if f.class_slice == "new")
    assert f"FAIL {bad.line()}" in text  # the whole record's line, once


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
    assert "top-1 agreement" in dom.stdout and "size (MiB)" in dom.stdout

    shot = tmp_path / "report.png"
    done = _browser([f"--screenshot={shot}", "--window-size=1280,2400", html.as_uri()], tmp_path / "profile-png")
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as img:
        colors = img.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colors is not None and len(colors) > 200  # text, tables and plots, not a blank page


@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_html_bench_says_why_a_measurement_is_inconclusive(tmp_path: Path) -> None:
    reference = {1: _stats(1, 20.0), 8: _stats(8, 40.0)}
    report = _records_report(
        [_artifact("model.onnx", {1: _stats(1, 1.0, noisy=True), 8: _stats(8, 10.0)}, reference)],
        reference, parity=False, head=True,
    )
    html = write_reports(report, report_dir=tmp_path / "bench")["html"]
    dom = _browser(["--dump-dom", html.as_uri()], tmp_path / "profile")
    assert dom.returncode == 0, dom.stderr[-2000:]
    page = dom.stdout
    assert 'data-rendered="ok"' in page and "rendered 2/2 plots" in page  # a latency plot per batch size
    assert "rehead bench: resnet18" in page and "LATENCY ONLY" in page and "parity was not checked" in page
    assert ">PASS<" not in page and ">FAIL<" not in page
    stats = report.artifacts[0].latency[1]
    assert f"(inconclusive: CV {stats.cv:.2f} &gt; 0.25)" in page  # beside the speed-up and the p50/p99
    assert stats.reason.replace(">", "&gt;") in page  # and the whole reason, in words
    assert "inconclusive: old head CV" in page  # the head-only table marks its noisy row too


def test_plot_titles_fit_their_figure() -> None:
    from validation.report import plots

    plt = plots._pyplot()
    fig, ax = plt.subplots(figsize=(4.0, 3.0))
    ax.set_title("a-long-artifact-name-int8-calibrated-on-digits.onnx\nper-class max error (green kept, red new)")
    renderer = fig.canvas.get_renderer()
    assert ax.title.get_window_extent(renderer).width > fig.bbox.width  # would be clipped as it is
    plots.fit_titles(fig)
    fig.tight_layout()
    box = ax.title.get_window_extent(renderer)
    assert box.x0 >= fig.bbox.x0 and box.x1 <= fig.bbox.x1 and box.y1 <= fig.bbox.y1
    assert "per-class max error" in ax.title.get_text().replace("\n", " ")
    plt.close(fig)
