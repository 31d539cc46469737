"""``Pt2ExportOptions``: what a ``.pt2`` export makes, declared once.

``export_pt2`` reads the record, ``rehead export pt2`` builds it from the flags a user gave (an
absent flag takes the default here), and reports serialise it (``to_json``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from toolkit.errors import ArtifactError

SCHEMA_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Pt2ExportOptions:
    """The settings of one AOTInductor export (``export_pt2``).

    Args:
        dynamic_batch: a dynamic batch axis, 1-4096 (default True); False fixes it at 1.
        device: what the package is compiled for and will run on: ``cpu`` (the default),
            ``cuda`` or ``cuda:N``; checked when the export starts (``toolkit._args.check_device``).
    """

    dynamic_batch: bool = True
    device: str = "cpu"

    def replace(self, **changes: Any) -> Pt2ExportOptions:
        """A copy with ``changes`` applied (records are frozen).

        Args:
            **changes: the fields to change, by name.
        """
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Pt2ExportOptions:
        """Parse a ``to_json`` record; ``ArtifactError`` for another ``schema_version`` or an unknown field.

        Args:
            data: the record's JSON object (without ``schema_version``: this version's).
        """
        version = data.get("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION or isinstance(version, bool):
            raise ArtifactError(
                f"pt2 export options have schema_version {str(version)[:40]}; this rehead reads {SCHEMA_VERSION}",
                hint="upgrade rehead",
            )
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names - {"schema_version"})
        if unknown:
            raise ArtifactError(f"pt2 export options: unknown field '{unknown[0]}'", hint="upgrade rehead")
        return cls(**{k: v for k, v in data.items() if k in names})
