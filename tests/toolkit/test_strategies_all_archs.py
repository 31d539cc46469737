"""Every torchvision classification builder x every strategy: head found, output shape right,
kept rows bit-identical to the originals."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from toolkit.heads.locate import locate_head
from toolkit.heads.modules import get_submodule, output_layer, set_submodule
from toolkit.heads.strategies import STRATEGIES
from toolkit.heads.surgery import extend_head
from toolkit.models.architectures import build_architecture, min_input_size, torchvision_classifiers

ARCHS = torchvision_classifiers()
EXPECTED_HEADS = {
    "resnet18": "fc",
    "squeezenet1_1": "classifier.1",
    "googlenet": "fc",
    "inception_v3": "fc",
    "vit_b_16": "heads.head",
    "swin_t": "head",
    "maxvit_t": "classifier.5",
    "convnext_tiny": "classifier.2",
    "efficientnet_b0": "classifier.1",
    "mobilenet_v3_small": "classifier.3",
    "densenet121": "classifier",
    "vgg11": "classifier.6",
}


def test_registry_lists_every_torchvision_classifier() -> None:
    import torchvision

    assert set(ARCHS) == set(torchvision.models.list_models(module=torchvision.models))
    assert len(ARCHS) >= 80


@functools.lru_cache(maxsize=1)
def _built(arch: str) -> nn.Module:
    torch.manual_seed(0)
    return build_architecture(arch).eval()


def _weights(layer: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    w = layer.weight.detach().clone()
    b = layer.bias.detach().clone() if layer.bias is not None else None
    return w.reshape(w.shape[0], -1), b


def _examples(old: int, n_new: int, size: int) -> dict[int, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return {old + i: torch.randn(1, 3, size, size, generator=gen) for i in range(n_new)}


#: the builders that take 5-115 s each here (large ViTs, RegNetY-16/32/128GF, Swin V2/B, VGG):
#: about five minutes of the default run's budget. They run in the slow job (.ci/slow), which
#: also exports every builder to ONNX; their heads are the same kinds as their small siblings'.
HEAVY = frozenset({
    "vit_h_14", "vit_l_16", "vit_l_32", "vit_b_32", "regnet_y_128gf", "regnet_y_32gf", "regnet_y_16gf",
    "regnet_x_32gf", "regnet_x_16gf", "swin_v2_s", "swin_v2_b", "swin_s", "swin_b",
    "vgg16", "vgg16_bn", "vgg19", "vgg19_bn",
})


@pytest.mark.parametrize("arch", [pytest.param(a, marks=pytest.mark.slow) if a in HEAVY else a for a in ARCHS])
def test_every_strategy_on_every_builder(arch: str) -> None:
    model = _built(arch)
    size = min_input_size(arch)
    shape = (1, 3, size, size)
    loc = locate_head(model, input_shape=shape)
    if arch in EXPECTED_HEADS:
        assert loc.module == EXPECTED_HEADS[arch]
    if arch in ("googlenet", "inception_v3"):
        assert loc.aux_modules, "auxiliary heads must be found"
    original = get_submodule(model, loc.module)
    originals_aux = {n: get_submodule(model, n) for n in loc.aux_modules}
    old_w, old_b = _weights(output_layer(original))
    old = old_w.shape[0]
    x = torch.randn(1, *shape[1:], generator=torch.Generator().manual_seed(0))
    keep = [5, 0, 999, 17]
    try:
        for strategy in STRATEGIES:
            # the head was located once above; naming it skips a traced forward pass per strategy
            kwargs: dict[str, object] = {"num_classes": old + 3, "seed": 3, "head": loc.module}
            if strategy == "select":
                kwargs = {"keep": keep, "head": loc.module}
            if strategy == "imprint":
                kwargs["examples"] = _examples(old, 3, size)
            if strategy in ("bottleneck", "mlp"):
                kwargs["hidden"] = (32,) if strategy == "bottleneck" else (32, 16)
            spec = extend_head(model, strategy, **kwargs)  # type: ignore[arg-type]
            with torch.no_grad():
                out = model(x)
            n = len(keep) if strategy == "select" else old + 3
            assert out.shape == (1, n), (strategy, out.shape)
            assert spec.num_classes == n and len(spec.origins) == n
            new_w, new_b = _weights(output_layer(get_submodule(model, loc.module)))
            if strategy == "select":
                assert torch.equal(new_w, old_w[keep])
                if old_b is not None:
                    assert new_b is not None and torch.equal(new_b, old_b[keep])
                assert spec.kept_indices == (0, 1, 2, 3)
            elif strategy.startswith("pad") or strategy == "imprint":
                assert torch.equal(new_w[:old], old_w), f"{strategy}: kept rows changed"
                if old_b is not None:
                    assert new_b is not None and torch.equal(new_b[:old], old_b)
                assert spec.kept_indices == tuple(range(old))
                assert spec.new_indices == (old, old + 1, old + 2)
                assert torch.isfinite(new_w).all()
            else:
                assert spec.kept_indices == ()
            for name in loc.aux_modules:
                aux = output_layer(get_submodule(model, name))
                assert aux.weight.shape[0] == n
            set_submodule(model, loc.module, original)
            for name, module in originals_aux.items():
                set_submodule(model, name, module)
    finally:
        set_submodule(model, loc.module, original)
        for name, module in originals_aux.items():
            set_submodule(model, name, module)
