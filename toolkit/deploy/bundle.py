"""Bundles: a validated model packaged so that what runs on a device is provably what was validated.

A bundle is a directory (optionally archived as ``.tar`` or ``.zip``)::

    manifest.json          schema, every other file with sha256 + size, class names, preprocessing,
                           head spec, each artifact's parity certificate and latency, environment
    labels.txt             one class name per line, in output order
    config.json            the model directory's record
    artifacts/<file>       each artifact (+ an engine's ``<engine>.json`` sidecar and trtexec
                           script, + ONNX external-data files)

``package`` validates the artifacts (or reads a JSON report of ``validate``), keeps those that
passed (all with ``force``, the manifest then says so) and publishes the directory or archive
atomically. ``verify`` checks a bundle against its manifest: schema, every file's size and
sha256 (reading at most the declared size + 1 bytes), no path leaving the bundle, no symlink,
nothing extra or missing; archive members are checked before anything is extracted.
``open_bundle`` verifies and, for an archive, extracts it safely into a temporary directory.
Every refusal is a ``BundleMismatchError`` (exit 1) naming the file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import json
import os
import platform
import shutil
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from toolkit import _atomic
from toolkit._text import listing
from toolkit.errors import (
    ArtifactError,
    BundleMismatchError,
    GateFailedError,
    InvalidArgumentError,
    LineageError,
)
from toolkit.models.model_dir import CONFIG_FILE, LoadedModel, load_model_dir, sha256_file
from toolkit.progress import Progress
from toolkit.records import ModelConfig, Preprocessing

SCHEMA = "rehead.bundle/1"
SCHEMA_VERSION = 1
MANIFEST_FILE = "manifest.json"
LABELS_FILE = "labels.txt"
ARTIFACTS_DIR = "artifacts"
#: a manifest is a few hundred KiB at most; anything larger is not one (and is not read whole)
MAX_MANIFEST_BYTES = 16 << 20
ARCHIVES = ("tar", "zip")
#: file suffix -> artifact kind (the runtime that runs it)
KINDS = {".onnx": "onnx", ".pt2": "pt2", ".engine": "tensorrt", ".plan": "tensorrt"}
_VALIDATION_SCHEMA = "rehead.validation/1"


# --- records -----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BundleFile:
    """One file of the bundle: its relative POSIX ``name``, ``sha256`` and ``size`` in bytes."""

    name: str
    sha256: str
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "sha256": self.sha256, "size": self.size}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BundleFile:
        name, digest, size = data["name"], data["sha256"], data["size"]
        if not isinstance(name, str) or not isinstance(digest, str) or type(size) is not int or size < 0:
            raise TypeError(f"file entry {dict(data)!r} needs a string name and sha256 and a size >= 0")
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"file entry '{name}': sha256 is not 64 lowercase hex digits")
        return cls(name, digest, size)


@dataclasses.dataclass(frozen=True)
class BundleArtifact:
    """One artifact in the bundle.

    ``file``: its relative name (``artifacts/model.onnx``); ``kind``: ``onnx`` | ``pt2`` |
    ``tensorrt``; ``precision``; ``passed``: its validation passed; ``forced``: packaged although
    it did not; ``certificate``: the parity certificate (preset, tolerance, measured errors per
    batch size and class slice, top-1 agreement with eager per slice and the lowest of them, named
    by its slice: see ``certificate``); ``latency``: per batch size summary (ms);
    ``companions``: the files it needs beside it (engine sidecar, ONNX external data).
    """

    file: str
    kind: str
    precision: str
    passed: bool
    forced: bool
    certificate: Mapping[str, Any]
    latency: Mapping[str, Any]
    companions: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "kind": self.kind,
            "precision": self.precision,
            "passed": self.passed,
            "forced": self.forced,
            "certificate": dict(self.certificate),
            "latency": dict(self.latency),
            "companions": list(self.companions),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BundleArtifact:
        kind = str(data["kind"])
        if kind not in set(KINDS.values()):
            raise ValueError(f"artifact '{data['file']}': unknown kind '{kind}'")
        return cls(
            file=str(data["file"]),
            kind=kind,
            precision=str(data["precision"]),
            passed=bool(data["passed"]),
            forced=bool(data["forced"]),
            certificate=dict(data.get("certificate") or {}),
            latency=dict(data.get("latency") or {}),
            companions=tuple(str(c) for c in data.get("companions", ())),
        )


@dataclasses.dataclass(frozen=True)
class Manifest:
    """``manifest.json``: what the bundle holds and the evidence that it was validated.

    ``files`` lists every file but the manifest itself; ``forced`` is True when any artifact
    went in without passing; ``model`` holds the architecture and the weights' sha256;
    ``validation`` where the certificates came from (a run here or a report file) and its settings.
    """

    created: str
    files: tuple[BundleFile, ...]
    class_names: tuple[str, ...]
    preprocessing: Mapping[str, Any]
    head_spec: Mapping[str, Any]
    artifacts: tuple[BundleArtifact, ...]
    environment: Mapping[str, Any]
    forced: bool
    model: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    validation: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    schema: str = SCHEMA

    @property
    def prep(self) -> Preprocessing:
        """The preprocessing as the record ``toolkit.records.Preprocessing``."""
        return Preprocessing.from_json(self.preprocessing)

    def file(self, name: str) -> BundleFile:
        for entry in self.files:
            if entry.name == name:
                return entry
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "schema_version": SCHEMA_VERSION,
            "created": self.created,
            "forced": self.forced,
            "model": dict(self.model),
            "class_names": list(self.class_names),
            "preprocessing": dict(self.preprocessing),
            "head_spec": dict(self.head_spec),
            "artifacts": [a.to_json() for a in self.artifacts],
            "validation": dict(self.validation),
            "environment": dict(self.environment),
            "files": [f.to_json() for f in self.files],
        }

    def dumps(self) -> str:
        return json.dumps(_clean(self.to_json()), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, data: Any) -> Manifest:
        """Parse a manifest; ``BundleMismatchError`` naming ``manifest.json`` when it is not one."""
        if not isinstance(data, Mapping):
            raise _mismatch(MANIFEST_FILE, "is not a JSON object")
        schema = data.get("schema")
        if schema != SCHEMA:
            raise _mismatch(
                MANIFEST_FILE,
                f"has schema {schema!r}, expected {SCHEMA!r}",
                hint="this rehead reads bundles of schema version 1; package the model again with this rehead",
            )
        try:
            return cls(
                created=str(data["created"]),
                files=tuple(BundleFile.from_json(f) for f in data["files"]),
                class_names=tuple(str(c) for c in data["class_names"]),
                preprocessing=dict(data["preprocessing"]),
                head_spec=dict(data["head_spec"]),
                artifacts=tuple(BundleArtifact.from_json(a) for a in data["artifacts"]),
                environment=dict(data.get("environment") or {}),
                forced=bool(data["forced"]),
                model=dict(data.get("model") or {}),
                validation=dict(data.get("validation") or {}),
                schema=str(schema),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            what = f"misses the field {exc}" if isinstance(exc, KeyError) else f"is invalid: {exc}"
            raise _mismatch(MANIFEST_FILE, what) from exc


def _mismatch(name: str, what: str, *, hint: str | None = None) -> BundleMismatchError:
    return BundleMismatchError(f"bundle file '{name}' {what}", hint=hint)


def _clean(value: Any) -> Any:
    """Strict JSON: non-finite floats as strings (as validation reports write them), tuples as lists."""
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        return _clean(value.item())
    return value


# --- names ---------------------------------------------------------------------------------------------


def check_name(name: str) -> str:
    """``name`` if it is a plain relative POSIX path inside the bundle, else ``BundleMismatchError``.

    Refused: empty, absolute (``/x``, ``C:x``), ``..`` or ``.`` components, backslashes, NUL,
    empty components (``a//b``), and the manifest's own name.
    """
    bad = ""
    if not name or "\x00" in name:
        bad = "is empty or holds a NUL byte"
    elif name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        bad = "is an absolute path"
    elif "\\" in name:
        bad = "holds a backslash"
    elif any(part in ("", ".", "..") for part in name.split("/")):
        bad = "leaves the bundle or is not normalised (holds '..', '.' or an empty component)"
    elif name == MANIFEST_FILE:
        bad = "lists the manifest itself"
    if bad:
        raise _mismatch(name, bad, hint="the manifest may only name files inside the bundle; do not run it")
    return name


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
        raise _mismatch(name, f"has {more} bytes, the manifest says {declared}")
    return digest.hexdigest()


def _check_entry(entry: BundleFile, digest: str) -> None:
    if digest != entry.sha256:
        raise _mismatch(
            entry.name,
            f"does not match the manifest: sha256 {digest[:12]}…, expected {entry.sha256[:12]}… "
            "(it was changed after packaging)",
        )


# --- verify --------------------------------------------------------------------------------------------


def _read_manifest_bytes(data: bytes, pinned: str | None = None) -> Manifest:
    if pinned is not None and hashlib.sha256(data).hexdigest() != pinned.lower():
        raise _mismatch(
            MANIFEST_FILE,
            f"is not the pinned manifest: sha256 {hashlib.sha256(data).hexdigest()[:12]}…, expected {pinned[:12]}…",
            hint="the bundle was changed or replaced after its manifest digest was recorded; do not run it",
        )
    try:
        parsed = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _mismatch(MANIFEST_FILE, f"is not valid JSON: {exc}") from exc
    manifest = Manifest.from_json(parsed)
    _check_manifest(manifest)
    return manifest


def _check_manifest(manifest: Manifest) -> None:
    """The manifest agrees with itself: safe unique names, artifacts listed, class counts."""
    names = [check_name(f.name) for f in manifest.files]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise _mismatch(dupes[0], "is listed twice in the manifest")
    lowered = [n.lower() for n in names]
    clash = sorted({n for n in names if lowered.count(n.lower()) > 1})
    if clash:  # one of the two would overwrite the other on a case-insensitive file system
        raise _mismatch(clash[0], "differs from another file only by case")
    for required in (LABELS_FILE, CONFIG_FILE):
        if required not in names:
            raise _mismatch(required, "is not listed in the manifest")
    if not manifest.artifacts:
        raise _mismatch(MANIFEST_FILE, "lists no artifact")
    for artifact in manifest.artifacts:
        for name in (artifact.file, *artifact.companions):
            if check_name(name) not in names:
                raise _mismatch(name, "is an artifact (or its companion) the manifest does not list as a file")
        suffix = PurePosixPath(artifact.file).suffix.lower()
        if KINDS.get(suffix) != artifact.kind:
            raise _mismatch(artifact.file, f"is recorded as kind '{artifact.kind}' but its suffix is '{suffix}'")
    if not manifest.class_names:
        raise _mismatch(MANIFEST_FILE, "lists no class names")
    num = manifest.head_spec.get("num_classes")
    if num is not None and num != len(manifest.class_names):
        raise _mismatch(MANIFEST_FILE, f"lists {len(manifest.class_names)} class names for a {num}-class head")


def _check_contents(root: Path, manifest: Manifest) -> None:
    """labels.txt and config.json say what the manifest says (both already hash-checked)."""
    labels = (root / LABELS_FILE).read_text(encoding="utf-8").splitlines()
    if tuple(labels) != manifest.class_names:
        raise _mismatch(LABELS_FILE, "does not list the manifest's class names in output order")
    try:
        config = ModelConfig.from_json(json.loads((root / CONFIG_FILE).read_text(encoding="utf-8")))
    except Exception as exc:  # any parse failure means the same thing here
        raise _mismatch(CONFIG_FILE, f"is not a model record: {exc}") from exc
    if config.class_names != manifest.class_names:
        raise _mismatch(CONFIG_FILE, "names other classes than the manifest")


def _verify_dir(root: Path, pinned: str | None = None) -> Manifest:
    if root.is_symlink():
        raise _mismatch(str(root), "is a symlink", hint="verify the bundle itself, not a link to it")
    manifest_path = root / MANIFEST_FILE
    if manifest_path.is_symlink() or not manifest_path.is_file():
        what = "is a symlink" if manifest_path.is_symlink() else "is missing"
        raise _mismatch(MANIFEST_FILE, what, hint="a bundle directory holds manifest.json; create one with package")
    with open(manifest_path, "rb") as handle:
        data = handle.read(MAX_MANIFEST_BYTES + 1)
    if len(data) > MAX_MANIFEST_BYTES:
        raise _mismatch(MANIFEST_FILE, f"is over {MAX_MANIFEST_BYTES} bytes: not a bundle manifest")
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
                raise _mismatch(rel, "is a symlink", hint="a bundle holds regular files only; do not run it")
            if stat.S_ISDIR(info.st_mode):
                if not any(n.startswith(rel + "/") for n in listed):
                    raise _mismatch(rel, "is an extra directory the manifest does not list")
                continue
            if not stat.S_ISREG(info.st_mode):
                raise _mismatch(rel, "is not a regular file")
            if rel != MANIFEST_FILE:
                present.add(rel)
    _check_listing(set(listed), present)
    for entry in manifest.files:
        path = root / entry.name
        size = path.lstat().st_size
        if size != entry.size:
            raise _mismatch(entry.name, f"has {size} bytes, the manifest says {entry.size}")
        with open(path, "rb") as handle:
            _check_entry(entry, _hash_bounded(handle, entry.size, entry.name))
    _check_contents(root, manifest)
    return manifest


def _check_listing(listed: set[str], present: set[str]) -> None:
    missing, extra = sorted(listed - present), sorted(present - listed)
    if missing and extra:
        raise _mismatch(
            missing[0],
            f"is missing and '{extra[0]}' is not in the manifest (renamed?)"
            + (f"; {len(missing) + len(extra) - 2} more differences" if len(missing) + len(extra) > 2 else ""),
        )
    if missing:
        raise _mismatch(missing[0], "is missing" + (f" (and {listing(missing[1:])})" if len(missing) > 1 else ""))
    if extra:
        raise _mismatch(extra[0], "is not in the manifest" + (f" (and {listing(extra[1:])})" if len(extra) > 1 else ""))


# --- archives ------------------------------------------------------------------------------------------


def archive_kind(path: Path) -> str | None:
    """``tar`` or ``zip`` when ``path`` is such an archive (by content), else None."""
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
                raise _mismatch(info.name, f"is a {'symlink' if info.issym() else 'hard link'} member of the archive",
                                hint="a bundle archive holds regular files only; do not extract it")
            if name != MANIFEST_FILE:
                check_name(name)
            if not (info.isfile() or info.isdir()):
                raise _mismatch(info.name, "is not a regular file in the archive")
            found.append(_Member(name, info.size, info.isdir(), info))
    else:
        for zinfo in archive.infolist():
            name = zinfo.filename.rstrip("/") if zinfo.is_dir() else zinfo.filename
            mode = (zinfo.external_attr >> 16) & 0xFFFF
            if stat.S_ISLNK(mode):
                raise _mismatch(zinfo.filename, "is a symlink member of the archive",
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
        raise _mismatch(path.name, f"is not a readable {kind} archive: {exc}") from exc
    with handle:
        yield handle


def _member_stream(archive: Any, kind: str, member: _Member) -> Any:
    stream = archive.extractfile(member.handle) if kind == "tar" else archive.open(member.handle)
    if stream is None:
        raise _mismatch(member.name, "cannot be read from the archive")
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
            raise _mismatch(dupes[0], "appears twice in the archive")
        by_name = {m.name: m for m in files}
        top = by_name.get(MANIFEST_FILE)
        if top is None:
            raise _mismatch(MANIFEST_FILE, f"is missing from the archive '{path.name}'")
        if top.size > MAX_MANIFEST_BYTES:
            raise _mismatch(MANIFEST_FILE, f"is over {MAX_MANIFEST_BYTES} bytes: not a bundle manifest")
        with _member_stream(archive, kind, top) as stream:
            manifest = _read_manifest_bytes(stream.read(MAX_MANIFEST_BYTES + 1), pinned)
        listed = {f.name: f for f in manifest.files}
        _check_listing(set(listed), set(by_name) - {MANIFEST_FILE})
        for m in members:
            if m.is_dir and not any(n.startswith(m.name + "/") for n in listed):
                raise _mismatch(m.name, "is an extra directory the manifest does not list")
        for entry in manifest.files:
            member = by_name[entry.name]
            if member.size != entry.size:
                raise _mismatch(entry.name, f"has {member.size} bytes, the manifest says {entry.size}")
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
        raise _mismatch(str(bundle), "is neither a bundle directory nor a tar or zip archive")
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
    first): pin it with ``verify(path, manifest_sha256=...)``."""
    bundle = Path(path)
    if bundle.is_dir():
        return sha256_file(bundle / MANIFEST_FILE)
    kind = archive_kind(bundle)
    if kind is None:
        verify(bundle)  # raises, with the reason
        raise _mismatch(str(bundle), "is not a bundle")
    with _open_archive(bundle, kind) as archive:
        top = next(m for m in _members(archive, kind) if m.name == MANIFEST_FILE)
        return hashlib.sha256(_read_member(archive, kind, top, MAX_MANIFEST_BYTES)).hexdigest()


def open_bundle(
    path: str | os.PathLike[str], *, manifest_sha256: str | None = None
) -> tuple[Path, Manifest]:
    """Verify a bundle; an archive is first checked member by member, then extracted into a new
    temporary directory (the caller removes it: ``cleanup_dir``). Returns the directory holding
    ``manifest.json`` and the manifest."""
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
    """True when ``open_bundle(path)`` extracted into ``root`` (a directory to remove when done)."""
    return Path(root) != Path(path)


# --- package -------------------------------------------------------------------------------------------


def _report_artifacts(report: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    entries = report.get("artifacts")
    if not isinstance(entries, list):
        raise InvalidArgumentError("the validation report lists no artifacts", param="report")
    return entries


def _read_report(path: Path, loaded: LoadedModel, artifacts: Sequence[Path]) -> dict[str, Any]:
    """A JSON report of ``validate`` for this model and these artifact files, or a refusal."""
    from converters.artifact import artifact_size
    from validation.lineage import check_lineage

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidArgumentError(f"cannot read validation report '{path}': {exc}", param="report") from exc
    if not isinstance(data, dict) or data.get("schema") != _VALIDATION_SCHEMA:
        raise InvalidArgumentError(
            f"'{path}' is not a JSON validation report (schema {_VALIDATION_SCHEMA})",
            hint="write one with rehead validate --json, or leave the report out to validate now",
            param="report",
        )
    recorded = (data.get("model") or {}).get("weights_sha256")
    expected = loaded.config.weights_sha256
    if recorded != expected:
        raise LineageError(
            f"report '{path.name}' validated weights {str(recorded)[:12]}, "
            f"the model directory holds {str(expected)[:12]}",
            hint="validate this model directory's artifacts again, or give the report of this model",
            param="report",
        )
    entries = _report_artifacts(data)
    created = datetime.datetime.fromisoformat(str(data.get("created"))).timestamp() if data.get("created") else None
    chosen = []
    for artifact in artifacts:
        entry, same_path = _match_entry(entries, artifact)
        if entry is None:
            raise InvalidArgumentError(
                f"report '{path.name}' has no result for '{artifact.name}'",
                hint="validate every artifact you package, in one run",
                param="report",
            )
        check_lineage(loaded.config, artifact)
        digest = entry.get("sha256")
        if digest is not None and digest != sha256_file(artifact):
            raise InvalidArgumentError(
                f"'{artifact.name}' differs from the file the report validated (sha256)", param="report"
            )
        size = artifact_size(artifact)
        if entry.get("size_bytes") != size:
            raise InvalidArgumentError(
                f"'{artifact.name}' has {size} bytes, the file the report validated had "
                f"{entry.get('size_bytes')}: it changed after validation",
                hint="validate the artifact again",
                param="report",
            )
        # reports record sizes, not hashes: a same-size edit of the validated file shows in its mtime
        if same_path and created is not None and artifact.stat().st_mtime > created + 1:
            raise InvalidArgumentError(
                f"'{artifact.name}' was modified after the report was written",
                hint="validate it again",
                param="report",
            )
        chosen.append(entry)
    return {**data, "artifacts": chosen}


def _match_entry(entries: Sequence[Mapping[str, Any]], artifact: Path) -> tuple[Mapping[str, Any] | None, bool]:
    """The report entry validating ``artifact`` and whether it names the same path: the same
    resolved path, else the only entry with the same file name (a report moved with its files)."""
    for entry in entries:
        recorded = entry.get("path")
        if recorded and Path(str(recorded)).resolve() == artifact.resolve():
            return entry, True
    named = [e for e in entries if e.get("path") and Path(str(e["path"])).name == artifact.name]
    return (named[0], False) if len(named) == 1 else (None, False)


def _passed(entry: Mapping[str, Any]) -> bool:
    """Parity passed and no latency gate failed (noise alone makes latency inconclusive, not failed)."""
    return entry.get("parity_status") == "pass" and entry.get("latency_status") != "fail"


def _worst(values: Sequence[Any], *, lowest: bool) -> Any:
    numbers = [v for v in values if isinstance(v, (int, float))]
    if not numbers:
        return None
    return min(numbers) if lowest else max(numbers)


def certificate(entry: Mapping[str, Any], report: Mapping[str, Any]) -> dict[str, Any]:
    """The parity certificate of one report entry: preset, tolerance, errors per batch and slice,
    top-1 agreement and max abs error, and the inputs it was measured on.

    Top-1 agreement is with the eager model on the validation inputs (not accuracy against
    labels), the lowest over batch sizes: ``top1_agreement_by_slice`` per class slice (``all``,
    ``kept``, ``new``, the numbers ``rehead validate`` shows); ``top1_agreement`` the lowest of
    those, and ``top1_agreement_slice`` the slice it comes from (``all`` on a tie). The ``kept``
    and ``new`` slices compare the arg-max within their own classes, so they can differ from ``all``.
    """
    parity = entry.get("parity") or {}
    batches = []
    top1: list[Any] = []
    by_slice: dict[str, list[Any]] = {}
    max_abs: list[Any] = []
    for batch in parity.get("batches", []):
        slices = []
        for result in batch.get("slices", []):
            metrics = result.get("metrics", {})
            slices.append(
                {
                    "output": result.get("output"),
                    "slice": result.get("slice"),
                    "indices": result.get("indices"),
                    "passed": result.get("passed"),
                    "metrics": metrics,
                }
            )
            top1.append(metrics.get("top1"))
            by_slice.setdefault(str(result.get("slice")), []).append(metrics.get("top1"))
            max_abs.append(metrics.get("max_abs"))
        batches.append({"batch_size": batch.get("batch_size"), "passed": batch.get("passed"), "slices": slices})
    agreement = {name: low for name, values in by_slice.items() if (low := _worst(values, lowest=True)) is not None}
    return {
        "status": entry.get("status"),
        "parity_status": entry.get("parity_status"),
        "latency_status": entry.get("latency_status"),
        "preset": entry.get("preset"),
        "tolerance": parity.get("tolerance"),
        "top1_agreement": _worst(top1, lowest=True),
        "top1_agreement_slice": min(agreement, key=agreement.__getitem__) if agreement else None,
        "top1_agreement_by_slice": agreement,
        "max_abs": _worst(max_abs, lowest=False),
        "batches": batches,
        "failures": entry.get("gate_failures", []) + list(parity.get("failures", [])),
        "device": entry.get("device"),
        "inputs": report.get("inputs"),
        "reference": (report.get("settings") or {}).get("reference"),
    }


def agreement_text(cert: Mapping[str, Any]) -> str:
    """A certificate's top-1 agreement, every figure named by its slice: ``top-1 agreement with
    eager: all classes 100.0%, kept 96.9%, new 100.0%``. A manifest written before the per-slice
    figures existed has only the lowest: ``... 96.9% (lowest over all/kept/new classes)``."""
    by_slice = cert.get("top1_agreement_by_slice")
    if isinstance(by_slice, Mapping) and by_slice:
        figures = ", ".join(
            f"{name}{' classes' if i == 0 else ''} {value:.1%}" for i, (name, value) in enumerate(by_slice.items())
        )
        return f"top-1 agreement with eager: {figures}"
    low = cert.get("top1_agreement")
    if isinstance(low, (int, float)):
        return f"top-1 agreement with eager: {low:.1%} (lowest over all/kept/new classes)"
    return "top-1 agreement with eager: not measured"


def latency_summary(entry: Mapping[str, Any]) -> dict[str, Any]:
    """Per batch size: p50/p90/p99/mean ms, throughput, status, speed-up over eager."""
    speedup = entry.get("speedup") or {}
    out: dict[str, Any] = {}
    for size, stats in (entry.get("latency") or {}).items():
        out[str(size)] = {
            key: stats.get(key) for key in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "throughput", "runs", "status")
        } | {"speedup": speedup.get(str(size))}
    return out


def _companions(artifact: Path) -> list[tuple[Path, str]]:
    """Files the artifact needs beside it, as (source, name relative to the artifact's folder)."""
    suffix = artifact.suffix.lower()
    found: list[tuple[Path, str]] = []
    if suffix == ".onnx":
        from converters.onnx.external import check_location_name, external_locations

        for location in external_locations(artifact):
            check_location_name(location, model=artifact.name)
            source = artifact.parent / location
            if not source.is_file():
                raise ArtifactError(f"'{artifact.name}' needs its external data '{location}', which is missing")
            found.append((source, location))
    elif suffix in (".engine", ".plan"):
        from converters.tensorrt.record import sidecar_path, trtexec_path, verify_engine

        record = verify_engine(artifact)  # an engine that does not match its sidecar never goes in
        found.append((sidecar_path(artifact), sidecar_path(artifact).name))
        script = trtexec_path(artifact)
        if script.is_file():
            found.append((script, script.name))
        if record.weights_stripped:  # it is refitted from its own ONNX when opened: that ONNX goes in beside it
            found += _stripped_engine_onnx(artifact, record.onnx_name, record.onnx_sha256)
    return found


def _stripped_engine_onnx(engine: Path, onnx_name: str, onnx_sha256: str) -> list[tuple[Path, str]]:
    from converters.tensorrt.record import sha256_of

    onnx = engine.parent / onnx_name
    if Path(onnx_name).name != onnx_name or not onnx.is_file() or sha256_of(onnx) != onnx_sha256:
        raise ArtifactError(
            f"'{engine.name}' is weight-stripped and the ONNX it is refitted from, '{onnx_name}', is not beside "
            "it unchanged: the bundle could not open it",
            hint="put that ONNX beside the engine, or package a full engine (rehead refit writes one)",
        )
    return [(onnx, onnx_name), *_companions(onnx)]


def _check_artifacts(artifacts: Sequence[str | os.PathLike[str]]) -> list[Path]:
    if isinstance(artifacts, (str, os.PathLike)) or not artifacts:
        raise InvalidArgumentError(
            "give the artifacts to package as a list of paths", hint="artifacts=['model.onnx']", param="artifacts"
        )
    paths = [Path(a) for a in artifacts]
    seen: dict[str, Path] = {}
    for path in paths:
        if path.suffix.lower() not in KINDS:
            raise InvalidArgumentError(
                f"cannot package '{path.name}': a bundle holds {', '.join(KINDS)} artifacts", param="artifacts"
            )
        if not path.is_file():
            raise ArtifactError(f"artifact '{path}' does not exist", hint="check the path or run 'rehead export'")
        if path.name in seen:
            raise InvalidArgumentError(
                f"two artifacts are named '{path.name}' ({seen[path.name]} and {path})",
                hint="rename one: the bundle keeps artifacts side by side under artifacts/",
                param="artifacts",
            )
        seen[path.name] = path
    return paths


def _environment(report_env: Mapping[str, Any]) -> dict[str, Any]:
    from toolkit import __version__

    return {
        "validation": dict(report_env),
        "package": {
            "rehead": __version__,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "created": _now(),
        },
    }


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def package(
    model_dir: str | os.PathLike[str],
    artifacts: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    report: str | os.PathLike[str] | None = None,
    archive: str | None = None,
    force: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    device: str = "cpu",
    data: str | os.PathLike[str] = "random",
    samples: int = 32,
    batch_sizes: Sequence[int] = (1, 8),
    preset: str | None = None,
    latency: bool = True,
    latency_settings: Any = None,
    threads: int | None = None,
) -> Manifest:
    """Package validated artifacts of ``model_dir`` into a bundle at ``output``; returns its manifest.

    Args:
        model_dir: the model directory the artifacts were exported from.
        artifacts: ``.onnx`` / ``.pt2`` / ``.engine`` / ``.plan`` files (with their external data
            or sidecar beside them).
        output: the bundle directory to write, or with ``archive`` the archive file.
        report: a JSON report of ``validate`` (``rehead validate --json``) for these artifacts of
            this model, instead of validating now; refused when it validated other weights or a
            file that changed since.
        archive: ``tar`` | ``zip``: write one archive file instead of a directory.
        force: package artifacts that failed validation too (the manifest says ``forced``).
        overwrite: replace an existing ``output``.
        progress: print progress on stderr (default False: silent).
        device, data, samples, batch_sizes, preset, latency, latency_settings, threads: passed to
            ``validation.suite.validate`` when no ``report`` is given.

    Raises ``GateFailedError`` (exit 1) when an artifact failed and ``force`` is False; nothing is
    written then. The bundle (or archive) appears complete or not at all.
    """
    if archive is not None and archive not in ARCHIVES:
        raise InvalidArgumentError(f"archive must be tar or zip, not {archive!r}", param="archive")
    out = _atomic.check_output(output, overwrite=overwrite)
    paths = _check_artifacts(artifacts)
    for path in paths:  # an engine that does not match its sidecar, unsafe external data: before anything runs
        _companions(path)
    loaded = load_model_dir(model_dir)
    if report is not None:
        results = _read_report(Path(report), loaded, paths)
        source = {"source": "report", "report": str(report), "report_sha256": sha256_file(report)}
    else:
        from validation.suite import validate

        results = validate(
            loaded,
            [str(p) for p in paths],
            data=data if isinstance(data, str) else os.fspath(data),
            samples=samples,
            batch_sizes=batch_sizes,
            device=device,
            preset=preset,
            latency=latency,
            head_latency=False,
            latency_settings=latency_settings,
            localise=False,  # a diagnosis of a failure, not part of the certificate: rehead validate gives it
            threads=threads,
            progress=progress,
        ).to_json()
        source = {"source": "run"}
    entries = results["artifacts"]
    failed = [p.name for p, e in zip(paths, entries, strict=True) if not _passed(e)]
    if failed and not force:
        first = next(e for e in entries if not _passed(e))
        why = (first.get("failures") or first.get("gate_failures") or [{}])[0].get("message", first.get("status"))
        raise GateFailedError(
            f"not packaging {listing(failed)}: validation "
            f"{'did not pass' if first.get('parity') else 'has no parity result'} ({why})",
            hint="fix or re-export the artifact, leave it out, or package it anyway with force "
            "(the manifest then says forced)",
            param="force",
        )
    with Progress("packaging", total=len(paths) + 1, enabled=progress) as bar:
        if archive is None:
            with _atomic.output_dir(out, overwrite=overwrite) as stage:
                manifest = _write_bundle(stage, loaded, paths, entries, results, source, failed, bar)
        else:
            stage = _atomic.staging_dir(out)
            try:
                manifest = _write_bundle(stage, loaded, paths, entries, results, source, failed, bar)
                _atomic.write_with(out, lambda tmp: _write_archive(stage, tmp, archive), overwrite=overwrite)
            except Exception as exc:
                _atomic.raise_if_out_of_room(exc, out)
                raise
            finally:
                shutil.rmtree(stage, ignore_errors=True)
    return manifest


def _write_bundle(
    stage: Path,
    loaded: LoadedModel,
    paths: Sequence[Path],
    entries: Sequence[Mapping[str, Any]],
    report: Mapping[str, Any],
    source: Mapping[str, Any],
    failed: Sequence[str],
    bar: Progress,
) -> Manifest:
    config = loaded.config
    (stage / ARTIFACTS_DIR).mkdir()
    copied: dict[str, str] = {}  # bundle name -> sha256 (two ONNX files may share one external file)
    records = []
    for path, entry in zip(paths, entries, strict=True):
        with bar.step(f"copy {path.name}"):
            companions = []
            for source_path, rel in [(path, path.name), *_companions(path)]:
                name = f"{ARTIFACTS_DIR}/{rel}"
                check_name(name)
                digest = sha256_file(source_path)
                if name in copied:
                    if copied[name] != digest:
                        raise InvalidArgumentError(
                            f"two artifacts need different files named '{rel}'",
                            hint="export them into separate folders with their own external data names",
                            param="artifacts",
                        )
                    continue
                copied[name] = digest
                shutil.copyfile(source_path, stage / name)
                if source_path != path:
                    companions.append(name)
            records.append(
                BundleArtifact(
                    file=f"{ARTIFACTS_DIR}/{path.name}",
                    kind=KINDS[path.suffix.lower()],
                    precision=str(entry.get("precision", "fp32")),
                    passed=_passed(entry),
                    forced=path.name in failed,
                    certificate=certificate(entry, report),
                    latency=latency_summary(entry),
                    companions=tuple(companions),
                )
            )
    shutil.copyfile(loaded.path / CONFIG_FILE, stage / CONFIG_FILE)
    (stage / LABELS_FILE).write_text("".join(f"{name}\n" for name in config.class_names), encoding="utf-8")
    files = []
    for item in sorted(p for p in stage.rglob("*") if p.is_file()):
        name = item.relative_to(stage).as_posix()
        files.append(BundleFile(name, sha256_file(item), item.stat().st_size))
    manifest = Manifest(
        created=_now(),
        files=tuple(files),
        class_names=tuple(config.class_names),
        preprocessing=config.preprocessing.to_json(),
        head_spec=config.head.to_json(),
        artifacts=tuple(records),
        environment=_environment(report.get("environment") or {}),
        forced=bool(failed),
        model={"arch": config.arch, "num_classes": config.num_classes, "weights_sha256": config.weights_sha256},
        validation={**source, "created": report.get("created"), "settings": report.get("settings"),
                    "inputs": report.get("inputs")},
    )
    _check_manifest(manifest)
    (stage / MANIFEST_FILE).write_text(manifest.dumps(), encoding="utf-8")
    bar.advance("manifest")
    return manifest


def _write_archive(stage: Path, target: Path, kind: str) -> None:
    """The staged bundle as an archive at ``target``: regular files only, names relative, sorted,
    owner and time fixed so that the same bundle gives the same bytes (given the same manifest)."""
    names = sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*") if p.is_file())
    if kind == "tar":
        with tarfile.open(target, "w", format=tarfile.PAX_FORMAT) as tar:
            for name in names:
                info = tar.gettarinfo(str(stage / name), arcname=name)
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mtime = 0
                info.mode = 0o644
                with open(stage / name, "rb") as handle:
                    tar.addfile(info, handle)
    else:
        # weights barely compress: the fastest deflate level loses almost nothing
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
            for name in names:
                zinfo = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                zinfo.external_attr = (stat.S_IFREG | 0o644) << 16
                zinfo.compress_type = zipfile.ZIP_DEFLATED
                zinfo._compresslevel = 1  # type: ignore[attr-defined]  # ZipInfo carries no public level
                with open(stage / name, "rb") as src, zf.open(zinfo, "w") as dst:
                    shutil.copyfileobj(src, dst)
