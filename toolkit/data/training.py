"""Training data for fine-tuning: train / val (/ test) splits, labels indexed by the model's class names.

Two sources:

- ``"digits"``: the bundled 8x8 digits (``toolkit.data.digits``) at the model's input size, with
  their fixed train/val/test split. A model whose class names are digit strings gets each image
  labelled with the index of its digit's name; a model with default names (``class_<i>``) gets
  digit ``d`` as class ``d``. ``digits`` restricts the source to a subset (default: the digits
  the model has a class for).
- a folder: ``DIR/train/<class>/*`` and ``DIR/val/<class>/*`` (and optionally ``DIR/test``), or
  one ``DIR/<class>/*`` split per class with ``val_ratio``. The class folders are matched to the
  model's class names (``class_map`` renames folders whose names differ); they may cover only a
  SUBSET of the model's classes (the common case after extending a head: images of the new
  classes only). A folder that is no class of the model is refused, naming a few and a count.
  Labels are always the model's class indices.
- a CSV manifest (``FILE.csv``, ``toolkit.data.manifest``): ``path,label[,split]`` rows, labels
  being class names (``class_map`` renames them); without val rows it is split per class with
  ``val_ratio`` like a folder without ``val/``. Any subset of the classes, as for a folder.

``TrainingData.seen`` lists the model classes present in the training split; the others are
"unseen" (the trainer keeps them with ``FinetuneConfig.keep_old``).

Everything is decoded and preprocessed up front (by ``workers`` DataLoader worker processes,
``toolkit.data.decode``), so a bad file fails before any training or writing starts
(``DataError`` naming the file, class or manifest line). Splits live in memory as float32
tensors, on every process of a distributed run: fine up to some hundred thousand small images.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch

from toolkit._text import listing
from toolkit.data.class_map import read_class_map
from toolkit.errors import DataError, InvalidArgumentError
from toolkit.records import Preprocessing

Split = tuple[torch.Tensor, torch.Tensor]


@dataclasses.dataclass(frozen=True)
class TrainingData:
    """Preprocessed (N, C, H, W) float32 images and (N,) int64 labels per split.

    ``test`` is ``None`` when the source has no test split. ``augment`` is the augmentation
    that suits the source by default (no flips for digits). ``source`` describes where the data
    came from (recorded in the metrics and the lineage). Labels index ``class_names`` (the
    model's classes); ``seen`` lists the indices present in the training split (``None``: the
    labels say, see ``seen_classes``).
    """

    train: Split
    val: Split
    test: Split | None
    class_names: tuple[str, ...]
    source: str
    augment: str = "shift"
    seen: tuple[int, ...] | None = None

    def seen_classes(self) -> tuple[int, ...]:
        """Indices of the model's classes that have training images, ascending."""
        if self.seen is not None:
            return tuple(sorted(self.seen))
        return tuple(int(i) for i in torch.unique(self.train[1]).tolist())

    def unseen_classes(self) -> tuple[int, ...]:
        """Indices of the model's classes without training images: the ones to keep."""
        seen = set(self.seen_classes())
        return tuple(i for i in range(len(self.class_names)) if i not in seen)

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "train": len(self.train[1]),
            "val": len(self.val[1]),
            "test": None if self.test is None else len(self.test[1]),
            "classes_seen": len(self.seen_classes()),
            "classes_unseen": len(self.unseen_classes()),
        }


def load_training_data(
    source: str | os.PathLike[str],
    prep: Preprocessing,
    class_names: Sequence[str],
    *,
    digits: Sequence[int] | None = None,
    val_ratio: float = 0.15,
    seed: int = 0,
    class_map: str | os.PathLike[str] | Mapping[str, str] | None = None,
    workers: int = 0,
) -> TrainingData:
    """Load training data for a model with ``class_names`` and ``prep``.

    A folder or manifest may hold a subset of the classes.

    Args:
        source: ``"digits"``, a folder or a ``.csv`` manifest.
        prep: the model's preprocessing.
        class_names: the model's classes; labels are indices into them.
        digits: a subset of the digits source (labels stay the model's indices; default None: all).
        val_ratio: the fraction held out for validation, per class, from a folder without a ``val``
            sub-folder or a manifest without ``val`` rows (default 0.15).
        seed: the seed of that split (default 0).
        class_map: renames a folder's class folders to the model's class names: a mapping
            ``{folder: class}`` or a file holding a JSON object or ``folder,class`` lines
            (``read_class_map``); for a manifest it renames labels (default None).
        workers: processes that decode the images (default 0: this process); the result is the same
            whatever the count.
    """
    from toolkit.data.decode import check_workers

    check_workers(workers)
    names = tuple(class_names)
    if str(source) == "digits":
        if class_map is not None:
            raise InvalidArgumentError(
                "a class map only applies to an image folder", hint="leave class_map unset", param="class_map"
            )
        return _digits(prep, names, digits)
    if digits is not None:
        raise InvalidArgumentError(
            "a digit subset only applies to the digits source", hint="leave digits unset", param="digits"
        )
    if not 0.0 < val_ratio < 1.0:
        raise InvalidArgumentError(
            f"val_ratio must be in (0, 1), got {val_ratio}", hint="e.g. 0.15", param="val_ratio"
        )
    renames = read_class_map(class_map, names) if class_map is not None else {}
    from toolkit.data.manifest import is_manifest

    if is_manifest(source):
        return _manifest(Path(source), prep, names, val_ratio, seed, renames, workers)
    return _folder(Path(source), prep, names, val_ratio, seed, renames, workers)


# --- digits ------------------------------------------------------------------------------------
_DEFAULT_NAME = re.compile(r"class_(\d+)$")


def digit_classes(class_names: Sequence[str]) -> dict[int, int]:
    """Map digit -> class index: by name for digit-string names, ``class_<d>`` -> ``d`` otherwise.

    Args:
        class_names: the model's class names.
    """
    if all(n.isdigit() and len(n) == 1 for n in class_names):
        return {int(n): i for i, n in enumerate(class_names)}
    defaults = [_DEFAULT_NAME.match(n) for n in class_names]
    if all(m is not None and int(m.group(1)) == i for i, m in enumerate(defaults)):
        return {d: d for d in range(min(10, len(class_names)))}
    raise DataError(
        f"the digits source needs a model whose class names are digits; this one has "
        f"{listing(class_names)}",
        hint="extend the model with class_names listing 0..9, or fine-tune on an image folder",
    )


def _digits(prep: Preprocessing, names: tuple[str, ...], digits: Sequence[int] | None) -> TrainingData:
    from toolkit.data.digits import check_digits, digits_tensors

    lookup = digit_classes(names)
    wanted = check_digits(digits) if digits is not None else sorted(lookup)
    missing = [d for d in wanted if d not in lookup]
    if missing:
        raise DataError(
            f"digit(s) {listing(missing)} have no class in the model (its classes: {listing(names)})",
            hint="restrict digits to the model's classes, or extend the head first",
            param="digits",
        )
    table = torch.full((10,), -1, dtype=torch.long)
    for d in wanted:
        table[d] = lookup[d]
    splits = {}
    for split in ("train", "val", "test"):
        x, y = digits_tensors(split, prep, wanted)
        splits[split] = (x, table[y])
    label = "digits" + ("" if digits is None else f"[{','.join(map(str, wanted))}]")
    seen = tuple(sorted(lookup[d] for d in wanted))
    return TrainingData(splits["train"], splits["val"], splits["test"], names, label, augment="shift", seen=seen)


# --- image folders -------------------------------------------------------------------------------
_NEW_NAME = re.compile(r"new_\d+$")


def uncovered_classes(class_names: Sequence[str], covered: set[str]) -> list[str]:
    """The model's classes no folder covers, the new ones first: those still named ``new_<i>`` (the
    rows a padded head added without names), then the rest in the model's order.

    Args:
        class_names: the model's class names.
        covered: the class names the data has.
    """
    left = [n for n in class_names if n not in covered]
    return [n for n in left if _NEW_NAME.match(n)] + [n for n in left if not _NEW_NAME.match(n)]


def check_folder_classes(
    folder: Path, class_names: Sequence[str], class_map: Mapping[str, str] | None = None, *, param: str = "data"
) -> dict[str, str]:
    """``{model class: folder name}`` for the class sub-folders of ``folder``.

    Any subset of the model's classes is accepted. Refuses (``DataError``) folders that are no class
    of the model, naming a few and a count, and a folder with no class folder.

    Args:
        folder: the folder of class folders.
        class_names: the model's class names.
        class_map: renames folder names (``{folder: class}``) before they are matched (default None).
        param: the keyword argument that named the folder, carried by the errors (default ``data``).
    """
    from toolkit.data.images import list_class_images

    if not folder.is_dir():
        list_class_images(folder)  # raises the "does not exist" DataError
    renames = dict(class_map or {})
    found = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not found:
        raise DataError(
            f"'{folder}' has no class folders", hint="put the images of each class in DIR/<class>/", param=param
        )
    known = set(class_names)
    extra = [f for f in found if renames.get(f, f) not in known]
    if extra:
        open_classes = uncovered_classes(class_names, {renames.get(f, f) for f in found})
        example = ", ".join(f"{f},{c}" for f, c in zip(extra[:2], open_classes[:2], strict=False))
        raise DataError(
            f"folder(s) {listing(extra)} are not classes of the model "
            f"({len(extra)} of the {len(found)} class folders of '{folder}')",
            hint=f"the model's classes that this data does not cover, new ones first: {listing(open_classes)}; "
            f"rename the folders, give a class map of 'folder,class' lines"
            + (f" (e.g. {example})" if example else "")
            + ", or name the new classes when extending the head",
            param="class_map" if renames else param,
        )
    by_class: dict[str, str] = {}
    for f in found:
        cls = renames.get(f, f)
        if cls in by_class:
            raise DataError(
                f"folders '{by_class[cls]}' and '{f}' of '{folder}' are both class '{cls}'",
                hint="merge them, or fix the class map",
                param="class_map",
            )
        by_class[cls] = f
    return by_class


PerClass = dict[str, list[torch.Tensor]]
Key = TypeVar("Key")


def _read(
    folder: Path, prep: Preprocessing, names: tuple[str, ...], renames: Mapping[str, str], workers: int
) -> PerClass:
    """Preprocessed images per model class name, only the classes the folder has."""
    from toolkit.data.images import list_class_images

    by_class = check_folder_classes(folder, names, renames)
    files = list_class_images(folder, list(by_class.values()))
    return _decode({cls: files[by_class[cls]] for cls in names if cls in by_class}, prep, workers)


def _decode(files: Mapping[Key, Sequence[Path]], prep: Preprocessing, workers: int) -> dict[Key, list[torch.Tensor]]:
    """Decode every group's files in one pass (one pool of workers), back per group."""
    from toolkit.data.decode import decode_images

    flat = [f for cls_files in files.values() for f in cls_files]
    images = iter(decode_images(flat, prep, workers=workers))
    return {cls: [next(images) for _ in cls_files] for cls, cls_files in files.items()}


def _stack(per_class: PerClass, names: tuple[str, ...]) -> Split:
    """Images in the model's class order; labels are the model's class indices."""
    images = [img for cls in names for img in per_class.get(cls, [])]
    labels = [i for i, cls in enumerate(names) for _ in per_class.get(cls, [])]
    return torch.stack(images), torch.tensor(labels, dtype=torch.long)


def _seen(per_class: PerClass, names: tuple[str, ...]) -> tuple[int, ...]:
    return tuple(i for i, cls in enumerate(names) if per_class.get(cls))


def _folder(
    root: Path,
    prep: Preprocessing,
    names: tuple[str, ...],
    val_ratio: float,
    seed: int,
    renames: Mapping[str, str],
    workers: int,
) -> TrainingData:
    if not root.is_dir():
        raise DataError(
            f"data folder '{root}' does not exist",
            hint="give 'digits', a folder of class folders or a .csv manifest",
            param="data",
        )
    test = _stack(_read(root / "test", prep, names, renames, workers), names) if (root / "test").is_dir() else None
    if (root / "train").is_dir():
        train_images = _read(root / "train", prep, names, renames, workers)
        if (root / "val").is_dir():
            val = _stack(_read(root / "val", prep, names, renames, workers), names)
            train = _stack(train_images, names)
            seen = _seen(train_images, names)
            return TrainingData(train, val, test, names, str(root), augment="shift-flip", seen=seen)
    else:
        train_images = _read(root, prep, names, renames, workers)
    return _split(train_images, test, names, val_ratio, seed, str(root))


def _manifest(
    path: Path,
    prep: Preprocessing,
    names: tuple[str, ...],
    val_ratio: float,
    seed: int,
    renames: Mapping[str, str],
    workers: int,
) -> TrainingData:
    from toolkit.data.manifest import read_manifest

    manifest = read_manifest(path, names, renames)
    per_split: dict[str, dict[str, list[Path]]] = {"train": {}, "val": {}, "test": {}}
    for row in manifest.rows:
        per_split[row.split].setdefault(row.label, []).append(row.path)
    # one pool of workers for the whole file; classes in the model's order, rows in the file's
    ordered = {(split, cls): files[cls] for split, files in per_split.items() for cls in names if cls in files}
    decoded = _decode(ordered, prep, workers)
    parts: dict[str, PerClass] = {split: {} for split in per_split}
    for (split, cls), images in decoded.items():
        parts[split][cls] = images
    if not parts["train"]:
        raise DataError(f"manifest '{path}' has no train rows", hint="mark rows split=train or leave split empty")
    test = _stack(parts["test"], names) if parts["test"] else None
    if parts["val"]:
        train, val = _stack(parts["train"], names), _stack(parts["val"], names)
        return TrainingData(train, val, test, names, str(path), augment="shift-flip", seen=_seen(parts["train"], names))
    return _split(parts["train"], test, names, val_ratio, seed, str(path))


def _split(
    train_images: PerClass, test: Split | None, names: tuple[str, ...], val_ratio: float, seed: int, root: str
) -> TrainingData:
    """Hold out ``val_ratio`` of each class (at least one image where it has two) with ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    train_part: PerClass = {}
    val_part: PerClass = {}
    # the model's class order, not the folder's, so that a renamed folder does not change the draw
    for cls in names:
        if cls not in train_images:
            continue
        imgs = train_images[cls]
        order = torch.randperm(len(imgs), generator=generator).tolist()
        n_val = min(len(imgs) - 1, max(1, round(val_ratio * len(imgs)))) if len(imgs) > 1 else 0
        val_part[cls] = [imgs[i] for i in order[:n_val]]
        train_part[cls] = [imgs[i] for i in order[n_val:]]
    if not any(val_part.values()):
        raise DataError(
            f"'{root}' has too few images to hold out a validation split",
            hint="add a val/ folder (a manifest: rows with split val)",
        )
    return TrainingData(
        _stack(train_part, names),
        _stack(val_part, names),
        test,
        names,
        f"{root} (val {val_ratio:g} split, seed {seed})",
        augment="shift-flip",
        seen=_seen(train_part, names),
    )


# --- a few labelled images (old examples) --------------------------------------------------------
def load_examples(
    source: str | os.PathLike[str],
    prep: Preprocessing,
    class_names: Sequence[str],
    *,
    class_map: str | os.PathLike[str] | Mapping[str, str] | None = None,
    workers: int = 0,
    param: str = "old_examples",
) -> Split:
    """A few labelled images, any number per class from one. Labels are the model's class indices.

    Folders or labels that are no class of the model are refused (``DataError`` carrying ``param``),
    as for ``load_training_data``.

    Args:
        source: a folder ``DIR/<class>/*`` (class folders named like the model's classes) or a
            ``.csv`` manifest (every row, whatever its split).
        prep: the model's preprocessing.
        class_names: the model's class names.
        class_map: renames class folders (or a manifest's labels) to the model's class names: a
            mapping ``{folder: class}`` or a file (``read_class_map``; default None).
        workers: processes that decode the images (default 0: this process).
        param: the keyword argument that named ``source``, carried by the errors (default ``old_examples``).
    """
    from toolkit.data.decode import check_workers
    from toolkit.data.manifest import is_manifest, read_manifest

    check_workers(workers)
    names = tuple(class_names)
    renames = read_class_map(class_map, names) if class_map is not None else {}
    root = Path(source)
    if is_manifest(root):
        per_class: dict[str, list[Path]] = {}
        for row in read_manifest(root, names, renames, param=param).rows:
            per_class.setdefault(row.label, []).append(row.path)
        decoded = _decode({cls: per_class[cls] for cls in names if cls in per_class}, prep, workers)
    elif root.is_dir():
        from toolkit.data.images import list_class_images

        by_class = check_folder_classes(root, names, renames, param=param)
        files = list_class_images(root, list(by_class.values()))
        decoded = _decode({cls: files[by_class[cls]] for cls in names if cls in by_class}, prep, workers)
    else:
        raise DataError(
            f"'{root}' does not exist",
            hint="give a folder of class folders (DIR/<class>/*) or a .csv manifest",
            param=param,
        )
    if not any(decoded.values()):
        raise DataError(f"no images in '{root}'", hint="give at least one image of a class", param=param)
    return _stack(decoded, names)
