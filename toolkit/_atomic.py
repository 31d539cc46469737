"""Atomic writes: temp file in the same folder, fsync, ``os.replace``.

A reader sees either the previous artifact or the complete new one, never a half-written file,
even after SIGKILL or a full disk.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from toolkit.errors import OutputExistsError, OutputNotWritableError


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def check_output(path: str | os.PathLike[str], *, overwrite: bool) -> Path:
    """Refuse an existing output unless ``overwrite``; check that its folder can be written."""
    out = Path(path)
    if out.exists() and not overwrite:
        raise OutputExistsError(f"output '{out}' already exists", param="overwrite")
    parent = out.parent if str(out.parent) else Path(".")
    if parent.exists() and not os.access(parent, os.W_OK):
        raise OutputNotWritableError(f"cannot write into '{parent}'", hint="choose a writable output folder")
    return out


def write_with(
    path: str | os.PathLike[str], writer: Callable[[Path], None], *, overwrite: bool = True
) -> Path:
    """Call ``writer(tmp_path)`` then move the finished file over ``path`` atomically.

    ``writer`` may be any library call that writes a file by name (``torch.save``, ``onnx.save``).
    On any failure the temp file is removed and ``path`` keeps its previous content.
    """
    out = check_output(path, overwrite=overwrite)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputNotWritableError(f"cannot create '{out.parent}': {exc.strerror}") from exc
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        writer(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        if not overwrite and out.exists():
            raise OutputExistsError(f"output '{out}' appeared while it was being written")
        os.replace(tmp, out)
        _fsync_dir(out.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


def write_bytes(path: str | os.PathLike[str], data: bytes, *, overwrite: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically."""
    def writer(tmp: Path) -> None:
        tmp.write_bytes(data)

    return write_with(path, writer, overwrite=overwrite)


def write_text(path: str | os.PathLike[str], text: str, *, overwrite: bool = True) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return write_bytes(path, text.encode("utf-8"), overwrite=overwrite)


def staging_dir(out: Path) -> Path:
    """A new hidden folder beside ``out`` (same file system, so a rename can publish from it)."""
    parent = out.parent if str(out.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=parent))
    except OSError as exc:
        raise OutputNotWritableError(f"cannot write into '{parent}': {exc.strerror}") from exc


@contextlib.contextmanager
def output_dir(path: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Build a directory in a hidden sibling, then move it into place in one rename.

    Yields the staging folder. On success the staging folder replaces ``path``; on any error it
    is deleted and ``path`` is untouched. Two runs racing for the same new ``path``: the first
    rename wins, the second raises ``OutputExistsError`` and leaves the winner intact.
    """
    out = check_output(path, overwrite=overwrite)
    parent = out.parent if str(out.parent) else Path(".")
    stage = staging_dir(out)
    try:
        yield stage
        for item in stage.rglob("*"):
            if item.is_file():
                with open(item, "rb+") as handle:
                    os.fsync(handle.fileno())
        _fsync_dir(stage)
        old: Path | None = None
        if out.exists():
            if not overwrite:
                raise OutputExistsError(f"output '{out}' appeared while it was being written")
            old = parent / f".{out.name}.{uuid.uuid4().hex[:8]}.old"
            os.rename(out, old)
        try:
            os.rename(stage, out)
        except OSError as exc:
            if old is not None:
                os.rename(old, out)
            raise OutputExistsError(f"output '{out}' was written by another run at the same time") from exc
        _fsync_dir(parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
