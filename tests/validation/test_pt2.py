"""AOTInductor ``.pt2`` artifacts (compiling one takes about a minute on 2 cores: slow; the
benchmark's --pt2 run covers it too)."""

from __future__ import annotations

from pathlib import Path

import pytest

from validation.suite import validate

from .conftest import FAST


@pytest.mark.slow
def test_pt2_package_matches_eager(digits_model_dir: Path, tmp_path: Path) -> None:
    from converters import export_pt2

    package = tmp_path / "model.pt2"
    export_pt2(digits_model_dir, package, progress=False)
    report = validate(
        digits_model_dir, [package], samples=5, batch_sizes=(1, 4), latency_settings=FAST, head_latency=False,
        progress=False,
    )
    art = report.artifacts[0]
    assert art.kind == "pt2" and art.parity_status == "pass", art.failures
    assert art.latency[4].runs >= FAST.min_runs
