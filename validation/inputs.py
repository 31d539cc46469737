"""Parity inputs: seeded random tensors, real images (digits or a folder) or a saved ``.npz``.

By default (``data=None``) parity runs on held-out images (the val/test split, never training
images) of the data the model directory's lineage records for its fine-tuning: parity on random
noise can pass while real images fail (rf-detr #1233, a ``.pte`` export that collapsed on real
images). With no usable record it falls back to seeded random inputs and says why
(``ParityInputs.note``); every report then says the run saw random inputs only.

Every source yields float32 NCHW arrays checked against the model's preprocessing: a wrong
dtype, rank, channel count or image size raises ``InputShapeError`` naming what was expected.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from converters.check_inputs import ParityInputs
from toolkit._args import positive_int
from toolkit.errors import DataError, InputShapeError, InvalidArgumentError
from toolkit.records import ModelConfig, Preprocessing


def expected_shape(prep: Preprocessing) -> str:
    """The input shape parity expects, as messages write it: ``float32[N,C,H,W] (NCHW)``.

    Args:
        prep: the model's preprocessing (channels and input size).
    """
    return f"float32[N,{prep.channels},{prep.input_size[0]},{prep.input_size[1]}] (NCHW)"


def check_images(images: np.ndarray, prep: Preprocessing, *, what: str = "inputs") -> np.ndarray:
    """Return ``images`` if they are float32 NCHW of the model's channels and size, else raise.

    Args:
        images: the inputs.
        prep: the model's preprocessing (channels and input size).
        what: how messages name the inputs (default ``inputs``).
    """
    want = expected_shape(prep)
    if not isinstance(images, np.ndarray):
        raise InputShapeError(f"{what} must be a NumPy array, got {type(images).__name__}; expected {want}")
    if images.dtype != np.float32:
        raise InputShapeError(
            f"{what} have dtype {images.dtype}; expected {want}",
            hint="save the images as float32 (e.g. images.astype(np.float32)) after preprocessing",
        )
    if images.ndim != 4:
        raise InputShapeError(
            f"{what} have rank {images.ndim} {tuple(images.shape)}; expected rank 4, {want}",
            hint="stack the images into one (N, C, H, W) array",
        )
    n, c, h, w = images.shape
    if c != prep.channels:
        raise InputShapeError(
            f"{what} have {c} channels {tuple(images.shape)}; expected {prep.channels}, {want}",
            hint="images must be channel-first (NCHW) with the model's channel count",
        )
    if (h, w) != tuple(prep.input_size):
        raise InputShapeError(
            f"{what} are {h}x{w} {tuple(images.shape)}; expected {want}",
            hint="resize to the model's input size from config.json",
        )
    if n == 0:
        raise InputShapeError(f"{what} hold no samples; expected {want} with N >= 1")
    return images


def random_only_line(note: str = "") -> str:
    """The one line every report carries when parity saw random inputs only.

    Args:
        note: why only random inputs were used (default: they were asked for).
    """
    why = note or "random inputs were asked for"
    return (
        f"parity inputs: random only ({why}): random noise can pass where real images fail; "
        "validate on held-out images (--data DIR) and make this a failure with --require-real-data"
    )


def default_inputs(config: ModelConfig, *, samples: int = 32, seed: int = 0) -> ParityInputs:
    """Held-out images of the fine-tuning data ``config.lineage`` records (the bundled digits' val
    split, or a folder's ``val/`` or ``test/``), else seeded random inputs with a ``note`` saying
    why: the export check's inputs (``converters.check_inputs.default_check_inputs``).

    Args:
        config: the model's config (its lineage and preprocessing).
        samples: how many inputs (default 32).
        seed: the seed of random inputs and subsets (default 0).
    """
    from converters.check_inputs import default_check_inputs

    positive_int(samples, "samples", example="samples=32")
    found = default_check_inputs(config, samples=samples, seed=seed)
    images = check_images(found.images, config.preprocessing, what=found.source)
    return dataclasses.replace(found, images=images)


def load_inputs(
    data: str | os.PathLike[str] | np.ndarray,
    prep: Preprocessing,
    *,
    samples: int = 32,
    seed: int = 0,
    class_names: tuple[str, ...] | None = None,
) -> ParityInputs:
    """Inputs for parity.

    Args:
        data: ``"random"`` (seeded standard-normal tensors), ``"digits"`` (the bundled digits, test
            split), a folder of images (``DIR/<class>/*``), a ``.npz`` file (array ``images``, or its
            only array; optional ``labels``) or an array.
        prep: the model's preprocessing.
        samples: caps the count (default 32).
        seed: makes random draws and subsets reproducible (default 0).
        class_names: the model's classes, for ``digits`` (default None).
    """
    positive_int(samples, "samples", example="samples=32")
    if isinstance(data, np.ndarray):
        return ParityInputs(check_images(data, prep)[:samples], None, "array")
    text = str(data)
    if text == "random":
        rng = np.random.default_rng(seed)
        images = rng.standard_normal(prep.input_shape(samples)).astype(np.float32)
        return ParityInputs(images, None, f"random(seed={seed})", random=True)
    if text.lower().endswith(".npz"):
        return _npz(Path(text), prep, samples)
    path = Path(text)
    if text != "digits" and not path.is_dir():
        raise InvalidArgumentError(
            f"data '{text}' is neither 'random', 'digits', a folder nor a .npz file",
            hint="use 'random', 'digits', an image folder or a .npz file",
            param="data",
        )
    from toolkit.data import load_samples

    names = class_names if text == "digits" else None
    x, y = load_samples(text, prep, split="test", n=samples, seed=seed, class_names=names)
    images = x.numpy().astype(np.float32, copy=False)
    return ParityInputs(check_images(images, prep, what=f"images from '{text}'"), y.numpy(), text)


def _npz(path: Path, prep: Preprocessing, samples: int) -> ParityInputs:
    if not path.is_file():
        raise DataError(f"inputs file '{path}' does not exist")
    try:
        with np.load(path, allow_pickle=False) as bundle:
            keys = list(bundle.keys())
            key = "images" if "images" in keys else (keys[0] if len(keys) == 1 else None)
            if key is None:
                raise DataError(
                    f"'{path}' holds arrays {keys} but none named 'images'",
                    hint="save with np.savez(path, images=x) (x float32 NCHW)",
                )
            images = bundle[key]
            labels = bundle["labels"] if "labels" in keys else None
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read '{path}' as .npz: {exc}") from exc
    images = check_images(images, prep, what=f"inputs in '{path.name}'")[:samples]
    return ParityInputs(images, None if labels is None else labels[:samples], str(path))
