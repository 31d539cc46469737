"""``load_images``: every image under a folder, without labels (for measuring retention).

Labels are not needed to compare two models' predictions, so any images the user has will do:
the folder is searched recursively (class sub-folders or none), in sorted path order.
``"digits"`` stands for the bundled digits' test split, all ten digits; a ``.csv`` manifest
(``toolkit.data.manifest``) for every file it lists, in its order.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from toolkit._args import positive_int
from toolkit.errors import DataError
from toolkit.records import Preprocessing


def load_images(
    source: str | os.PathLike[str], prep: Preprocessing, *, limit: int | None = None, param: str = "data"
) -> torch.Tensor:
    """Preprocessed (N, C, H, W) float32 images from ``source`` (a folder, or ``"digits"``).

    ``limit`` keeps the first that many images (sorted by path). Errors carry ``param``, the
    keyword argument that named the folder.
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
