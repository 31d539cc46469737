"""Reports: JSON (versioned schema), JUnit XML, console table, and the HTML page in a real browser."""

from __future__ import annotations

import dataclasses
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from toolkit.errors import GateFailedError, OutputExistsError
from validation.gates import gates
from validation.latency import LatencyStats, summarize
from validation.report import json_text, write_reports
from validation.report.junit import junit_xml
from validation.result import SCHEMA, SCHEMA_VERSION, ArtifactResult, ValidationReport
from validation.suite import validate

from .conftest import FAST, SKIP_REASON, browser, chromium

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
    # no parity results here (records only); the latency gates failed: the title says both
    assert lines[0].rstrip().startswith("rehead validate — resnet18: parity not checked · latency FAIL (p99 latency")


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
    batches = [r[9].strip() for r in rows if r[9].strip()]
    assert batches == ["1", "4"] * 3  # eager and both artifacts at every batch size
    bad = next(f for f in report.failures if f.class_slice == "new")
    assert f"FAIL {bad.line()}" in text  # the whole record's line, once


@pytest.mark.skipif(chromium() is None, reason=SKIP_REASON)
def test_html_renders_plots_and_tables_in_chromium(report: ValidationReport, tmp_path: Path) -> None:
    written = write_reports(report, report_dir=tmp_path / "report")
    html = written["html"]
    assert sorted(p.name for p in html.parent.iterdir()) == ["junit.xml", "report.html", "report.json"]
    page = html.read_text()
    assert page.count('src="data:image/png;base64,') >= 5  # self-contained: histograms, per-class, latency
    assert "http://" not in page and "https://" not in page

    dom = browser(["--dump-dom", html.as_uri()], tmp_path / "profile-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'data-rendered="ok"' in dom.stdout, dom.stdout[:500]
    images = page.count("<img ")
    assert f"rendered {images}/{images} plots" in dom.stdout
    assert "new classes [7:10]" in dom.stdout and "Latency" in dom.stdout
    assert "top-1 agreement" in dom.stdout and "size (MiB)" in dom.stdout

    shot = tmp_path / "report.png"
    done = browser([f"--screenshot={shot}", "--window-size=1280,2400", html.as_uri()], tmp_path / "profile-png")
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as img:
        colors = img.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colors is not None and len(colors) > 200  # text, tables and plots, not a blank page


@pytest.mark.skipif(chromium() is None, reason=SKIP_REASON)
def test_html_bench_says_why_a_measurement_is_inconclusive(tmp_path: Path) -> None:
    reference = {1: _stats(1, 20.0), 8: _stats(8, 40.0)}
    report = _records_report(
        [_artifact("model.onnx", {1: _stats(1, 1.0, noisy=True), 8: _stats(8, 10.0)}, reference)],
        reference, parity=False, head=True,
    )
    html = write_reports(report, report_dir=tmp_path / "bench")["html"]
    dom = browser(["--dump-dom", html.as_uri()], tmp_path / "profile")
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


# --- parity and latency verdicts apart; cold start; agreement named by its slice ---------------------


@pytest.fixture(scope="module")
def noisy(digits_model_dir: Path, onnx_fp32: Path) -> ValidationReport:
    """Parity passes; every latency is inconclusive (a CV bound no machine meets), no gate."""
    settings = dataclasses.replace(FAST, max_cv=1e-6)
    return validate(digits_model_dir, [onnx_fp32], samples=4, batch_sizes=(1,), latency_settings=settings,
                    head_latency=False, localise=False, progress=False)


def test_latency_noise_does_not_headline_a_parity_pass(noisy: ValidationReport, tmp_path: Path) -> None:
    from rich.console import Console

    from validation.report.console import print_summary
    from validation.report.html import render_html

    parity, latency = noisy.verdicts
    assert (parity.status, parity.blocking) == ("pass", False)
    assert (latency.status, latency.blocking) == ("inconclusive", False) and "noisy machine" in latency.reason
    assert noisy.headline == f"parity PASS · latency inconclusive ({latency.reason})"
    noisy.raise_for_status()  # exit 0, as before: noise without a gate decides nothing
    assert noisy.status == "inconclusive"  # the one-word JSON status keeps its meaning for old readers

    data = json.loads(json_text(noisy))
    assert data["parity_verdict"]["status"] == "pass" and data["latency_verdict"]["blocking"] is False
    assert data["headline"] == noisy.headline
    console = Console(record=True, width=160)
    print_summary(noisy, console)
    assert console.export_text().splitlines()[0] == f"rehead validate — resnet18: {noisy.headline}"
    props = {e.get("name"): e.get("value") for e in ET.fromstring(junit_xml(noisy).split("\n", 1)[1]).iter("property")}
    assert props["parity_verdict"] == "pass" and props["latency_verdict"] == "inconclusive"
    assert props["latency_verdict_blocking"] == "false" and props["headline"] == noisy.headline
    heading = render_html(noisy).split("<h1>", 1)[1].split("</h1>", 1)[0]
    assert '<span class="badge pass">parity PASS</span>' in heading
    assert '<span class="badge quiet">latency inconclusive</span>' in heading  # not the orange badge
    assert "badge inconclusive" not in heading


def test_verdicts_block_exactly_when_the_exit_code_is_1(noisy: ValidationReport, report: ValidationReport) -> None:
    # a gate that meets noise cannot be decided: the latency verdict blocks, and the run fails (exit 1)
    gated = dataclasses.replace(noisy, artifacts=[dataclasses.replace(a) for a in noisy.artifacts])
    art = gated.artifacts[0]
    art.gate_failures = gates(art, gated.reference_latency, max_p99_ms=1e9, min_speedup=None)
    assert art.gate_failures and not any(f.conclusive for f in art.gate_failures)
    assert gated.latency_verdict.status == "inconclusive" and gated.latency_verdict.blocking
    assert gated.headline.startswith("parity PASS · latency INCONCLUSIVE (noisy machine")
    with pytest.raises(GateFailedError):
        gated.raise_for_status()
    # parity failed (a perturbed new-class row): blocking, named
    assert report.parity_verdict.status == "fail" and "bad-row.onnx" in report.parity_verdict.reason
    reference = {1: _stats(1, 10.0)}
    slow = _artifact("slow.onnx", {1: _stats(1, 20.0)}, reference)
    slow.gate_failures = gates(slow, reference, max_p99_ms=5.0, min_speedup=None)
    failed = _records_report([slow], reference, parity=True)
    assert failed.latency_verdict.status == "fail" and failed.latency_verdict.blocking
    for case in (noisy, gated, report, failed):
        blocking = any(v.blocking for v in case.verdicts)
        try:
            case.raise_for_status()
            code = 0
        except GateFailedError as exc:
            code = exc.exit_code
        assert code == (1 if blocking else 0), case.headline


def test_cold_start_total_is_load_plus_first_run(onnx_fp32: Path) -> None:
    from converters.onnx.runner import OrtRunner
    from validation.latency import cold_start

    runner = OrtRunner(onnx_fp32, threads=1)
    runner.load()  # an earlier step (lineage, inputs) may have loaded it: the load still counts
    cold = cold_start(runner, np.zeros((1, 3, 32, 32), dtype=np.float32))
    assert runner.load_s is not None and cold["load_ms"] == pytest.approx(runner.load_s * 1000.0)
    assert cold["total_ms"] == pytest.approx(cold["load_ms"] + cold["first_run_ms"])
    runner.close()


def test_every_agreement_figure_names_its_slice(report: ValidationReport) -> None:
    from rich.console import Console

    from toolkit.deploy.bundle import agreement_text, certificate
    from validation.report.console import print_summary
    from validation.report.html import render_html

    data = json.loads(json_text(report))
    bad = report.artifacts[1]
    # the perturbed new-class row: every image disagrees on all and new classes, none on kept ones
    assert bad.agreements == {"all": 0.0, "kept": 1.0, "new": 0.0}
    for art, entry in zip(report.artifacts, data["artifacts"], strict=True):
        assert entry["top1_agreement"] == art.agreements  # the report's JSON
        cert = certificate(entry, data)  # what ``package`` puts in the bundle manifest
        assert cert["top1_agreement_by_slice"] == art.agreements
        assert cert["top1_agreement"] == min(art.agreements.values())  # the old key, same meaning
        assert art.agreements[cert["top1_agreement_slice"]] == cert["top1_agreement"]
    cert = certificate(data["artifacts"][1], data)
    assert cert["top1_agreement_slice"] == "all"  # a tie names "all"
    assert agreement_text(cert) == "top-1 agreement with eager: all classes 0.0%, kept 100.0%, new 0.0%"
    old = {k: v for k, v in cert.items() if not k.startswith("top1_agreement_")}  # a manifest from before
    assert agreement_text(old) == "top-1 agreement with eager: 0.0% (lowest over all/kept/new classes)"

    console = Console(record=True, width=200)
    print_summary(report, console)
    text = console.export_text()
    assert "% all/kept/new" in text and "0.0/100/0.0" in text and "100/100/100" in text
    page = render_html(report)
    assert "top-1 agreement with eager, % all/kept/new classes" in page and "0.0/100/0.0" in page


def test_package_prints_agreement_per_slice(
    report: ValidationReport, digits_model_dir: Path, onnx_fp32: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from toolkit.cli import main

    json_path = write_reports(report, json_path=tmp_path / "report.json")["json"]
    code = main(["package", str(digits_model_dir), str(onnx_fp32), "-o", str(tmp_path / "bundle"),
                 "--report", str(json_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    line = next(line for line in out.splitlines() if line.startswith("artifacts/model.onnx"))
    assert "top-1 agreement with eager: all classes 100.0%, kept 100.0%, new 100.0%" in line, line
    assert "max abs error, all classes:" in line
