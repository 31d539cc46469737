"""Atomic writes: temp file in the same folder, fsync, ``os.replace``.

A reader sees either the previous artifact or the complete new one, never a half-written file,
even after SIGKILL or a full disk. ``write_with``/``write_text`` write one file, ``output_dir``
one folder, ``publish`` one file with its companions (external data, a sidecar, a script).

Every temp file, staging folder and set-aside previous output carries its owner in its name
(``.<output>.<pid>-<start>.<random>.tmp|.partial|.old``: the process id and its start time, so
a reused pid is not mistaken for the owner). The next write to the same output removes those
of owners that are gone (a run killed with SIGKILL cannot clean up after itself) and leaves
those of live runs alone; a ``.old`` of a dead run whose output is missing (killed between
the two renames of an overwrite) is put back first, so the previous artifact is never lost.

``REHEAD_FAULT_AT`` (tests only): the name of a point (``staged``, ``rename``, ``renamed``) at
which the process kills itself with SIGKILL, so that the reliability tests can stop a write
exactly there.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import signal
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from toolkit.errors import DiskFullError, InternalError, OutputExistsError, OutputNotWritableError


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


#: the errors of a write that ran out of room
ROOM_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})


def out_of_room(exc: BaseException) -> OSError | None:
    """The OSError behind ``exc`` (itself, its cause or its context) that says a write ran out
    of room, or None. Library writers (torch.save, safetensors) wrap the OS error in their own.

    Args:
        exc: the exception a write raised.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in ROOM_ERRNOS:
            return current
        current = current.__cause__ or current.__context__
    return None


def _at_size_limit(paths: list[Path]) -> bool:
    """Whether this process has a file-size limit (RLIMIT_FSIZE) and one of ``paths`` (files, or
    folders whose files count) reached it: some writers (safetensors) report that as their own
    error, without the OS error behind it."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return False
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit == resource.RLIM_INFINITY:
        return False
    for path in paths:
        files = path.rglob("*") if path.is_dir() else [path]
        for item in files:
            with contextlib.suppress(OSError):
                if item.is_file() and item.stat().st_size >= limit:
                    return True
    return False


def _room_error(exc: BaseException, out: Path, where: Path, written: list[Path] | None = None) -> DiskFullError | None:
    """A ``DiskFullError`` for a failed write of ``out`` when ``exc``, the state of the file
    system (no free blocks) or a file-size limit that ``written`` reached says it ran out of
    room, else None."""
    found = out_of_room(exc)
    if found is None:
        try:
            full = os.statvfs(where).f_bavail == 0
        except OSError:
            full = False
        if not full and not _at_size_limit(written or []):
            return None
    why = found.strerror if found is not None else "no space left on device"
    return DiskFullError(f"writing '{out}' failed: {why}; nothing was published, the previous content is intact")


def raise_if_out_of_room(exc: Exception, out: Path) -> None:
    """Raise ``DiskFullError`` (from ``exc``) when writing ``out`` or its staging files failed for
    lack of room; return otherwise (the caller re-raises ``exc``).

    Args:
        exc: the exception the write raised.
        out: the output that was being written.
    """
    if isinstance(exc, (DiskFullError, OutputExistsError, OutputNotWritableError)):
        return
    parent = out.parent if str(out.parent) else Path(".")
    try:
        mine = [parent / n for n in os.listdir(parent) if n.startswith(f".{out.name}.{owner_tag()}.")]
    except OSError:  # the folder is gone or unreadable: judge by the exception alone
        mine = []
    room = _room_error(exc, out, parent, mine)
    if room is not None:
        raise room from exc


_STALE = re.compile(r"^(?P<pid>\d+)-(?P<start>\d+)\.[^.]+\.(?P<kind>tmp|partial|old)$")


def _stat_fields(pid: int) -> list[str]:
    """``/proc/<pid>/stat`` after the command name (state first), or [] where there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    # the command name (field 2) is in parentheses and may hold spaces: split after it
    return stat[stat.rfind(")") + 2 :].split()


def _start_time(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux), or None."""
    fields = _stat_fields(pid)
    return int(fields[19]) if len(fields) > 19 else None


def owner_tag() -> str:
    """``<pid>-<start>``: this process, as the names of its temp files record it."""
    pid = os.getpid()
    return f"{pid}-{_start_time(pid) or 0}"


def alive(pid: int, start: int) -> bool:
    """Whether a process still runs (and is the same one: its start time matches).

    Args:
        pid: the process id.
        start: when it started, in clock ticks since boot (0: unknown, any live ``pid`` counts).
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    fields = _stat_fields(pid)
    if fields and fields[0] == "Z":  # killed, not yet reaped by its parent: it writes nothing more
        return False
    now = int(fields[19]) if len(fields) > 19 else None
    return now is None or start == 0 or now == start


def reap_stale(out: Path) -> list[Path]:
    """Remove the temp files, staging folders and set-aside outputs that dead runs left beside
    ``out``; put a dead run's ``.old`` back when ``out`` is missing. Returns what was removed.

    Args:
        out: the output whose leftovers are looked for.
    """
    parent = out.parent if str(out.parent) else Path(".")
    prefix = f".{out.name}."
    removed: list[Path] = []
    try:
        names = [n for n in os.listdir(parent) if n.startswith(prefix)]
    except OSError:
        return removed
    for name in sorted(names, key=lambda n: not n.endswith(".old")):  # restore before reaping
        match = _STALE.match(name[len(prefix) :])
        if match is None or alive(int(match["pid"]), int(match["start"])):
            continue
        path = parent / name
        if match["kind"] == "old" and not out.exists() and not out.is_symlink():
            with contextlib.suppress(OSError):
                os.rename(path, out)
                continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                path.unlink()
        removed.append(path)
    return removed


def fault(point: str) -> None:
    """Kill this process with SIGKILL if ``REHEAD_FAULT_AT`` names ``point`` (tests only).

    Args:
        point: the point's name (``staged``, ``rename``, ``renamed``).
    """
    if os.environ.get("REHEAD_FAULT_AT") == point:
        os.kill(os.getpid(), signal.SIGKILL)


def check_output(path: str | os.PathLike[str], *, overwrite: bool) -> Path:
    """Refuse an existing output unless ``overwrite``; check that its folder can be written.
    Dead runs' leftovers beside it are cleaned up first (``reap_stale``).

    Args:
        path: the output file or folder.
        overwrite: whether an existing output may be replaced.
    """
    out = Path(path)
    reap_stale(out)  # first: a dead run's set-aside previous output is put back before the check
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

    On any failure the temp file is removed and ``path`` keeps its previous content.

    Args:
        path: the file to write.
        writer: writes the file at the path it is given: any library call that writes a file by
            name (``torch.save``, ``onnx.save``).
        overwrite: replace an existing file (default True; False: ``OutputExistsError``).
    """
    out = check_output(path, overwrite=overwrite)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputNotWritableError(f"cannot create '{out.parent}': {exc.strerror}") from exc
    reap_stale(out)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.{owner_tag()}.", suffix=".tmp", dir=out.parent)
    except OSError as exc:
        raise OutputNotWritableError(f"cannot write into '{out.parent}': {exc.strerror}") from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        writer(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        fault("staged")
        if not overwrite and out.exists():
            raise OutputExistsError(f"output '{out}' appeared while it was being written")
        fault("rename")
        os.replace(tmp, out)
        fault("renamed")
        _fsync_dir(out.parent)
    except BaseException as exc:
        room = _room_error(exc, out, out.parent, [tmp]) if isinstance(exc, Exception) else None
        tmp.unlink(missing_ok=True)
        if room is not None:
            raise room from exc
        raise
    return out


def write_bytes(path: str | os.PathLike[str], data: bytes, *, overwrite: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically.

    Args:
        path: the file to write.
        data: its content.
        overwrite: replace an existing file (default True; False: ``OutputExistsError``).
    """
    def writer(tmp: Path) -> None:
        tmp.write_bytes(data)

    return write_with(path, writer, overwrite=overwrite)


def write_text(path: str | os.PathLike[str], text: str, *, overwrite: bool = True) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically.

    Args:
        path: the file to write.
        text: its content (written as UTF-8).
        overwrite: replace an existing file (default True; False: ``OutputExistsError``).
    """
    return write_bytes(path, text.encode("utf-8"), overwrite=overwrite)


def staging_dir(out: Path) -> Path:
    """A new hidden folder beside ``out`` (same file system, so a rename can publish from it).

    Args:
        out: the output the folder will be published as.
    """
    parent = out.parent if str(out.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        reap_stale(out)
        return Path(tempfile.mkdtemp(prefix=f".{out.name}.{owner_tag()}.", suffix=".partial", dir=parent))
    except OSError as exc:
        raise OutputNotWritableError(f"cannot write into '{parent}': {exc.strerror}") from exc


@contextlib.contextmanager
def output_dir(path: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Build a directory in a hidden sibling, then move it into place in one rename.

    Yields the staging folder. On success the staging folder replaces ``path``; on any error it
    is deleted and ``path`` is untouched. Two runs racing for the same new ``path``: the first
    rename wins, the second raises ``OutputExistsError`` and leaves the winner intact.

    Args:
        path: the folder to publish.
        overwrite: replace an existing folder (default False: ``OutputExistsError``).
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
        fault("staged")
        old: Path | None = None
        if out.exists():
            if not overwrite:
                raise OutputExistsError(f"output '{out}' appeared while it was being written")
            old = parent / f".{out.name}.{owner_tag()}.{uuid.uuid4().hex[:8]}.old"
            os.rename(out, old)
        fault("rename")
        try:
            os.rename(stage, out)
            fault("renamed")
        except OSError as exc:
            if old is not None:
                os.rename(old, out)
            raise OutputExistsError(f"output '{out}' was written by another run at the same time") from exc
        _fsync_dir(parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except Exception as exc:
        room = _room_error(exc, out, parent, [stage])
        if room is not None:
            raise room from exc
        raise
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)


@contextlib.contextmanager
def publish(path: str | os.PathLike[str], *, overwrite: bool = False, owned: Iterable[str] = ()) -> Iterator[Path]:
    """Stage an output file and its companions in a hidden folder, then publish them together.

    Yields a new hidden folder beside ``path`` (``staging_dir``). The caller writes the output
    there under ``path``'s own name, and each companion file (external data, a sidecar record,
    a script) under the name it is to have beside the output; sub-folders are scratch space and
    are never published. On a clean exit every file is fsynced, then, after one check that none
    of them would replace a file without ``overwrite``, the companions are moved into place
    first and the output last (``os.replace`` each, the folder fsynced), so that a reader who
    finds the new output finds its companions too. Any exception, in the block or while
    publishing, removes the staging folder; a companion already moved is taken back (the file
    it replaced put back), so nothing of this run is left and a previous artifact stays whole.
    Running out of room raises ``DiskFullError``.

    Args:
        path: the output file.
        overwrite: replace an existing output and existing files of its companions' names.
            Without it ``OutputExistsError`` is raised at once when ``path`` exists, and on
            exit, before anything moves, when any file to publish exists beside it (or another
            run published ``path`` meanwhile).
        owned: names of files beside ``path`` that belong to the output whatever run wrote
            them (a sidecar, the previous artifact's data files). The stage's file of such a
            name replaces it even without ``overwrite`` (``path`` is absent then, so it is a
            gone output's leftover); one the stage does not hold is removed once the new output
            is in place.
    """
    out = check_output(path, overwrite=overwrite)
    names = {_plain_name(name) for name in owned}
    stage = staging_dir(out)
    try:
        yield stage
        files = _staged_files(stage, out)
        for item in files:
            with open(item, "rb+") as handle:
                os.fsync(handle.fileno())
        _fsync_dir(stage)
        fault("staged")
        backup = Path(tempfile.mkdtemp(prefix=".previous.", dir=stage))
        _place_all(files, out, overwrite=overwrite, owned=names, backup=backup)
        parent = out.parent if str(out.parent) else Path(".")
        for name in names - {item.name for item in files}:  # the previous artifact's, not this one's
            (parent / name).unlink(missing_ok=True)
        _fsync_dir(parent)
    except Exception as exc:
        raise_if_out_of_room(exc, out)
        raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _plain_name(name: str) -> str:
    if not name or name in (".", "..") or os.sep in name or (os.altsep and os.altsep in name):
        raise InternalError(f"a companion of an output must be a plain file name, not '{name}'")
    return name


def _staged_files(stage: Path, out: Path) -> list[Path]:
    """The files ``publish`` moves: the stage's top-level regular files, the output's own last."""
    main = stage / out.name
    if not main.is_file() or main.is_symlink():
        raise InternalError(f"nothing was staged as '{out.name}' to publish")
    companions = sorted(p for p in stage.iterdir() if p.is_file() and not p.is_symlink() and p != main)
    return [*companions, main]


def _place_all(files: list[Path], out: Path, *, overwrite: bool, owned: set[str], backup: Path) -> None:
    """Move ``files`` (the output's own last) beside ``out``; on any failure take back what moved.

    A companion's previous file is hard-linked into ``backup`` first (when the file system
    allows it), so that taking the new one back can restore it."""
    parent = out.parent if str(out.parent) else Path(".")
    if not overwrite:
        taken = [parent / f.name for f in files if f.name not in owned and os.path.lexists(parent / f.name)]
        if taken:
            what = "appeared while it was being written" if taken[0] == out else "already exists"
            raise OutputExistsError(f"output '{taken[0]}' {what}", param="overwrite")
    moved: list[tuple[Path, Path | None]] = []
    try:
        for item in files[:-1]:
            target, keep = parent / item.name, backup / item.name
            previous: Path | None = keep
            try:
                os.link(target, keep)
            except OSError:  # no previous file, or no hard links here
                previous = None
            os.replace(item, target)
            moved.append((target, previous))
        fault("rename")
        _place_main(files[-1], out, overwrite=overwrite)
        fault("renamed")
    except BaseException:
        for target, previous in reversed(moved):
            with contextlib.suppress(OSError):
                if previous is not None:
                    os.replace(previous, target)
                else:
                    target.unlink()
        raise


def _place_main(staged: Path, out: Path, *, overwrite: bool) -> None:
    """Move the output into place; without ``overwrite`` by a hard link, which, unlike a
    rename, refuses a file that another run put there since the check."""
    if not overwrite:
        try:
            os.link(staged, out)
            return
        except FileExistsError as exc:
            raise OutputExistsError(f"output '{out}' was written by another run at the same time") from exc
        except OSError:  # no hard links on this file system: the rename below (checked just before)
            pass
    os.replace(staged, out)
