"""INT8 calibration data: given explicitly, or the fine-tuning data the model directory's lineage records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import converters
from toolkit.errors import InvalidArgumentError
from toolkit.models.model_dir import load_model_dir, save_model_dir


def _with_lineage(source: Path, out: Path, data: str) -> Path:
    """A copy of the model directory ``source`` whose lineage records fine-tuning on ``data``."""
    loaded = load_model_dir(source)
    step = {"stage": "finetune", "data": data, "epochs": 1}
    save_model_dir(loaded.module, loaded.config.replace(lineage=(*loaded.config.lineage, step)), out)
    return out


def _image_folder(root: Path, per_class: int) -> Path:
    """``root/<digit>/<i>.png``: ``per_class`` bundled digits per class, upscaled to 32x32."""
    from PIL import Image

    from toolkit.data.digits import digits_uint8

    images, labels = digits_uint8("train")
    for digit in range(10):
        folder = root / str(digit)
        folder.mkdir(parents=True)
        for i, img in enumerate(images[labels == digit][:per_class]):
            Image.fromarray(np.kron(img, np.ones((4, 4), dtype=np.uint8))).convert("RGB").save(folder / f"{i}.png")
    return root


def test_int8_without_recorded_data_is_refused(custom_model_dir, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model_dir = custom_model_dir("make_tiny")
    assert load_model_dir(model_dir).config.lineage == ()
    with pytest.raises(InvalidArgumentError, match="records no training data") as caught:
        converters.export_onnx(model_dir, tmp_path / "m.onnx", int8=True, progress=False)
    assert caught.value.exit_code == 2 and caught.value.param == "calib"
    assert "calib=" in caught.value.hint and "--" not in caught.value.one_line()
    assert list(tmp_path.iterdir()) == []


def test_int8_calibrates_on_the_recorded_folder(custom_model_dir, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = _image_folder(tmp_path / "images", per_class=2)
    # a flat folder is recorded with the split finetune made of it (toolkit.data.training)
    recorded = f"{folder} (val 0.15 split, seed 0)"
    model_dir = _with_lineage(custom_model_dir("make_tiny"), tmp_path / "model", recorded)
    result = converters.export_onnx(model_dir, tmp_path / "m.onnx", int8=True, calib_samples=128, progress=False)
    quant = converters.read_onnx_metadata(result.path)["quantization"]
    assert quant["calibration"] == str(folder) and quant["calibration_from"] == f"lineage: {recorded}"
    assert quant["samples"] == 20  # the folder's 20 images, not 128 bundled digits


def test_recorded_folder_that_is_gone_is_refused(custom_model_dir, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model_dir = _with_lineage(custom_model_dir("make_tiny"), tmp_path / "model", str(tmp_path / "moved-away"))
    with pytest.raises(InvalidArgumentError, match="moved-away") as caught:
        converters.export_onnx(model_dir, tmp_path / "m.onnx", int8=True, progress=False)
    assert caught.value.param == "calib"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_explicit_calibration_wins_over_the_lineage(trained_tiny_dir: Path, tmp_path: Path) -> None:
    folder = _image_folder(tmp_path / "images", per_class=1)
    result = converters.export_onnx(
        trained_tiny_dir, tmp_path / "m.onnx", int8=True, calib=folder, calib_samples=64, progress=False
    )
    quant = converters.read_onnx_metadata(result.path)["quantization"]
    assert quant["calibration"] == str(folder) and quant["calibration_from"] == "explicit"
    assert quant["samples"] == 10
