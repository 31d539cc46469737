"""INT8 calibration data: where it comes from (asked for, or the model's own training data) and the images.

Calibration must see what the model will see. ``calib=None`` therefore means the data the model
directory's lineage records for its fine-tuning (``{"stage": "finetune", "data": ...}``), never a
bundled set that fits only digit models; with nothing recorded the caller must say.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import torch

from toolkit.errors import DataError, InvalidArgumentError
from toolkit.records import ModelConfig

# How toolkit.data.training describes a flat folder split into train/val on the fly.
_SPLIT_SUFFIX = re.compile(r"^(?P<root>.+) \(val [^,()]+ split, seed -?\d+\)$")
_NO_DATA_HINT = (
    "pass calib= a folder of the images the model will see (DIR/<class>/* or DIR/train/<class>/*), "
    "or calib='digits' for a model trained on the bundled digits"
)


@dataclasses.dataclass(frozen=True)
class Calibration:
    """The calibration data to use: ``source`` (``"digits"`` or a folder) and how it was chosen.

    ``origin`` is ``explicit`` (the caller passed it) or ``lineage: <data as recorded>``.
    """

    source: str
    origin: str


def recorded_data(config: ModelConfig) -> str | None:
    """The training data the newest lineage step records (its ``data`` field), or None.

    Args:
        config: the model's config.
    """
    for step in reversed(config.lineage):
        data = step.get("data")
        if isinstance(data, str) and data:
            return data
    return None


def choose_calibration(calib: str | os.PathLike[str] | None, config: ModelConfig) -> Calibration:
    """``calib`` as given, or the fine-tuning data recorded in ``config.lineage``.

    A recorded ``digits`` (or a digit subset, ``digits[1,2]``) calibrates on the bundled digits; a
    recorded folder must still exist (a relative path is read from the current directory).
    ``InvalidArgumentError`` (``param="calib"``) when nothing usable is recorded.

    Args:
        calib: the calibration data: ``"digits"`` or a folder; None: the data the lineage records.
        config: the model's config (its lineage).
    """
    if calib is not None:
        return Calibration(os.fspath(calib), "explicit")
    data = recorded_data(config)
    if data is None:
        raise InvalidArgumentError(
            "int8 needs calibration images and the model directory records no training data",
            hint=_NO_DATA_HINT,
            param="calib",
        )
    origin = f"lineage: {data}"
    if data == "digits" or data.startswith("digits["):
        return Calibration("digits", origin)
    split = _SPLIT_SUFFIX.match(data)
    for candidate in (data, split.group("root") if split else None):
        if candidate is not None and Path(candidate).is_dir():
            return Calibration(candidate, origin)
    raise InvalidArgumentError(
        f"the model was fine-tuned on '{data}' (its lineage), which is not a folder here",
        hint=_NO_DATA_HINT,
        param="calib",
    )


def calibration_samples(calib: str | os.PathLike[str], config: ModelConfig, n: int) -> torch.Tensor:
    """Preprocessed images from the train split (val if there is no train split); never test.

    Args:
        calib: ``"digits"`` or a folder of class folders (with or without split folders).
        config: the model's config (its preprocessing).
        n: how many images.
    """
    from toolkit.data import load_samples

    if str(calib) == "digits":
        return load_samples("digits", config.preprocessing, split="train", n=n)[0]
    root = Path(calib)
    if not root.is_dir():
        raise DataError(
            f"calibration folder '{root}' does not exist",
            hint="pass calib='digits' or a folder of class folders",
            param="calib",
        )
    if (root / "train").is_dir():
        split = "train"
    elif (root / "val").is_dir():
        split = "val"
    elif (root / "test").is_dir():
        raise DataError(
            f"'{root}' has only a test split; calibrating on it would leak the held-out images",
            hint="give a folder with train/ or val/, or a flat DIR/<class>/ folder",
            param="calib",
        )
    else:
        split = "train"
    return load_samples(root, config.preprocessing, split=split, n=n)[0]


def heldout_samples(
    source: str | os.PathLike[str], config: ModelConfig, n: int
) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Preprocessed held-out images with labels (indices of ``config.class_names``) for the
    accuracy-aware INT8 search, and where they came from.

    Never the calibration images: the bundled digits' val split; for a folder its ``val/`` split,
    else its ``test/`` split. A flat folder has no held-out split: ``DataError`` (``param="heldout"``).

    Args:
        source: ``"digits"`` or a folder of class folders.
        config: the model's config (its preprocessing and class names).
        n: at most this many images.
    """
    from toolkit.data import load_samples

    if str(source) == "digits":
        x, y = load_samples("digits", config.preprocessing, split="val", n=n, class_names=config.class_names)
        return x, y, "digits val split"
    root = Path(source)
    for split in ("val", "test"):
        if (root / split).is_dir():
            # data for some classes only (the new ones, say): the classes that have a folder
            present = [c for c in config.class_names if (root / split / c).is_dir()]
            if not present:
                break
            x, y = load_samples(root, config.preprocessing, split=split, n=n, class_names=present)
            index = torch.tensor([config.class_names.index(c) for c in present])
            return x, index[y], f"{root / split}"
    raise DataError(
        f"'{root}' has no held-out split (val/ or test/ with folders of the model's classes) "
        "to measure INT8 agreement on",
        hint="pass heldout= a folder of class folders the calibration did not use (--heldout DIR)",
        param="heldout",
    )
