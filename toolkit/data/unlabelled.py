"""``load_images``: every image under a folder, without labels (for measuring retention).

Labels are not needed to compare two models' predictions, so any images the user has will do:
the folder is searched recursively (class sub-folders or none), in sorted path order.
``"digits"`` stands for the bundled digits' test split, all ten digits; a ``.csv`` manifest
(``toolkit.data.manifest``) for every file it lists, in its order. ``load_retention_images``
takes only the images of the classes being kept when the source says which class each is.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from toolkit._args import positive_int
from toolkit.errors import DataError
from toolkit.records import Preprocessing


def load_images(
    source: str | os.PathLike[str], prep: Preprocessing, *, limit: int | None = None, param: str = "data"
) -> torch.Tensor:
    """Preprocessed (N, C, H, W) float32 images from ``source``.

    Args:
        source: a folder (images in any sub-folder), a ``.csv`` manifest, or ``"digits"`` (the test split).
        prep: the model's preprocessing.
        limit: keep the first that many images, sorted by path (a manifest's in its order; default
            None: all).
        param: the keyword argument that named ``source``, carried by the errors (default ``data``).
    """
    if limit is not None:
        positive_int(limit, "limit")
    if str(source) == "digits":
        from toolkit.data.digits import digits_tensors

        images = digits_tensors("test", prep)[0]
        return images[:limit] if limit is not None else images
    from toolkit.data.images import IMAGE_EXTENSIONS, load_image, preprocess_image

    root = Path(source)
    if root.suffix.lower() == ".csv":
        from toolkit.data.decode import decode_images
        from toolkit.data.manifest import read_manifest

        rows = read_manifest(root, param=param).rows
        return torch.stack(decode_images([r.path for r in rows[:limit]], prep))
    if not root.is_dir():
        raise DataError(f"image folder '{root}' does not exist", hint="give a folder of images", param=param)
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and p.suffix.lower() in IMAGE_EXTENSIONS
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    if limit is not None:
        files = files[:limit]
    if not files:
        raise DataError(
            f"no image files under '{root}'",
            hint=f"add {', '.join(IMAGE_EXTENSIONS[:4])}, ... files (in any sub-folders)",
            param=param,
        )
    return torch.stack([preprocess_image(load_image(f, prep.channels), prep) for f in files])


def load_retention_images(
    source: str | os.PathLike[str],
    prep: Preprocessing,
    class_names: Sequence[str],
    keep: Sequence[int],
    *,
    param: str = "retention_data",
) -> tuple[torch.Tensor, bool]:
    """Images to measure the retention of the classes ``keep`` on, and whether they are known to be
    images of those classes.

    When ``source`` says which class each image is (``"digits"`` for a model whose classes are
    digits: the test split; class folders all named like the model's classes; a manifest whose
    labels are all classes of the model), only the images of the ``keep`` classes are taken
    (``True``). Otherwise every image, labels unused (``False``), as ``load_images``.

    Args:
        source: ``"digits"``, a folder or a ``.csv`` manifest.
        prep: the model's preprocessing.
        class_names: the model's class names.
        keep: the kept classes, as indices into ``class_names``.
        param: the keyword argument that named ``source``, carried by the errors (default ``retention_data``).
    """
    from toolkit.data.manifest import is_manifest, read_manifest

    wanted = {class_names[i] for i in keep}
    root = Path(source)
    if str(source) == "digits":
        from toolkit.data.digits import digits_tensors
        from toolkit.data.training import digit_classes

        try:
            lookup = digit_classes(class_names)
        except DataError:  # a model whose classes are not digits: the digits are just images
            lookup = {}
        digits = [d for d, i in lookup.items() if i in set(keep)]
        if digits:
            return digits_tensors("test", prep, sorted(digits))[0], True
    elif is_manifest(root):
        rows = read_manifest(root, param=param).rows
        if rows and all(r.label in class_names for r in rows) and any(r.label in wanted for r in rows):
            from toolkit.data.decode import decode_images

            return torch.stack(decode_images([r.path for r in rows if r.label in wanted], prep)), True
    elif root.is_dir():
        folders = [p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
        if folders and all(f in class_names for f in folders) and wanted & set(folders):
            from toolkit.data.images import list_class_images, load_image, preprocess_image

            files = list_class_images(root, sorted(wanted & set(folders)))
            images = [preprocess_image(load_image(f, prep.channels), prep) for fs in files.values() for f in fs]
            return torch.stack(images), True
    return load_images(source, prep, param=param), False
