"""A ``.pt2`` AOTInductor package as an artifact: its runner, precision and record (``converters.artifact``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def open_runner(path: Path, *, device: str, threads: int | None, prep: Any = None, **_: Any) -> Any:
    """The AOTInductor runner (the package's own device; ``threads`` is not a knob it has).

    Args:
        path: the ``.pt2`` package.
        device: ``cpu`` or ``cuda[:N]``, of the kind the package was compiled for.
        threads: ignored.
        prep: ignored (a package takes float NCHW images).
        **_: other formats' options, ignored.
    """
    from converters.pt2.runner import Pt2Runner

    return Pt2Runner(path, device=device)


def companions(path: Path) -> list[tuple[Path, str]]:
    """None: a package is one file.

    Args:
        path: the ``.pt2`` package.
    """
    return []


def recorded_model(path: Path) -> dict[str, Any] | None:
    """rehead's metadata in the package.

    Args:
        path: the ``.pt2`` package.
    """
    from converters.pt2.export import read_pt2_metadata

    data = read_pt2_metadata(path)
    return dict(data) if isinstance(data, dict) else None


def precision(path: Path) -> str:
    """``fp32``: rehead packages the fp32 model.

    Args:
        path: the ``.pt2`` package.
    """
    return "fp32"
