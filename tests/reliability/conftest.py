"""Fixtures for the reliability campaign: small model directories and exports, the ledger."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from toolkit.records import HeadSpec, ModelConfig, Preprocessing

DIGITS = tuple(str(d) for d in range(10))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from reliability_util import write_ledger

    write_ledger()


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TinyNet (two conv blocks, 16x16 inputs, head ``fc``) recording the digits as its data."""
    import converters_testmodels as tm

    from toolkit.models.model_dir import save_model_dir

    torch.manual_seed(0)
    config = ModelConfig(
        arch="py:converters_testmodels:make_tiny",
        head=HeadSpec.identity("fc", "linear", 16, 10),
        class_names=DIGITS,
        preprocessing=Preprocessing(input_size=(16, 16)),
        lineage=({"stage": "finetune", "data": "digits"},),
    )
    out = tmp_path_factory.mktemp("tiny") / "model"
    save_model_dir(tm.make_tiny().eval(), config, out)
    return out


@pytest.fixture(scope="session")
def tiny_onnx(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from converters import export_onnx

    out = tmp_path_factory.mktemp("tiny-onnx") / "tiny.onnx"
    export_onnx(tiny_dir, out, progress=False)
    return out


@pytest.fixture()
def workdir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
