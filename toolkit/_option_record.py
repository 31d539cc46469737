"""``OptionRecord``: what every export's options record does with itself, written once.

An options record (``OnnxExportOptions``, ``Pt2ExportOptions``, ``OpenVinoExportOptions``) is a
frozen dataclass that inherits this mixin and names itself in ``_WHAT``; it gets ``replace``, a
``to_json`` with ``schema_version`` (paths as strings) and a strict ``from_json``: another
``schema_version`` or a field this rehead does not know is an ``ArtifactError``, because a
record written by a newer rehead must not be half-read.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

from toolkit.errors import ArtifactError

_R = TypeVar("_R", bound="OptionRecord")


class OptionRecord:
    """The mixin (the subclass must be a dataclass).

    Class attributes:
        _WHAT: what the record is called in an error ("ONNX export options").
        _SCHEMA_VERSION: the version ``to_json`` writes and ``from_json`` reads.
    """

    _WHAT: ClassVar[str] = "options"
    _SCHEMA_VERSION: ClassVar[int] = 1

    def replace(self: _R, **changes: Any) -> _R:
        """A copy with ``changes`` applied and checked again (records are frozen).

        Args:
            **changes: the fields to change, by name (``TypeError`` for another name).
        """
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def to_json(self) -> dict[str, Any]:
        """The record as JSON, with ``schema_version``; paths become strings."""
        fields = dataclasses.asdict(self)  # type: ignore[call-overload]
        data: dict[str, Any] = {"schema_version": self._SCHEMA_VERSION}
        data.update({k: os.fspath(v) if isinstance(v, os.PathLike) else v for k, v in fields.items()})
        return data

    @classmethod
    def from_json(cls: type[_R], data: Mapping[str, Any]) -> _R:
        """Parse a ``to_json`` record; ``ArtifactError`` for another ``schema_version`` or an unknown field.

        Args:
            data: the record's JSON object (without ``schema_version``: this version's).
        """
        version = data.get("schema_version", cls._SCHEMA_VERSION)
        if version != cls._SCHEMA_VERSION or isinstance(version, bool):
            raise ArtifactError(
                f"{cls._WHAT} have schema_version {str(version)[:40]}; this rehead reads {cls._SCHEMA_VERSION}",
                hint="upgrade rehead",
            )
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - names - {"schema_version"})
        if unknown:
            raise ArtifactError(f"{cls._WHAT}: unknown field '{unknown[0]}'", hint="upgrade rehead")
        return cls(**{k: v for k, v in data.items() if k in names})
