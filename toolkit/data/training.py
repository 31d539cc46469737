"""Training data for fine-tuning: train / val (/ test) splits, labels indexed by the model's class names.

Two sources:

- ``"digits"``: the bundled 8x8 digits (``toolkit.data.digits``) at the model's input size, with
  their fixed train/val/test split. A model whose class names are digit strings gets each image
  labelled with the index of its digit's name; a model with default names (``class_<i>``) gets
  digit ``d`` as class ``d``. ``digits`` restricts the source to a subset (default: the digits
  the model has a class for).
- a folder: ``DIR/train/<class>/*`` and ``DIR/val/<class>/*`` (and optionally ``DIR/test``), or
  one ``DIR/<class>/*`` split per class with ``val_ratio``. The class folders must be exactly the
  model's class names (the error lists the difference); labels follow the model's order.

Everything is decoded and preprocessed up front, so a bad file fails before any training or
writing starts (``DataError`` naming the file or class). Splits live in memory as float32
tensors: fine for the small, CPU-sized sets this stage is for.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from toolkit._text import listing
from toolkit.errors import DataError, InvalidArgumentError
from toolkit.records import Preprocessing

Split = tuple[torch.Tensor, torch.Tensor]


@dataclasses.dataclass(frozen=True)
class TrainingData:
    """Preprocessed (N, C, H, W) float32 images and (N,) int64 labels per split.

    ``test`` is ``None`` when the source has no test split. ``augment`` is the augmentation
    that suits the source by default (no flips for digits). ``source`` describes where the data
    came from (recorded in the metrics and the lineage).
    """

    train: Split
    val: Split
    test: Split | None
    class_names: tuple[str, ...]
    source: str
    augment: str = "shift"

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "train": len(self.train[1]),
            "val": len(self.val[1]),
            "test": None if self.test is None else len(self.test[1]),
        }


def load_training_data(
    source: str | os.PathLike[str],
    prep: Preprocessing,
    class_names: Sequence[str],
    *,
    digits: Sequence[int] | None = None,
    val_ratio: float = 0.15,
    seed: int = 0,
) -> TrainingData:
    """Load ``source`` (``"digits"`` or a folder) for a model with ``class_names`` and ``prep``.

    ``digits`` picks a subset of the digits source; ``val_ratio`` (a fraction, default 0.15) is
    used only for a folder without a ``val`` sub-folder, split per class with ``seed``.
    """
    names = tuple(class_names)
    if str(source) == "digits":
        return _digits(prep, names, digits)
    if digits is not None:
        raise InvalidArgumentError(
            "a digit subset only applies to the digits source", hint="leave digits unset", param="digits"
        )
    if not 0.0 < val_ratio < 1.0:
        raise InvalidArgumentError(
            f"val_ratio must be in (0, 1), got {val_ratio}", hint="e.g. 0.15", param="val_ratio"
        )
    return _folder(Path(source), prep, names, val_ratio, seed)


# --- digits ------------------------------------------------------------------------------------
_DEFAULT_NAME = re.compile(r"class_(\d+)$")


def digit_classes(class_names: Sequence[str]) -> dict[int, int]:
    """Map digit -> class index: by name for digit-string names, ``class_<d>`` -> ``d`` otherwise."""
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
    return TrainingData(splits["train"], splits["val"], splits["test"], names, label, augment="shift")


# --- image folders -------------------------------------------------------------------------------
def check_folder_classes(folder: Path, class_names: Sequence[str]) -> None:
    """The class sub-folders of ``folder`` must be exactly ``class_names``; list the difference."""
    from toolkit.data.images import list_class_images

    if not folder.is_dir():
        list_class_images(folder)  # raises the "does not exist" DataError
    found = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    missing = [c for c in class_names if c not in found]
    extra = [c for c in found if c not in class_names]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"no folder for the model's class(es) {listing(missing)}")
        if extra:
            parts.append(f"folder(s) {listing(extra)} are not classes of the model")
        raise DataError(
            f"the classes of '{folder}' do not match the model's: {'; '.join(parts)}",
            hint=f"the model's classes are {listing(class_names)}; rename the folders or extend the head",
        )


def _read(folder: Path, prep: Preprocessing, names: tuple[str, ...]) -> dict[str, list[torch.Tensor]]:
    from toolkit.data.images import list_class_images, load_image, preprocess_image

    check_folder_classes(folder, names)
    files = list_class_images(folder, names)
    return {cls: [preprocess_image(load_image(f, prep.channels), prep) for f in files[cls]] for cls in names}


def _stack(per_class: dict[str, list[torch.Tensor]], names: tuple[str, ...]) -> Split:
    images = [img for cls in names for img in per_class[cls]]
    labels = [i for i, cls in enumerate(names) for _ in per_class[cls]]
    return torch.stack(images), torch.tensor(labels, dtype=torch.long)


def _folder(
    root: Path, prep: Preprocessing, names: tuple[str, ...], val_ratio: float, seed: int
) -> TrainingData:
    if not root.is_dir():
        raise DataError(
            f"data folder '{root}' does not exist", hint="give 'digits' or a folder of class folders"
        )
    test = _stack(_read(root / "test", prep, names), names) if (root / "test").is_dir() else None
    if (root / "train").is_dir():
        train_images = _read(root / "train", prep, names)
        if (root / "val").is_dir():
            val = _stack(_read(root / "val", prep, names), names)
            train = _stack(train_images, names)
            return TrainingData(train, val, test, names, str(root), augment="shift-flip")
    else:
        train_images = _read(root, prep, names)
    generator = torch.Generator().manual_seed(seed)
    train_part: dict[str, list[torch.Tensor]] = {}
    val_part: dict[str, list[torch.Tensor]] = {}
    for cls in names:
        imgs = train_images[cls]
        order = torch.randperm(len(imgs), generator=generator).tolist()
        n_val = min(len(imgs) - 1, max(1, round(val_ratio * len(imgs)))) if len(imgs) > 1 else 0
        val_part[cls] = [imgs[i] for i in order[:n_val]]
        train_part[cls] = [imgs[i] for i in order[n_val:]]
    if not any(val_part.values()):
        raise DataError(
            f"'{root}' has too few images to hold out a validation split", hint="add a val/ folder"
        )
    return TrainingData(
        _stack(train_part, names),
        _stack(val_part, names),
        test,
        names,
        f"{root} (val {val_ratio:g} split, seed {seed})",
        augment="shift-flip",
    )
