"""preprocess_image follows the weights' recorded evaluation transform, as torchvision applies it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.transforms import v2

from toolkit.data.images import preprocess_image
from toolkit.records import Preprocessing


@pytest.mark.parametrize(("interpolation", "mode"), [("bilinear", v2.InterpolationMode.BILINEAR),
                                                     ("bicubic", v2.InterpolationMode.BICUBIC)])
@pytest.mark.parametrize("hw", [(300, 400), (401, 257)])
def test_resize_then_centre_crop_matches_torchvision(
    interpolation: str, mode: v2.InterpolationMode, hw: tuple[int, int]
) -> None:
    prep = Preprocessing(input_size=(224, 224), resize_size=256, interpolation=interpolation)
    image = np.random.default_rng(0).integers(0, 256, size=(*hw, 3), dtype=np.uint8)
    reference = v2.Compose([
        v2.ToDtype(torch.float32, scale=True),
        v2.Resize(256, interpolation=mode, antialias=True),
        v2.CenterCrop(224),
        v2.Normalize(prep.mean, prep.std),
    ])(torch.from_numpy(image).permute(2, 0, 1))
    if interpolation == "bicubic":  # rehead clamps bicubic overshoot to the pixel range first
        reference = v2.Normalize(prep.mean, prep.std)(
            v2.CenterCrop(224)(v2.Resize(256, interpolation=mode, antialias=True)(
                torch.from_numpy(image).permute(2, 0, 1).float() / 255.0)).clamp(0, 1)
        )
    ours = preprocess_image(image, prep)
    assert ours.shape == (3, 224, 224)
    torch.testing.assert_close(ours, reference, atol=1e-4, rtol=1e-4)


def test_without_resize_size_the_image_is_resized_straight() -> None:
    prep = Preprocessing(input_size=(32, 32))
    image = np.random.default_rng(1).integers(0, 256, size=(40, 64, 3), dtype=np.uint8)
    ours = preprocess_image(image, prep)
    whole = torch.nn.functional.interpolate(
        torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0, size=(32, 32), mode="bilinear",
        align_corners=False, antialias=True,
    )[0]
    torch.testing.assert_close(ours, v2.Normalize(prep.mean, prep.std)(whole))
