"""Fixtures for the deploy tests: the digits model, its ONNX export, bundles packaged from them
(directory, tar and zip; one forced with a failing artifact), and a few image files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from validation.latency import LatencySettings

#: short latency runs (seconds): the manifest gets a latency summary without slowing the tests
FAST = LatencySettings(warmup_s=0.02, min_runs=3, min_duration_s=0.05, max_cv=10.0)
#: validation settings shared by every bundle packaged here (small and quick)
QUICK = {"samples": 8, "batch_sizes": (1, 4)}


@pytest.fixture(scope="session")
def onnx_bad_new_row(onnx_fp32: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The export with one new-class row (class 8) of the head weight perturbed: parity fails."""
    from tests.validation.conftest import edit_initializer, head_initializer

    def perturb(w: np.ndarray) -> None:
        w[8] += 0.05

    dst = tmp_path_factory.mktemp("bad") / "bad-row.onnx"
    return edit_initializer(onnx_fp32, dst, head_initializer(onnx_fp32, "weight"), perturb)


@pytest.fixture(scope="session")
def validation_report(digits_model_dir: Path, onnx_fp32: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A JSON report of validate (as `rehead validate --json` writes it) for the fp32 export."""
    from validation.suite import validate

    report = validate(digits_model_dir, [str(onnx_fp32)], latency_settings=FAST, head_latency=False, **QUICK)
    path = tmp_path_factory.mktemp("report") / "report.json"
    path.write_text(json.dumps(report.to_json()), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def bundle_dir(digits_model_dir: Path, onnx_fp32: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fp32 export packaged as a directory, validated during packaging (latency included)."""
    from toolkit.deploy.bundle import package

    out = tmp_path_factory.mktemp("bundles") / "bundle"
    package(digits_model_dir, [onnx_fp32], out, latency_settings=FAST, **QUICK)
    return out


@pytest.fixture(scope="session")
def bundle_tar(
    digits_model_dir: Path, onnx_fp32: Path, validation_report: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The fp32 export packaged from the JSON report into a tar archive."""
    from toolkit.deploy.bundle import package

    out = tmp_path_factory.mktemp("archives") / "bundle.tar"
    package(digits_model_dir, [onnx_fp32], out, report=validation_report, archive="tar")
    return out


@pytest.fixture(scope="session")
def bundle_zip(
    digits_model_dir: Path, onnx_fp32: Path, validation_report: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    from toolkit.deploy.bundle import package

    out = tmp_path_factory.mktemp("archives") / "bundle.zip"
    package(digits_model_dir, [onnx_fp32], out, report=validation_report, archive="zip")
    return out


@pytest.fixture(scope="session")
def forced_bundle(
    digits_model_dir: Path, onnx_fp32: Path, onnx_bad_new_row: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The failing export packaged with force, beside the good one."""
    from toolkit.deploy.bundle import package

    out = tmp_path_factory.mktemp("forced") / "bundle"
    package(digits_model_dir, [onnx_bad_new_row, onnx_fp32], out, force=True, latency=False, **QUICK)
    return out


@pytest.fixture()
def bundle_copy(bundle_dir: Path, tmp_path: Path) -> Path:
    """A fresh copy of the packaged directory, to tamper with."""
    return Path(shutil.copytree(bundle_dir, tmp_path / "bundle"))


@pytest.fixture(scope="session")
def image_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Six PNG files of several sizes (one grey), in a class folder (``<root>/a/*.png``)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("images")
    (root / "a").mkdir()
    rng = np.random.default_rng(7)
    paths = []
    for i, (h, w) in enumerate([(32, 32), (40, 56), (64, 48), (31, 33), (100, 80), (32, 32)]):
        pixels = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        image = Image.fromarray(pixels).convert("L") if i == 3 else Image.fromarray(pixels)
        path = root / "a" / f"img{i}.png"
        image.save(path)
        paths.append(path)
    return paths
