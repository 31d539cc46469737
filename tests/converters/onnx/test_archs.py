"""fp32 export + ONNX Runtime parity (the fp32 preset on logits) across architectures, each with an extended head."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from converters_testutil import ort_run

import converters
from converters.compare import PRESETS, ClassSlice, compare_outputs
from toolkit.models.model_dir import load_model_dir

# (architecture, input size): the smallest size each runs at keeps the suite fast on 2 cores.
REPRESENTATIVE = [
    ("resnet18", 32),
    ("mobilenet_v3_small", 32),
    ("efficientnet_b0", 32),
    ("convnext_tiny", 32),
    ("densenet121", 32),
    ("squeezenet1_1", 64),
    ("regnet_y_400mf", 32),
    ("vit_b_32", 224),  # ViTs take only their design size; b_32 is the cheapest torchvision ViT at 224
    ("swin_t", 64),
]


def _parity(make_model_dir: Callable[..., Path], arch: str, size: int, tmp_path: Path) -> None:
    model_dir = make_model_dir(arch=arch, size=size, root=tmp_path)  # leaves with the test
    result = converters.export_onnx(model_dir, tmp_path / f"{arch}.onnx", progress=False)
    module = load_model_dir(model_dir).module
    x = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        ref = module(x)
    got = ort_run(result.path, x)
    assert got.shape == ref.shape == (3, 10)
    # the fp32 criterion of the export check and validate (converters.compare), on other inputs:
    # |Δ| <= 1e-4 + 1e-4·|ref|, widened only by the model's own fp32 rounding (random-init
    # inception_v3 has logits near 1e7, where eager fp32 itself is ~10 off float64)
    with torch.inference_mode():
        ref64 = copy.deepcopy(module).double()(x.double())
    batch = compare_outputs(
        {"logits": ref.numpy()},
        {"logits": got.numpy()},
        [ClassSlice("all", tuple(range(10)))],
        PRESETS["fp32"],
        batch_size=3,
        rounding=lambda: {"logits": ref64.numpy()},
    )
    assert not batch.failures, f"{arch}: {batch.failures[0].message}"


@pytest.mark.parametrize(("arch", "size"), REPRESENTATIVE, ids=[a for a, _ in REPRESENTATIVE])
def test_fp32_parity(make_model_dir: Callable[..., Path], arch: str, size: int, tmp_path: Path) -> None:
    _parity(make_model_dir, arch, size, tmp_path)


def _others() -> list[tuple[str, int]]:
    from toolkit.models.architectures import fixed_input_size, min_input_size, torchvision_classifiers

    done = {a for a, _ in REPRESENTATIVE}
    return [
        (a, min_input_size(a) if fixed_input_size(a) else max(64, min_input_size(a)))
        for a in torchvision_classifiers()
        if a not in done
    ]


@pytest.mark.slow
@pytest.mark.parametrize(("arch", "size"), _others(), ids=[a for a, _ in _others()])
def test_fp32_parity_every_torchvision_builder(
    make_model_dir: Callable[..., Path], arch: str, size: int, tmp_path: Path
) -> None:
    _parity(make_model_dir, arch, size, tmp_path)
