"""CSV manifests: labelled images listed in a file, for data sets with no folder layout.

A manifest is a UTF-8 CSV file whose first line is a header naming the columns ``path`` and
``label`` (any order) and optionally ``split`` (``train``, ``val`` or ``test``); other columns
are ignored. ``path`` is relative to the CSV file's folder (absolute paths are taken as they
are); ``label`` is a class name of the model (after ``class_map`` renames it). An empty
``split`` cell means ``train``. Every bad row is reported by its line number, a few at a time
and a count, in one ``DataError``: a short row, an empty path, a file that does not exist or is
no image, a label that is no class of the model, an unknown split.
"""

from __future__ import annotations

import csv
import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from toolkit._text import listing
from toolkit.errors import DataError

SPLIT_NAMES = ("train", "val", "test")
MANIFEST_SUFFIX = ".csv"


def is_manifest(source: str | os.PathLike[str]) -> bool:
    """Whether ``source`` names a CSV manifest (by its suffix) rather than a folder.

    Args:
        source: a path, or ``"digits"``.
    """
    return Path(source).suffix.lower() == MANIFEST_SUFFIX


@dataclasses.dataclass(frozen=True)
class ManifestRow:
    """One image of a manifest: its file, its class name (renamed), its split, its line (1-based)."""

    path: Path
    label: str
    split: str
    line: int


@dataclasses.dataclass(frozen=True)
class Manifest:
    """The rows of a manifest file, checked. ``has_split``: the file has a ``split`` column."""

    source: Path
    rows: tuple[ManifestRow, ...]
    has_split: bool

    def split(self, name: str) -> tuple[ManifestRow, ...]:
        """The rows of one split.

        Args:
            name: the split: ``train``, ``val`` or ``test``.
        """
        return tuple(r for r in self.rows if r.split == name)


def read_manifest(
    path: str | os.PathLike[str],
    class_names: Sequence[str] | None = None,
    class_map: Mapping[str, str] | None = None,
    *,
    param: str = "data",
) -> Manifest:
    """Read and check the manifest at ``path``.

    Args:
        path: the CSV file.
        class_names: the model's classes, which labels must be among (default None: any label).
        class_map: renames labels (``{label: class}``) before they are checked (default None).
        param: the keyword argument that named the file, carried by the errors (default ``data``).
    """
    from toolkit.data.images import IMAGE_EXTENSIONS

    source = Path(path)
    if not source.is_file():
        raise DataError(
            f"manifest '{source}' does not exist", hint="give a CSV file with a path,label header", param=param
        )
    try:
        with source.open(newline="", encoding="utf-8-sig") as f:
            lines = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read manifest '{source}': {exc}", hint="save it as UTF-8 CSV", param=param) from exc
    header = [h.strip().lower() for h in lines[0]] if lines else []
    if "path" not in header or "label" not in header:
        raise DataError(
            f"manifest '{source}' line 1: the header must name the columns path and label, got "
            f"{','.join(header) or 'nothing'}",
            hint="first line: path,label (optionally ,split)",
            param=param,
        )
    col = {name: header.index(name) for name in ("path", "label", "split") if name in header}
    known = set(class_names) if class_names is not None else None
    renames = dict(class_map or {})
    base = source.parent
    rows: list[ManifestRow] = []
    problems: list[str] = []
    for number, cells in enumerate(lines[1:], start=2):
        if not any(c.strip() for c in cells):
            continue  # blank lines are allowed, e.g. at the end
        if len(cells) < len(header):
            problems.append(f"line {number}: {len(cells)} of the {len(header)} columns")
            continue
        raw_path, raw_label = cells[col["path"]].strip(), cells[col["label"]].strip()
        split = cells[col["split"]].strip().lower() if "split" in col else ""
        split = split or "train"
        if not raw_path:
            problems.append(f"line {number}: empty path")
            continue
        file = Path(raw_path) if Path(raw_path).is_absolute() else base / raw_path
        label = renames.get(raw_label, raw_label)
        if not raw_label:
            problems.append(f"line {number}: empty label")
        elif known is not None and label not in known:
            problems.append(f"line {number}: label '{raw_label}' is no class of the model")
        elif split not in SPLIT_NAMES:
            problems.append(f"line {number}: split '{split}' is not one of {', '.join(SPLIT_NAMES)}")
        elif not file.is_file():
            problems.append(f"line {number}: '{raw_path}' does not exist (looked for '{file}')")
        elif file.suffix.lower() not in IMAGE_EXTENSIONS:
            problems.append(f"line {number}: '{raw_path}' is not an image file")
        else:
            rows.append(ManifestRow(file, label, split, number))
    if problems:
        classes = f"; the model's classes are {listing(sorted(known))}" if known is not None else ""
        raise DataError(
            f"manifest '{source}': {len(problems)} bad row(s): {listing(problems, sep='; ', limit=3)}",
            hint=f"fix or remove those rows (paths are relative to the CSV's folder){classes}",
            param=param,
        )
    if not rows:
        raise DataError(f"manifest '{source}' lists no images", hint="add path,label rows", param=param)
    return Manifest(source, tuple(rows), "split" in col)
