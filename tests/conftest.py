"""Shared fixtures and the central GPU skip (torchvision's ``cpu_and_cuda()`` pattern)."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hypothesis import settings

torch.set_num_threads(int(os.environ.get("REHEAD_TEST_THREADS", "2")))

# Random inputs (hypothesis), two ways. The default run draws them deterministically, so that CI
# on a fresh clone passes or fails on the code, never on luck; an input that once failed is kept
# in its test as an explicit ``@example``. The slow job (``REHEAD_FUZZ=explore``, .ci/slow) draws
# at random and three times as many (ten times ran the slow job out of memory: the fuzz tests call
# the CLI in-process, and memory grew to 24 GB over a few hundred calls). Tests size their runs
# from ``settings.default.max_examples``.
FUZZ_PROFILE = os.environ.get("REHEAD_FUZZ", "ci")
settings.register_profile("ci", derandomize=True, database=None, deadline=None, max_examples=40, print_blob=True)
settings.register_profile("explore", derandomize=False, deadline=None, max_examples=120, print_blob=True)
if FUZZ_PROFILE not in ("ci", "explore"):
    raise pytest.UsageError(f"REHEAD_FUZZ={FUZZ_PROFILE!r}: expected 'ci' (the default) or 'explore'")
settings.load_profile(FUZZ_PROFILE)


def pytest_configure(config: pytest.Config) -> None:
    _compile_caches_for_this_session()
    # tests/converters shares its name with the package. The tests import the installed package;
    # only when the current folder is tests/ and on sys.path (``python -m pytest`` run there) does
    # that folder shadow it, as a namespace package. Say so instead of failing obscurely later.
    spec = importlib.util.find_spec("converters")
    if spec is None or spec.origin is None:
        raise pytest.UsageError(
            "'import converters' finds the tests/converters folder, not rehead's package: run pytest "
            "from the repository root, or the 'pytest' command instead of 'python -m pytest' inside tests/"
        )


#: AOTInductor's and Triton's compile caches for this session (see ``pytest_configure``)
_COMPILE_CACHES: list[Path] = []


def _compile_caches_for_this_session() -> None:
    """AOTInductor's and Triton's caches go into a folder of this session, removed when it ends,
    instead of staying in /tmp for good; a cache the caller set is kept. Set before collection, so
    that the environments test modules copy at import (for their subprocesses) carry it too."""
    import tempfile

    if "TORCHINDUCTOR_CACHE_DIR" in os.environ:
        return
    folder = Path(tempfile.mkdtemp(prefix="rehead-test-compile-cache-"))
    _COMPILE_CACHES.append(folder)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder / "torchinductor")
    os.environ.setdefault("TRITON_CACHE_DIR", str(folder / "triton"))


def pytest_unconfigure(config: pytest.Config) -> None:
    import shutil

    for folder in _COMPILE_CACHES:
        shutil.rmtree(folder, ignore_errors=True)


def cuda_available() -> bool:
    return torch.cuda.is_available()


#: ``REHEAD_REQUIRE_GPU=1`` (a GPU host's run): a gpu-marked test that skips, for any reason (no CUDA,
#: TensorRT missing or failing to load, its own skip), fails instead, so that a GPU job cannot pass
#: on skips. On a CPU host it makes every gpu test fail (tests/converters/tensorrt/test_require_gpu.py).
REQUIRE_GPU = os.environ.get("REHEAD_REQUIRE_GPU", "") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_GPU and report.skipped and "gpu" in item.keywords:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"REHEAD_REQUIRE_GPU=1, and this gpu test skipped: {reason}"


def _mark_exploration_slow(items: list[pytest.Item]) -> None:
    """In the slow job's exploration every hypothesis test is part of the slow run."""
    if FUZZ_PROFILE != "explore":
        return
    for item in items:
        if getattr(getattr(item, "obj", None), "is_hypothesis_test", False):
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(tryfirst=True)  # before '-m' deselects: the slow marker added here decides where a test runs
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _mark_exploration_slow(items)
    if cuda_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (none on this machine); run on a GPU host with -m gpu")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def cpu_and_cuda() -> tuple[object, ...]:
    """Parametrise a test over devices; the CUDA case carries the ``gpu`` marker."""
    return ("cpu", pytest.param("cuda", marks=pytest.mark.gpu))


DIGITS = tuple(str(d) for d in range(10))


@pytest.fixture(scope="session")
def make_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Factory for small model directories, cached per argument set for the session.

    ``make_model_dir(arch="resnet18", strategy="pad-random", old=7, new=10, size=32)`` builds
    ``arch`` with an ``old``-class head (digit names), extends it to ``new`` classes and saves it.
    """
    from toolkit.extension import extend
    from toolkit.records import Preprocessing

    cache: dict[tuple[object, ...], Path] = {}

    def factory(
        arch: str = "resnet18",
        strategy: str = "pad-random",
        old: int = 7,
        new: int = 10,
        size: int = 32,
        seed: int = 0,
        root: Path | None = None,
    ) -> Path:
        key = (arch, strategy, old, new, size, seed)
        if root is not None or key not in cache:
            # ``root`` (a test's tmp_path): built there, not cached, so that a large model leaves with
            # its test (the slow job exports every builder: ~0.6 GB each, kept to the end otherwise)
            folder = root if root is not None else tmp_path_factory.mktemp(f"{arch}-{strategy}")
            torch.manual_seed(seed)
            prep = Preprocessing(input_size=(size, size))
            base = extend(
                strategy="replace", arch=arch, num_classes=old, class_names=DIGITS[:old] if old <= 10 else None,
                preprocessing=prep, seed=seed, output=folder / "base", random_init=True,
            )
            names = list(DIGITS[:new]) if new <= 10 else None
            out = extend(
                strategy=strategy, model_dir=base.path, num_classes=new, class_names=names,
                seed=seed, output=folder / "model",
            )
            assert out.path is not None
            if root is not None:
                return out.path
            cache[key] = out.path
        return cache[key]

    return factory


@pytest.fixture(scope="session")
def digits_model_dir(make_model_dir: Callable[..., Path]) -> Path:
    """resnet18 at 32x32, a 7-digit head padded (random rows) to all 10 digits."""
    return make_model_dir()


@pytest.fixture(scope="session")
def onnx_fp32(digits_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``digits_model_dir`` exported to fp32 ONNX (shared by the validation and deploy tests)."""
    from converters import export_onnx

    out = tmp_path_factory.mktemp("onnx") / "model.onnx"
    export_onnx(digits_model_dir, out, progress=False)
    return out
