"""``load_samples``: real images for calibration, validation and imprinting, from one place."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from toolkit._args import positive_int
from toolkit.errors import DataError
from toolkit.records import Preprocessing


def load_samples(
    source: str | os.PathLike[str],
    prep: Preprocessing,
    *,
    split: str = "test",
    n: int | None = None,
    class_names: Sequence[str] | None = None,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Preprocessed images (N, C, H, W) float32 and labels (N,) int64.

    Args:
        source: ``"digits"`` (the bundled digits), a folder laid out ``DIR/<class>/*`` or
            ``DIR/<split>/<class>/*``, or a ``.csv`` manifest (``toolkit.data.manifest``).
        prep: the model's preprocessing.
        split: the digits' split, a folder's ``DIR/<split>`` when it has one, or a manifest's rows of
            that split when it has a split column (else every row; default ``test``).
        n: draw that many samples with ``seed`` (stratified order is not guaranteed; the draw is
            reproducible; default None: all).
        class_names: labels are indices into these (the digits: only the digits among them; a
            folder: only those class folders); default None: the sorted class folders or labels,
            or the digits themselves.
        seed: the seed of the ``n`` draw (default 0).
    """
    if n is not None:
        positive_int(n, "n")
    if str(source) == "digits":
        from toolkit.data.digits import digits_tensors

        digits = None
        if class_names is not None:
            try:
                digits = [int(c) for c in class_names]
            except ValueError:
                digits = None
        x, y = digits_tensors(split, prep, digits)
        if class_names is not None and digits is not None:
            lookup = {d: i for i, d in enumerate(digits)}
            y = torch.tensor([lookup[int(v)] for v in y], dtype=torch.long)
    elif Path(source).suffix.lower() == ".csv":
        x, y = _manifest(Path(source), prep, split, class_names)
    else:
        x, y = _folder(Path(source), prep, split, class_names)
    if n is not None and n < len(x):
        pick = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
        x, y = x[pick], y[pick]
    return x, y


def _folder(
    root: Path, prep: Preprocessing, split: str, class_names: Sequence[str] | None
) -> tuple[torch.Tensor, torch.Tensor]:
    from toolkit.data.images import list_class_images, load_image, preprocess_image

    base = root / split if (root / split).is_dir() else root
    files = list_class_images(base, class_names)
    names = list(files)
    images, labels = [], []
    for label, cls in enumerate(names):
        for f in files[cls]:
            images.append(preprocess_image(load_image(f, prep.channels), prep))
            labels.append(label)
    if not images:
        raise DataError(f"no images under '{base}'")
    return torch.stack(images), torch.tensor(labels, dtype=torch.long)


def _manifest(
    path: Path, prep: Preprocessing, split: str, class_names: Sequence[str] | None
) -> tuple[torch.Tensor, torch.Tensor]:
    from toolkit.data.decode import decode_images
    from toolkit.data.manifest import read_manifest

    manifest = read_manifest(path, class_names)
    rows = manifest.split(split) if manifest.has_split else manifest.rows
    if not rows:
        raise DataError(f"manifest '{path}' has no rows of split '{split}'", hint=f"mark some rows split={split}")
    names = list(class_names) if class_names is not None else sorted({r.label for r in rows})
    index = {name: i for i, name in enumerate(names)}
    images = decode_images([r.path for r in rows], prep)
    return torch.stack(images), torch.tensor([index[r.label] for r in rows], dtype=torch.long)
