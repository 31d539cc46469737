"""The bundle manifest: its records (``BundleFile``, ``BundleArtifact``, ``Manifest``), their JSON
(schema ``rehead.bundle/1``), the names a bundle may hold (``check_name``) and the checks that a
manifest agrees with itself (``check_manifest``).

A bundle is a directory (optionally archived as ``.tar`` or ``.zip``)::

    manifest.json          schema, every other file with sha256 + size, class names, preprocessing,
                           head spec, each artifact's parity certificate and latency, environment
    labels.txt             one class name per line, in output order
    config.json            the model directory's record
    artifacts/<file>       each artifact (+ an engine's ``<engine>.json`` sidecar and trtexec
                           script, + ONNX external-data files)

The records and checks here read no bundle file and import neither ``validation`` nor a runtime:
``verify`` checks a bundle on disk against them, ``bundle.package`` writes them (and asks
``_companions``, with the artifact kinds, which files an artifact needs beside it). Every refusal
is a ``BundleMismatchError`` (exit 1) naming the file.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from toolkit.errors import BundleMismatchError
from toolkit.models.model_dir import CONFIG_FILE
from toolkit.records import Preprocessing

SCHEMA = "rehead.bundle/1"
SCHEMA_VERSION = 1
MANIFEST_FILE = "manifest.json"
LABELS_FILE = "labels.txt"
ARTIFACTS_DIR = "artifacts"
#: a manifest is a few hundred KiB at most; anything larger is not one (and is not read whole)
MAX_MANIFEST_BYTES = 16 << 20


def kind_of(name: str | os.PathLike[str]) -> str | None:
    """The artifact kind of a file name (the artifact registry's), or None for none.

    Args:
        name: the artifact's file name or path.
    """
    from converters import artifact

    fmt = artifact.find_format(name)
    return fmt.kind if fmt is not None else None


def known_kind(kind: str) -> bool:
    """A kind the artifact registry knows.

    Args:
        kind: the kind to look up.
    """
    from converters import artifact

    return any(fmt.kind == kind for fmt in artifact.formats())


def _companions(path: Path) -> list[tuple[Path, str]]:
    """Files the artifact needs beside it, as (source, name relative to its folder): the
    artifact registry's answer (an engine is verified against its sidecar on the way)."""
    from converters import artifact

    return artifact.companions(path)


# --- records -----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BundleFile:
    """One file of the bundle: its relative POSIX ``name``, ``sha256`` and ``size`` in bytes."""

    name: str
    sha256: str
    size: int

    def to_json(self) -> dict[str, Any]:
        """The manifest's ``files`` entry."""
        return {"name": self.name, "sha256": self.sha256, "size": self.size}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BundleFile:
        """Parse one ``files`` entry; ``TypeError``/``ValueError`` when it is malformed.

        Args:
            data: the entry as JSON (``name``, ``sha256`` as 64 lowercase hex digits, ``size``).
        """
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
    by its slice: see ``toolkit.deploy.certificate.Certificate``); ``latency``: per batch size
    summary (ms);
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
        """The manifest's ``artifacts`` entry."""
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
        """Parse one ``artifacts`` entry; ``ValueError`` for a kind no bundle holds.

        Args:
            data: the entry as JSON (``file``, ``kind``, ``precision``, ``passed``, ``forced``,
                ``certificate``, ``latency``, ``companions``).
        """
        kind = str(data["kind"])
        if not known_kind(kind):
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
        """The ``files`` entry called ``name``; ``KeyError`` when the manifest lists none.

        Args:
            name: the file's relative POSIX name in the bundle (``artifacts/model.onnx``).
        """
        for entry in self.files:
            if entry.name == name:
                return entry
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        """``manifest.json`` as a JSON object (``dumps`` writes it)."""
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
        """The text of ``manifest.json``: strict JSON (non-finite floats as strings), indented."""
        return json.dumps(_clean(self.to_json()), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, data: Any) -> Manifest:
        """Parse a manifest; ``BundleMismatchError`` naming ``manifest.json`` when it is not one.

        Args:
            data: the parsed JSON of ``manifest.json`` (any value: what is not a manifest is refused).
        """
        if not isinstance(data, Mapping):
            raise mismatch(MANIFEST_FILE, "is not a JSON object")
        schema = data.get("schema")
        if schema != SCHEMA:
            raise mismatch(
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
            raise mismatch(MANIFEST_FILE, what) from exc


def mismatch(name: str, what: str, *, hint: str | None = None) -> BundleMismatchError:
    """The refusal of bundle file ``name``: ``BundleMismatchError`` (exit 1) saying ``what`` is wrong.

    Args:
        name: the file's name inside the bundle (or the bundle's own path).
        what: what is wrong with it, as the rest of the sentence ``bundle file 'NAME' ...``.
        hint: what to do about it, when there is something to do.
    """
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

    Args:
        name: a file name as the manifest or an archive member gives it.
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
        raise mismatch(name, bad, hint="the manifest may only name files inside the bundle; do not run it")
    return name


# --- checks ------------------------------------------------------------------------------------------


def check_manifest(manifest: Manifest) -> None:
    """The manifest agrees with itself: safe unique names (also apart from case), labels and config
    listed, every artifact and companion listed with the kind its suffix says, class counts.

    Args:
        manifest: the parsed manifest; ``BundleMismatchError`` (exit 1) naming the first file at fault.
    """
    names = [check_name(f.name) for f in manifest.files]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise mismatch(dupes[0], "is listed twice in the manifest")
    lowered = [n.lower() for n in names]
    clash = sorted({n for n in names if lowered.count(n.lower()) > 1})
    if clash:  # one of the two would overwrite the other on a case-insensitive file system
        raise mismatch(clash[0], "differs from another file only by case")
    for required in (LABELS_FILE, CONFIG_FILE):
        if required not in names:
            raise mismatch(required, "is not listed in the manifest")
    if not manifest.artifacts:
        raise mismatch(MANIFEST_FILE, "lists no artifact")
    for artifact in manifest.artifacts:
        for name in (artifact.file, *artifact.companions):
            if check_name(name) not in names:
                raise mismatch(name, "is an artifact (or its companion) the manifest does not list as a file")
        if kind_of(artifact.file) != artifact.kind:
            suffix = PurePosixPath(artifact.file).suffix.lower()
            raise mismatch(artifact.file, f"is recorded as kind '{artifact.kind}' but its suffix is '{suffix}'")
    if not manifest.class_names:
        raise mismatch(MANIFEST_FILE, "lists no class names")
    num = manifest.head_spec.get("num_classes")
    if num is not None and num != len(manifest.class_names):
        raise mismatch(MANIFEST_FILE, f"lists {len(manifest.class_names)} class names for a {num}-class head")
