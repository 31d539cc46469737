"""pytest plugin for rehead parity checks (registered as the ``rehead`` pytest11 entry point).

Fixtures:

- ``rehead_assert_parity``: ``assert_parity(model_dir, artifact, **options)``; raises
  ``AssertionError`` naming every failing output and class slice.
- ``rehead_device``: the device from ``--rehead-device`` (default ``cpu``); ``cuda`` skips the
  test when no GPU is present.

Example::

    def test_export_matches(rehead_assert_parity, tmp_path):
        rehead_assert_parity("models/mine", "exports/mine.onnx", data="digits", batch_sizes=(1, 8))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--rehead-device`` (``cpu`` or ``cuda``), the device of the parity fixtures.

    Args:
        parser: pytest's option parser.
    """
    group = parser.getgroup("rehead", "rehead parity checks")
    group.addoption(
        "--rehead-device", default="cpu", choices=("cpu", "cuda"),
        help="device for rehead parity fixtures (default cpu)",
    )


@pytest.fixture
def rehead_device(request: pytest.FixtureRequest) -> str:
    """``cpu`` or ``cuda`` (from ``--rehead-device``); skips when CUDA is asked for but absent.

    Args:
        request: pytest's fixture request (its config holds the option).
    """
    device = str(request.config.getoption("--rehead-device"))
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            pytest.skip("--rehead-device cuda asked for, but no CUDA GPU is available")
    return device


@pytest.fixture
def rehead_assert_parity(rehead_device: str) -> Callable[..., Any]:
    """``assert_parity`` with ``device`` defaulting to ``rehead_device``.

    Args:
        rehead_device: the ``rehead_device`` fixture.
    """
    from validation.assertions import assert_parity

    def check(model_dir: Any, artifact: Any, **options: Any) -> Any:
        __tracebackhide__ = True
        options.setdefault("device", rehead_device)
        return assert_parity(model_dir, artifact, **options)

    return check
