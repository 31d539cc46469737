"""``read_class_map``: which model class each data folder holds, when the names differ.

A class map is a mapping ``{folder name: model class name}``, or a file holding a JSON object of
that form or ``folder,class`` lines (blank lines and ``#`` comments skipped).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from toolkit._text import listing
from toolkit.errors import DataError


def read_class_map(
    source: str | os.PathLike[str] | Mapping[str, str], class_names: Sequence[str]
) -> dict[str, str]:
    """``{folder name: model class name}`` from a mapping or a file.

    Every target must be one of ``class_names`` and no two folders may map to one class
    (``DataError``, ``param="class_map"``).

    Args:
        source: a mapping ``{folder: class}``, or a file holding a JSON object or ``folder,class``
            lines (blank lines and lines starting with ``#`` are skipped).
        class_names: the model's class names.
    """
    if isinstance(source, Mapping):
        pairs = [(str(k), str(v)) for k, v in source.items()]
        where = "the class map"
    else:
        path = Path(source)
        where = f"class map '{path}'"
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise DataError(
                f"cannot read {where}: {exc.strerror or exc}",
                hint="give a JSON object {folder: class} or 'folder,class' lines",
                param="class_map",
            ) from exc
        pairs = _parse_class_map(text, where)
    known = set(class_names)
    unknown = [v for _, v in pairs if v not in known]
    if unknown:
        raise DataError(
            f"{where} maps to {len(unknown)} name(s) that are not classes of the model: {listing(unknown)}",
            hint=f"the model's classes are {listing(class_names)}",
            param="class_map",
        )
    targets: dict[str, str] = {}
    for folder, cls in pairs:
        if cls in targets and targets[cls] != folder:
            raise DataError(
                f"{where} maps both '{targets[cls]}' and '{folder}' to class '{cls}'",
                hint="merge the two folders, or map each to its own class",
                param="class_map",
            )
        targets[cls] = folder
    return dict(pairs)


def _parse_class_map(text: str, where: str) -> list[tuple[str, str]]:
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where} is not valid JSON: {exc.msg} (line {exc.lineno})", param="class_map") from exc
        if not all(isinstance(v, str) for v in data.values()):
            raise DataError(f"{where}: every value must be a class name (a string)", param="class_map")
        return [(str(k), v) for k, v in data.items()]
    pairs = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 2 or not all(parts):
            raise DataError(
                f"{where} line {number} is not 'folder,class': {line[:80]!r}",
                hint="one 'folder,class' pair per line, or a JSON object",
                param="class_map",
            )
        pairs.append((parts[0], parts[1]))
    return pairs
