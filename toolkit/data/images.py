"""Reading images and class folders, with errors that name the file or class."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from toolkit._text import listing
from toolkit.errors import DataError
from toolkit.records import Preprocessing

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def load_image(path: str | os.PathLike[str], channels: int = 3) -> np.ndarray:
    """Decode an image file to an (H, W, C) uint8 array, RGB (or L if ``channels`` is 1).

    Args:
        path: the image file.
        channels: 3 for RGB, 1 for greyscale (default 3).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            converted = img.convert("L" if channels == 1 else "RGB")
    except FileNotFoundError as exc:
        raise DataError(f"image '{path}' does not exist", hint="check the path") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"cannot read image '{path}': {exc}", hint="remove or replace the file") from exc
    arr = np.array(converted, dtype=np.uint8)  # a writable copy: torch.from_numpy warns on read-only
    return arr[:, :, None] if arr.ndim == 2 else arr


#: ``Preprocessing.interpolation`` -> ``torch.nn.functional.interpolate`` mode
_MODES = {"bilinear": "bilinear", "bicubic": "bicubic", "nearest": "nearest", "nearest-exact": "nearest-exact"}


def _resize(tensor: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    smooth = mode in ("bilinear", "bicubic")
    out = torch.nn.functional.interpolate(
        tensor[None], size=size, mode=mode, align_corners=False if smooth else None, antialias=smooth
    )[0]
    return out.clamp_(0.0, 1.0) if mode == "bicubic" else out  # bicubic overshoots the pixel range


def preprocess_image(image: np.ndarray, prep: Preprocessing) -> torch.Tensor:
    """(H, W, C) uint8 -> normalised (C, H, W) float32 at ``prep.input_size``.

    With ``prep.resize_size`` (how pretrained weights were evaluated, torchvision's
    ``Resize(resize_size)`` + ``CenterCrop(input_size)``): the shorter side is resized to
    ``resize_size`` keeping the aspect ratio, then the centre ``input_size`` is cropped. Without,
    the image is resized straight to ``input_size``. Both with ``prep.interpolation`` (antialiased).

    Args:
        image: the decoded image, (H, W, C) uint8.
        prep: the model's preprocessing.
    """
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)
    if tensor.shape[0] != prep.channels:
        grey = prep.channels == 1
        tensor = tensor.mean(0, keepdim=True) if grey else tensor[:1].expand(prep.channels, -1, -1)
    mode = _MODES.get(prep.interpolation, "bilinear")
    if prep.resize_size is not None:
        h, w = tensor.shape[1:]
        scale = prep.resize_size / min(h, w)
        size = (max(prep.input_size[0], round(h * scale)), max(prep.input_size[1], round(w * scale)))
        if (h, w) != size:
            tensor = _resize(tensor, size, mode)
        top = round((size[0] - prep.input_size[0]) / 2.0)  # as torchvision's CenterCrop
        left = round((size[1] - prep.input_size[1]) / 2.0)
        tensor = tensor[:, top : top + prep.input_size[0], left : left + prep.input_size[1]]
    elif tuple(tensor.shape[1:]) != tuple(prep.input_size):
        tensor = _resize(tensor, prep.input_size, mode)
    mean = torch.tensor(prep.mean, dtype=torch.float32)[:, None, None]
    std = torch.tensor(prep.std, dtype=torch.float32)[:, None, None]
    return (tensor - mean) / std


def list_class_images(
    root: str | os.PathLike[str], class_names: Sequence[str] | None = None
) -> dict[str, list[Path]]:
    """``root/<class>/<image>`` as {class: [files]}; every class must exist and hold images.

    Files that are not images by extension are reported, not skipped.

    Args:
        root: the folder of class folders.
        class_names: only these sub-folders are read, and all must exist (default None: every
            sub-folder, in sorted order).
    """
    base = Path(root)
    if not base.is_dir():
        raise DataError(
            f"data folder '{base}' does not exist", hint="give a folder with one sub-folder per class"
        )
    folders = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    wanted = list(class_names) if class_names is not None else folders
    missing = [c for c in wanted if c not in folders]
    if missing:
        raise DataError(
            f"'{base}' has no folder for class(es) {listing(missing)}",
            hint=f"found folders: {listing(folders) or 'none'}",
        )
    result: dict[str, list[Path]] = {}
    for cls in wanted:
        files = sorted(p for p in (base / cls).iterdir() if p.is_file() and not p.name.startswith("."))
        strays = [p for p in files if p.suffix.lower() not in IMAGE_EXTENSIONS]
        if strays:
            raise DataError(
                f"'{strays[0]}' is not an image file (class '{cls}')",
                hint=f"keep only {', '.join(IMAGE_EXTENSIONS)} files in class folders",
            )
        if not files:
            raise DataError(f"class '{cls}' in '{base}' has no images", hint="add images or remove the class")
        result[cls] = files
    return result
