"""The HTML report in a real browser at 1280 px: nothing scrolls sideways, text cells are not
squeezed to a word per line, and every plot is readable with a 10-class and a 1003-class head."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from validation.report import write_reports
from validation.report.plots import PER_CLASS_WORST
from validation.result import ValidationReport
from validation.suite import validate

from .conftest import FAST, SKIP_REASON, chromium, measure, screenshot

pytestmark = pytest.mark.skipif(chromium() is None, reason=SKIP_REASON)

#: a CV bound no machine meets: every latency is inconclusive, as on a noisy machine
NOISY = dataclasses.replace(FAST, max_cv=1e-6)
WIDTH = 1280


@pytest.fixture(scope="module")
def ten_classes(digits_model_dir: Path, onnx_fp32: Path, onnx_bad_new_row: Path) -> ValidationReport:
    """10 classes (7 kept, 3 new); one export passes, one has a new-class row perturbed."""
    return validate(digits_model_dir, [onnx_fp32, onnx_bad_new_row], data="digits", samples=8,
                    batch_sizes=(1, 4), latency_settings=NOISY, progress=False)


@pytest.fixture(scope="module")
def thousand_classes(make_model_dir: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
                     ) -> ValidationReport:
    """A 1000-class head extended to 1003 classes; an export with a long name; every latency noisy."""
    from converters import export_onnx

    model_dir = make_model_dir(arch="mobilenet_v3_small", old=1000, new=1003, size=32)
    out = tmp_path_factory.mktemp("onnx1003") / "mobilenet_v3_small-1003-classes-fp32-exported-for-serving.onnx"
    export_onnx(model_dir, out, progress=False)
    return validate(model_dir, [out], samples=8, batch_sizes=(1, 4), latency_settings=NOISY, progress=False)


def _layout(report: ValidationReport, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    html = write_reports(report, report_dir=tmp_path / "report")["html"]
    return html, measure(html, tmp_path / "measure", width=WIDTH)


@pytest.mark.parametrize("which", ["ten_classes", "thousand_classes"])
def test_report_fits_1280_px_and_its_plots_are_readable(
    which: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    report: ValidationReport = request.getfixturevalue(which)
    html, layout = _layout(report, tmp_path)
    screenshot(html, tmp_path / f"{which}.png", tmp_path / "profile-png", width=WIDTH)

    assert layout["window_width"] == WIDTH
    # nothing scrolls sideways: not the page, and no table wider than the window or than itself
    assert layout["scroll_width"] <= WIDTH, layout["scroll_width"]
    for table in layout["tables"]:
        assert table["right"] <= WIDTH and table["scroll_width"] <= table["width"] + 1, table["headers"]
    # the speed-up column is on screen
    summary = next(t for t in layout["tables"] if "speed-up vs eager" in t["headers"])
    assert summary["right"] <= WIDTH

    # a long text cell (a latency reason, a failure) is not squeezed to a word per line
    reasons = [c for c in layout["cells"] if "coefficient of variation" in c["text"]]
    assert reasons, "every latency is noisy here: the report must say why"
    for cell in reasons:
        assert cell["width"] >= 240 and cell["lines"] <= 3, cell

    # every plot is shown at (nearly) its own size: a figure scaled down to fit is unreadable
    assert layout["images"]
    for image in layout["images"]:
        assert image["natural_width"] > 0 and image["right"] <= WIDTH, image["alt"]
        assert image["width"] >= 0.75 * image["natural_width"], (image["alt"], image["natural_width"])
        assert image["natural_height"] <= 1400, (image["alt"], image["natural_height"])

    # the per-class chart: the worst kept classes and every new class, however many classes
    new = report.model["new_indices"]
    charts = [i for i in layout["images"] if i["data"].get("plot") == "per-class"]
    assert len(charts) == len(report.artifacts)
    for chart in charts:
        shown = [int(c) for c in chart["data"]["classes"].split(",")]
        assert set(new) <= set(shown)
        assert len(shown) <= max(PER_CLASS_WORST + len(new), 10)
        if report.model["num_classes"] <= 10:
            assert sorted(shown) == list(range(10))  # a small head: every class

    # the headline gives parity and latency their own verdicts: noise does not headline
    assert report.latency_verdict.status == "inconclusive" and not report.latency_verdict.blocking
    parity = report.parity_verdict.status.upper()
    assert f"parity {parity}" in layout["headline"] and "latency inconclusive (noisy machine" in layout["headline"]
