"""Verifying a bundle: every file against the manifest, before anything in it runs.

``verify`` checks a bundle directory or archive against its manifest: schema, every file's size
and sha256 (reading at most the declared size + 1 bytes), no path leaving the bundle, no symlink,
nothing extra or missing; archive members are checked before anything is extracted.
``open_bundle`` verifies and, for an archive, extracts it safely into a temporary directory;
``manifest_digest`` gives the manifest's sha256, which pins it (``verify(manifest_sha256=...)``).
Every refusal is a ``BundleMismatchError`` (exit 1) naming the file.

Running a bundle needs this module and ``manifest``, never ``validation``. (The module is named
``verification``, not ``verify``: a submodule ``verify`` would replace the function
``toolkit.deploy.verify`` as an attribute of the package once imported.)
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from toolkit._text import listing
from toolkit.deploy.manifest import (
    LABELS_FILE,
    MANIFEST_FILE,
    MAX_MANIFEST_BYTES,
    BundleFile,
    Manifest,
    check_manifest,
    check_name,
    mismatch,
)
from toolkit.errors import InvalidArgumentError
from toolkit.models.model_dir import CONFIG_FILE, sha256_file
from toolkit.records import ModelConfig

# --- hashing -------------------------------------------------------------------------------------------


def _hash_bounded(handle: Any, declared: int, name: str, *, chunk: int = 1 << 20) -> str:
    """sha256 of what ``handle`` holds, reading at most ``declared`` + 1 bytes: a file larger than
    its manifest says is refused without being read to its end."""
    digest = hashlib.sha256()
    left = declared + 1
    seen = 0
    while left > 0:
        block = handle.read(min(chunk, left))
        if not block:
            break
        digest.update(block)
        seen += len(block)
        left -= len(block)
    if seen != declared:
        more = f"more than {declared}" if seen > declared else str(seen)
        raise mismatch(name, f"has {more} bytes, the manifest says {declared}")
    return digest.hexdigest()


def _check_entry(entry: BundleFile, digest: str) -> None:
    if digest != entry.sha256:
        raise mismatch(
            entry.name,
            f"does not match the manifest: sha256 {digest[:12]}…, expected {entry.sha256[:12]}… "
            "(it was changed after packaging)",
        )


# --- verify --------------------------------------------------------------------------------------------


def _read_manifest_bytes(data: bytes, pinned: str | None = None) -> Manifest:
    if pinned is not None and hashlib.sha256(data).hexdigest() != pinned.lower():
        raise mismatch(
            MANIFEST_FILE,
            f"is not the pinned manifest: sha256 {hashlib.sha256(data).hexdigest()[:12]}…, expected {pinned[:12]}…",
            hint="the bundle was changed or replaced after its manifest digest was recorded; do not run it",
        )
    try:
        parsed = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise mismatch(MANIFEST_FILE, f"is not valid JSON: {exc}") from exc
    manifest = Manifest.from_json(parsed)
    check_manifest(manifest)
    return manifest


def _check_contents(root: Path, manifest: Manifest) -> None:
    """labels.txt and config.json say what the manifest says (both already hash-checked)."""
    labels = (root / LABELS_FILE).read_text(encoding="utf-8").splitlines()
    if tuple(labels) != manifest.class_names:
        raise mismatch(LABELS_FILE, "does not list the manifest's class names in output order")
    try:
        config = ModelConfig.from_json(json.loads((root / CONFIG_FILE).read_text(encoding="utf-8")))
    except Exception as exc:  # any parse failure means the same thing here
        raise mismatch(CONFIG_FILE, f"is not a model record: {exc}") from exc
    if config.class_names != manifest.class_names:
        raise mismatch(CONFIG_FILE, "names other classes than the manifest")


def _verify_dir(root: Path, pinned: str | None = None) -> Manifest:
    if root.is_symlink():
        raise mismatch(str(root), "is a symlink", hint="verify the bundle itself, not a link to it")
    manifest_path = root / MANIFEST_FILE
    if manifest_path.is_symlink() or not manifest_path.is_file():
        what = "is a symlink" if manifest_path.is_symlink() else "is missing"
        raise mismatch(MANIFEST_FILE, what, hint="a bundle directory holds manifest.json; create one with package")
    with open(manifest_path, "rb") as handle:
        data = handle.read(MAX_MANIFEST_BYTES + 1)
    if len(data) > MAX_MANIFEST_BYTES:
        raise mismatch(MANIFEST_FILE, f"is over {MAX_MANIFEST_BYTES} bytes: not a bundle manifest")
    manifest = _read_manifest_bytes(data, pinned)
    listed = {f.name: f for f in manifest.files}
    present: set[str] = set()
    for folder, dirs, files in os.walk(root, followlinks=False):
        here = Path(folder)
        for name in sorted(dirs + files):
            path = here / name
            rel = path.relative_to(root).as_posix()
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                raise mismatch(rel, "is a symlink", hint="a bundle holds regular files only; do not run it")
            if stat.S_ISDIR(info.st_mode):
                if not any(n.startswith(rel + "/") for n in listed):
                    raise mismatch(rel, "is an extra directory the manifest does not list")
                continue
            if not stat.S_ISREG(info.st_mode):
                raise mismatch(rel, "is not a regular file")
            if rel != MANIFEST_FILE:
                present.add(rel)
    _check_listing(set(listed), present)
    for entry in manifest.files:
        path = root / entry.name
        size = path.lstat().st_size
        if size != entry.size:
            raise mismatch(entry.name, f"has {size} bytes, the manifest says {entry.size}")
        with open(path, "rb") as handle:
            _check_entry(entry, _hash_bounded(handle, entry.size, entry.name))
    _check_contents(root, manifest)
    return manifest


def _check_listing(listed: set[str], present: set[str]) -> None:
    missing, extra = sorted(listed - present), sorted(present - listed)
    if missing and extra:
        raise mismatch(
            missing[0],
            f"is missing and '{extra[0]}' is not in the manifest (renamed?)"
            + (f"; {len(missing) + len(extra) - 2} more differences" if len(missing) + len(extra) > 2 else ""),
        )
    if missing:
        raise mismatch(missing[0], "is missing" + (f" (and {listing(missing[1:])})" if len(missing) > 1 else ""))
    if extra:
        raise mismatch(extra[0], "is not in the manifest" + (f" (and {listing(extra[1:])})" if len(extra) > 1 else ""))


# --- archives ------------------------------------------------------------------------------------------


def archive_kind(path: Path) -> str | None:
    """``tar`` or ``zip`` when ``path`` is such an archive (by content), else None.

    Args:
        path: any path; a directory or a missing file is None.
    """
    if not path.is_file():
        return None
    if zipfile.is_zipfile(path):
        return "zip"
    try:
        return "tar" if tarfile.is_tarfile(path) else None
    except OSError:
        return None


@dataclasses.dataclass(frozen=True)
class _Member:
    name: str
    size: int
    is_dir: bool
    handle: Any


def _members(archive: Any, kind: str) -> list[_Member]:
    """Every member, refused before anything is read or extracted when its name leaves the bundle
    or it is a link, device or other non-regular entry."""
    found: list[_Member] = []
    if kind == "tar":
        for info in archive.getmembers():
            name = info.name.rstrip("/") if info.isdir() else info.name
            if name.startswith("./"):
                name = name[2:]
            if info.issym() or info.islnk():
                raise mismatch(info.name, f"is a {'symlink' if info.issym() else 'hard link'} member of the archive",
                               hint="a bundle archive holds regular files only; do not extract it")
            if name != MANIFEST_FILE:
                check_name(name)
            if not (info.isfile() or info.isdir()):
                raise mismatch(info.name, "is not a regular file in the archive")
            found.append(_Member(name, info.size, info.isdir(), info))
    else:
        for zinfo in archive.infolist():
            name = zinfo.filename.rstrip("/") if zinfo.is_dir() else zinfo.filename
            mode = (zinfo.external_attr >> 16) & 0xFFFF
            if stat.S_ISLNK(mode):
                raise mismatch(zinfo.filename, "is a symlink member of the archive",
                               hint="a bundle archive holds regular files only; do not extract it")
            if name != MANIFEST_FILE:
                check_name(name)
            found.append(_Member(name, zinfo.file_size, zinfo.is_dir(), zinfo))
    return found


@contextlib.contextmanager
def _open_archive(path: Path, kind: str) -> Iterator[Any]:
    try:
        handle: Any = tarfile.open(path, "r:*") if kind == "tar" else zipfile.ZipFile(path)  # noqa: SIM115  closed below
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as exc:
        raise mismatch(path.name, f"is not a readable {kind} archive: {exc}") from exc
    with handle:
        yield handle


def _member_stream(archive: Any, kind: str, member: _Member) -> Any:
    stream = archive.extractfile(member.handle) if kind == "tar" else archive.open(member.handle)
    if stream is None:
        raise mismatch(member.name, "cannot be read from the archive")
    return stream


def _verify_archive(path: Path, kind: str, extract_to: Path | None, pinned: str | None = None) -> Manifest:
    """Check every member against the manifest (names, links, sizes, hashes), then extract the
    listed files into ``extract_to`` when given: nothing is written before all checks passed."""
    with _open_archive(path, kind) as archive:
        members = _members(archive, kind)
        files = [m for m in members if not m.is_dir]
        names = [m.name for m in files]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise mismatch(dupes[0], "appears twice in the archive")
        by_name = {m.name: m for m in files}
        top = by_name.get(MANIFEST_FILE)
        if top is None:
            raise mismatch(MANIFEST_FILE, f"is missing from the archive '{path.name}'")
        if top.size > MAX_MANIFEST_BYTES:
            raise mismatch(MANIFEST_FILE, f"is over {MAX_MANIFEST_BYTES} bytes: not a bundle manifest")
        with _member_stream(archive, kind, top) as stream:
            manifest = _read_manifest_bytes(stream.read(MAX_MANIFEST_BYTES + 1), pinned)
        listed = {f.name: f for f in manifest.files}
        _check_listing(set(listed), set(by_name) - {MANIFEST_FILE})
        for m in members:
            if m.is_dir and not any(n.startswith(m.name + "/") for n in listed):
                raise mismatch(m.name, "is an extra directory the manifest does not list")
        for entry in manifest.files:
            member = by_name[entry.name]
            if member.size != entry.size:
                raise mismatch(entry.name, f"has {member.size} bytes, the manifest says {entry.size}")
            with _member_stream(archive, kind, member) as stream:
                _check_entry(entry, _hash_bounded(stream, entry.size, entry.name))
        if extract_to is not None:
            (extract_to / MANIFEST_FILE).write_bytes(_read_member(archive, kind, top, MAX_MANIFEST_BYTES))
            for entry in manifest.files:
                target = extract_to / entry.name
                target.parent.mkdir(parents=True, exist_ok=True)
                with _member_stream(archive, kind, by_name[entry.name]) as src, open(target, "xb") as dst:
                    shutil.copyfileobj(src, dst)
    if extract_to is not None:
        # the extracted copy is what runs: check it as a directory too (hashes, contents)
        return _verify_dir(extract_to, pinned)
    with tempfile.TemporaryDirectory(prefix="rehead-bundle-") as tmp:
        scratch = Path(tmp)
        with _open_archive(path, kind) as archive:
            for name in (LABELS_FILE, CONFIG_FILE):
                member = next(m for m in files if m.name == name)
                (scratch / name).write_bytes(_read_member(archive, kind, member, listed[name].size))
        _check_contents(scratch, manifest)
    return manifest


def _read_member(archive: Any, kind: str, member: _Member, limit: int) -> bytes:
    with _member_stream(archive, kind, member) as stream:
        return bytes(stream.read(limit + 1))


def verify(path: str | os.PathLike[str], *, manifest_sha256: str | None = None) -> Manifest:
    """Check a bundle directory or archive against its manifest; returns the manifest.

    Raises ``BundleMismatchError`` (exit 1) naming the file at fault: a changed, missing, extra or
    renamed file, a size the manifest does not declare, a symlink or link member, a name that
    leaves the bundle (``..``, absolute), a manifest that is not of schema ``rehead.bundle/1``.
    Archives are checked member by member without extracting anything.

    The manifest is the root of trust: ``manifest_sha256`` (the digest ``manifest_digest``
    returns, recorded where the bundle was made) pins it, so that a bundle whose manifest was
    rewritten to match changed files is refused too.

    Args:
        path: the bundle directory or ``.tar``/``.zip`` archive.
        manifest_sha256: the manifest's pinned sha256 (64 hex digits), or None to trust the
            manifest the bundle holds.
    """
    pinned = _check_pin(manifest_sha256)
    bundle = Path(path)
    if bundle.is_dir() and not bundle.is_symlink():
        return _verify_dir(bundle, pinned)
    kind = archive_kind(bundle)
    if kind is None:
        if not bundle.exists() and not bundle.is_symlink():
            raise InvalidArgumentError(
                f"bundle '{bundle}' does not exist", hint="give a bundle directory or .tar/.zip archive", param="path"
            )
        raise mismatch(str(bundle), "is neither a bundle directory nor a tar or zip archive")
    return _verify_archive(bundle, kind, None, pinned)


def _check_pin(digest: str | None) -> str | None:
    if digest is None:
        return None
    text = str(digest).strip().lower()
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise InvalidArgumentError(
            f"manifest_sha256 {digest!r} is not 64 hex digits", hint="copy it from 'rehead verify'",
            param="manifest_sha256",
        )
    return text


def manifest_digest(path: str | os.PathLike[str]) -> str:
    """The sha256 of a bundle's ``manifest.json`` (directory or archive; verify the bundle
    first): pin it with ``verify(path, manifest_sha256=...)``.

    Args:
        path: the bundle directory or ``.tar``/``.zip`` archive.
    """
    bundle = Path(path)
    if bundle.is_dir():
        return sha256_file(bundle / MANIFEST_FILE)
    kind = archive_kind(bundle)
    if kind is None:
        verify(bundle)  # raises, with the reason
        raise mismatch(str(bundle), "is not a bundle")
    with _open_archive(bundle, kind) as archive:
        top = next(m for m in _members(archive, kind) if m.name == MANIFEST_FILE)
        return hashlib.sha256(_read_member(archive, kind, top, MAX_MANIFEST_BYTES)).hexdigest()


def open_bundle(
    path: str | os.PathLike[str], *, manifest_sha256: str | None = None
) -> tuple[Path, Manifest]:
    """Verify a bundle; an archive is first checked member by member, then extracted into a new
    temporary directory (the caller removes it when ``is_temporary`` says so). Returns the
    directory holding ``manifest.json`` and the manifest.

    Args:
        path: the bundle directory or ``.tar``/``.zip`` archive.
        manifest_sha256: the manifest's pinned sha256, as for ``verify``.
    """
    pinned = _check_pin(manifest_sha256)
    bundle = Path(path)
    if bundle.is_dir() and not bundle.is_symlink():
        return bundle, _verify_dir(bundle, pinned)
    kind = archive_kind(bundle)
    if kind is None:
        return bundle, verify(bundle)  # raises, with the reason
    target = Path(tempfile.mkdtemp(prefix="rehead-bundle-"))
    try:
        return target, _verify_archive(bundle, kind, target, pinned)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise


def is_temporary(root: Path, path: str | os.PathLike[str]) -> bool:
    """True when ``open_bundle(path)`` extracted into ``root`` (a directory to remove when done).

    Args:
        root: the directory ``open_bundle`` returned.
        path: the bundle ``open_bundle`` was given.
    """
    return Path(root) != Path(path)

