"""External data beside an ``.onnx`` file: safe names when written, refused when unsafe on load.

Models over 2 GiB cannot be one protobuf, so their weights go to one data file beside the model.
A location is an attacker-controlled string inside the model: on load it must be a plain file
name in the model's own folder (no path separator, no ``..``, not absolute, not a symlink).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING

from toolkit.errors import ArtifactError, InternalError

if TYPE_CHECKING:
    import onnx

TWO_GIB = 2 * 1024**3
# Headroom under the protobuf limit for the graph itself and the metadata.
EXTERNAL_THRESHOLD = TWO_GIB - 64 * 1024**2


def check_location_name(location: str, *, model: str = "model") -> str:
    """Return ``location`` if it is a plain file name; raise ``ArtifactError`` otherwise.

    Args:
        location: an external-data location, as the model records it.
        model: how messages name the model (default ``model``).
    """
    hint = "re-export the model with rehead; external data must sit beside the .onnx file under a plain name"
    if not location or location in (".", ".."):
        raise ArtifactError(f"{model}: external-data location '{location}' is not a file name", hint=hint)
    if (
        PurePosixPath(location).is_absolute()
        or PureWindowsPath(location).is_absolute()
        or PureWindowsPath(location).drive
    ):
        raise ArtifactError(f"{model}: external-data location '{location}' is an absolute path", hint=hint)
    if "/" in location or "\\" in location:
        raise ArtifactError(f"{model}: external-data location '{location}' contains a path separator", hint=hint)
    if "\x00" in location:
        raise ArtifactError(f"{model}: external-data location contains a NUL byte", hint=hint)
    return location


def external_locations(path: str | os.PathLike[str]) -> list[str]:
    """The distinct external-data locations an ``.onnx`` file refers to (weights not loaded).

    Args:
        path: the ``.onnx`` file.
    """
    import onnx

    from converters.onnx import graph

    try:
        model = onnx.load(os.fspath(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, OSError, ValueError...: all mean unreadable
        raise ArtifactError(f"cannot read ONNX model '{path}': {type(exc).__name__}: {exc}") from exc
    found: list[str] = []
    for tensor in graph.tensors(model):
        location = graph.external_location(tensor)
        if location is not None and location not in found:
            found.append(location)
    return found


def check_external_data(path: str | os.PathLike[str]) -> list[Path]:
    """Check every external-data location of the model at ``path``; return the data files.

    Refuses (``ArtifactError``) a location that is empty, absolute, holds a path separator or
    ``..``, names a symlink, resolves outside the model's folder, or does not exist.

    Args:
        path: the ``.onnx`` file.
    """
    model_path = Path(path)
    if not model_path.is_file():
        raise ArtifactError(f"ONNX model '{model_path}' does not exist", hint="check the path")
    folder = model_path.resolve().parent
    files: list[Path] = []
    for location in external_locations(model_path):
        check_location_name(location, model=str(model_path))
        target = folder / location
        if target.is_symlink():
            raise ArtifactError(
                f"{model_path}: external-data file '{location}' is a symlink",
                hint="copy the real data file beside the model instead of linking it",
            )
        if not target.is_file():
            raise ArtifactError(
                f"{model_path}: external-data file '{location}' is missing",
                hint="copy the data file beside the .onnx file (they travel together)",
            )
        if target.resolve().parent != folder:
            raise ArtifactError(f"{model_path}: external-data file '{location}' resolves outside the model's folder")
        files.append(target)
    return files


def new_location(model_name: str) -> str:
    """A fresh data-file name for ``model_name``: ``<name>.<pid>-<start>.<token>.data``.

    A new name per export means the previous artifact's data file is never overwritten: the
    ``.onnx`` file is swapped in one rename and the old data file removed afterwards. The name
    records the writing process (``toolkit._atomic.owner_tag``), so that the data file of a run
    killed between the two moves can be told from a live run's (``orphan_data_files``).

    Args:
        model_name: the model's file name (``Path.name``: no path separator).
    """
    from toolkit._atomic import owner_tag

    name = f"{model_name}.{owner_tag()}.{secrets.token_hex(4)}.data"
    if os.sep in name or (os.altsep and os.altsep in name):
        # callers pass Path.name, which never holds a separator
        raise InternalError(f"model file name '{model_name}' must not contain a path separator")
    return check_location_name(name)


def save_onnx(model: onnx.ModelProto, path: str | os.PathLike[str], location: str | None) -> None:
    """Save a model; with ``location``, every weight over 1 KiB goes to that one data file.

    Args:
        model: the model to save.
        path: the ``.onnx`` file to write.
        location: the data file's name beside ``path`` (a plain name), or None: all in one file.
    """
    import onnx

    if location is None:
        onnx.save_model(model, os.fspath(path))
        return
    onnx.save_model(
        model,
        os.fspath(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=check_location_name(location),
        size_threshold=1024,
    )


#: op domains ONNX Runtime implements itself; any other domain is code from somewhere else
RUNTIME_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "com.microsoft"})
#: the largest element count a graph input may declare (2^31: 8 GiB of float32 per sample set)
MAX_INPUT_ELEMENTS = 2**31


def check_before_loading(path: str | os.PathLike[str]) -> None:
    """Refuse (``ArtifactError``) an ONNX file before any runtime sees it: unsafe external data
    (``check_external_data``), an op of a domain ONNX Runtime does not implement itself (a
    custom op is native code from elsewhere), or a graph input declaring absurd dimensions.

    Args:
        path: the ``.onnx`` file.
    """
    import onnx

    from converters.onnx import graph

    check_external_data(path)
    model = onnx.load(os.fspath(path), load_external_data=False)
    local = graph.local_functions(model)
    for node in graph.nodes(model):
        if node.domain not in RUNTIME_DOMAINS and (node.domain, node.op_type) not in local:
            raise ArtifactError(
                f"{path}: node '{node.name or node.op_type}' is op '{node.domain}::{node.op_type}' of a custom domain",
                hint="rehead runs only standard ONNX (and ONNX Runtime's own) ops: export the model with rehead",
            )
    for value in model.graph.input:
        dims = value.type.tensor_type.shape.dim
        count = 1
        for dim in dims:
            if dim.HasField("dim_value"):
                if dim.dim_value < 0:
                    raise ArtifactError(f"{path}: input '{value.name}' declares a negative dimension {dim.dim_value}")
                count *= max(1, dim.dim_value)
        if count > MAX_INPUT_ELEMENTS:
            shape = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in dims]
            raise ArtifactError(
                f"{path}: input '{value.name}' declares {shape}, over {MAX_INPUT_ELEMENTS} elements per call",
                hint="this is not an image classifier's input: export the model with rehead",
            )


def orphan_data_files(out: Path) -> list[Path]:
    """Data files named for an ``.onnx`` (``new_location``) that it does not use and whose writer is
    gone: what a run killed after moving its data file in, before its ``.onnx``, leaves behind. A
    live run's data file is never one of them.

    Args:
        out: the ``.onnx`` path the data files are named for (it need not exist).
    """
    import re

    from toolkit._atomic import alive

    pattern = re.compile(re.escape(out.name) + r"\.(\d+)-(\d+)\.[0-9a-f]+\.data$")
    used: set[str] = set()
    if out.is_file():
        try:
            used = set(external_locations(out))
        except ArtifactError:
            return []  # an unreadable model: touch nothing beside it
    found = []
    for path in out.parent.iterdir() if out.parent.is_dir() else ():
        match = pattern.fullmatch(path.name)
        if match and path.name not in used and not alive(int(match[1]), int(match[2])):
            found.append(path)
    return found
