"""Library calls leave torch's global RNG and thread count as they found them, and stay seeded."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from toolkit.errors import UnknownArchitectureError
from toolkit.extension import extend
from toolkit.records import Preprocessing

PREP = Preprocessing(input_size=(32, 32))


@pytest.fixture
def untouched() -> Iterator[Callable[[], None]]:
    """Seeds the global RNG with a value no library call uses, then checks nothing moved it."""
    torch.manual_seed(987_654)
    rng, threads = torch.random.get_rng_state(), torch.get_num_threads()

    def check() -> None:
        assert torch.equal(torch.random.get_rng_state(), rng), "the global torch RNG state changed"
        assert torch.get_num_threads() == threads, "the thread count changed"

    yield check
    check()


@pytest.mark.parametrize("strategy", ["replace", "mlp", "pad-random"])
def test_extend_leaves_the_rng_alone_and_follows_its_seed(strategy: str, untouched: Callable[[], None]) -> None:
    kwargs = {"strategy": strategy, "arch": "resnet18", "num_classes": 1003, "preprocessing": PREP, "seed": 5}
    first = extend(**kwargs)  # type: ignore[arg-type]
    untouched()
    before = torch.random.get_rng_state()
    torch.rand(10)  # a caller drawing in between must not change what the same seed gives
    moved = torch.random.get_rng_state()
    second = extend(**kwargs)  # type: ignore[arg-type]
    assert torch.equal(torch.random.get_rng_state(), moved)
    torch.random.set_rng_state(before)
    a, b = first.module.state_dict(), second.module.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_loading_a_model_dir_leaves_the_rng_alone(digits_model_dir: Path, untouched: Callable[[], None]) -> None:
    from toolkit.models.model_dir import load_model_dir

    load_model_dir(digits_model_dir)


def test_finetune_leaves_rng_and_threads_alone(
    digits_model_dir: Path, tmp_path: Path, untouched: Callable[[], None]
) -> None:
    from toolkit.finetune import FinetuneConfig, finetune

    threads = 2 if torch.get_num_threads() != 2 else 1
    cfg = FinetuneConfig(epochs=1, freeze_epochs=1, batch_size=64, threads=threads, plot=False, patience=None)
    finetune(digits_model_dir, "digits", cfg, output=tmp_path / "ft", digits=[0, 1])


def test_demo_restores_threads_when_a_stage_fails(tmp_path: Path, untouched: Callable[[], None]) -> None:
    from toolkit.demo import DemoSettings, run_demo

    threads = 3 if torch.get_num_threads() != 3 else 1
    with pytest.raises(UnknownArchitectureError):
        run_demo(tmp_path / "demo", settings=DemoSettings(arch="no_such_arch", threads=threads))


def test_validation_old_head_leaves_the_rng_alone(untouched: Callable[[], None]) -> None:
    from toolkit.records import HeadSpec
    from validation.head import old_head

    spec = HeadSpec.identity("fc", "linear", 16, 7, bias=True)
    first, second = old_head(spec), old_head(spec)
    assert torch.equal(first.weight, second.weight)
