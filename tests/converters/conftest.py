"""Fixtures for the converter tests: custom-model directories (one trained a little on digits)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from toolkit.records import HeadSpec, ModelConfig, Preprocessing

DIGITS = tuple(str(d) for d in range(10))
TINY_SIZE = 16


def _save(model: torch.nn.Module, factory: str, path: Path, *, data: str | None = None) -> Path:
    """Save ``model`` as a model directory; ``data`` is recorded as its fine-tuning data (lineage)."""
    from toolkit.models.model_dir import save_model_dir

    config = ModelConfig(
        arch=f"py:converters_testmodels:{factory}",
        head=HeadSpec.identity("fc", "linear", 16, 10),
        class_names=DIGITS,
        preprocessing=Preprocessing(input_size=(TINY_SIZE, TINY_SIZE)),
        lineage=({"stage": "finetune", "data": data},) if data is not None else (),
    )
    save_model_dir(model.eval(), config, path)
    return path


@pytest.fixture(scope="session")
def custom_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``custom_model_dir("make_eig")``: an untrained custom model directory at 16x16 (cached)."""
    import converters_testmodels as tm

    cache: dict[str, Path] = {}

    def factory(name: str) -> Path:
        if name not in cache:
            torch.manual_seed(0)
            model = getattr(tm, name)()
            cache[name] = _save(model, name, tmp_path_factory.mktemp(name) / "model")
        return cache[name]

    return factory


@pytest.fixture(scope="session")
def trained_tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TinyNet trained for a few seconds on the digits train split (about 88% test accuracy, ~20 s).

    Its lineage records ``digits`` as the fine-tuning data, as ``finetune`` would."""
    import converters_testmodels as tm

    from toolkit.data import load_samples

    torch.manual_seed(0)
    model = tm.make_tiny()
    prep = Preprocessing(input_size=(TINY_SIZE, TINY_SIZE))
    x, y = load_samples("digits", prep, split="train")
    opt = torch.optim.Adam(model.parameters(), lr=0.005)
    model.train()
    for _epoch in range(12):
        for idx in torch.randperm(len(x)).split(32):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return _save(model, "make_tiny", tmp_path_factory.mktemp("trained") / "model", data="digits")
