"""Move a finished ONNX model (and its external data) from the staging folder into place."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path

from converters.onnx.external import check_location_name, external_locations, orphan_data_files
from converters.onnx.metadata import PREFIX
from toolkit import _atomic
from toolkit.errors import ArtifactError


def stamp_metadata(path: Path, props: Mapping[str, str]) -> None:
    """Replace the ``rehead.*`` metadata of the model at ``path`` (weights and external data untouched)."""
    import onnx

    model = onnx.load(os.fspath(path), load_external_data=False)
    kept = [(p.key, p.value) for p in model.metadata_props if not p.key.startswith(PREFIX)]
    del model.metadata_props[:]
    for key, value in [*kept, *props.items()]:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save_model(model, os.fspath(path))


def place(staged: Path, out: Path, location: str | None, *, overwrite: bool) -> list[str]:
    """Move ``staged`` (and its data file ``location``) to ``out``; return the data files written.

    The data file has a fresh name, so it never replaces the previous artifact's data; the
    ``.onnx`` file is swapped in one atomic rename (``toolkit._atomic.write_with``); only then are
    the previous artifact's data files removed.
    """
    previous: list[str] = []
    if out.exists():
        with contextlib.suppress(ArtifactError):
            previous = [check_location_name(n) for n in external_locations(out)]
    moved: Path | None = None
    if location is not None:
        moved = out.parent / location
        os.replace(staged.parent / location, moved)
    try:
        _atomic.write_with(out, lambda tmp: os.replace(staged, tmp), overwrite=overwrite)
    except BaseException:
        if moved is not None:
            moved.unlink(missing_ok=True)
        raise
    for name in previous:
        if name != location:
            (out.parent / name).unlink(missing_ok=True)
    for orphan in orphan_data_files(out):  # data files of runs killed before their .onnx was in place
        orphan.unlink(missing_ok=True)
    return [location] if location is not None else []
