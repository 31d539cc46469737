"""Property tests of the row strategies, freezing policies, imprinting and the locator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from torch import nn

from toolkit.errors import HeadNotFoundError, InvalidArgumentError
from toolkit.heads import extend_head, freeze_backbone, locate_head, param_groups, unfreeze_stages
from toolkit.heads.strategies import STRATEGIES, StrategyArgs

#: examples per property: 60 in the default run (deterministic), three times as many in the slow job
PROPERTY = settings(max_examples=settings.default.max_examples * 3 // 2)


def _layer(old: int = 12, width: int = 16, bias: bool = True, conv: bool = False) -> nn.Module:
    torch.manual_seed(0)
    return nn.Conv2d(width, old, 1, bias=bias) if conv else nn.Linear(width, old, bias=bias)


def _rows(layer: nn.Module) -> torch.Tensor:
    return layer.weight.detach().reshape(layer.weight.shape[0], -1)


@PROPERTY
@given(keep=st.lists(st.integers(0, 11), min_size=1, max_size=12, unique=True), conv=st.booleans(),
       bias=st.booleans())
def test_select_keeps_exact_rows_in_order(keep: list[int], conv: bool, bias: bool) -> None:
    layer = _layer(conv=conv, bias=bias)
    kind = "conv1x1" if conv else "linear"
    new, origins = STRATEGIES["select"](layer, kind, StrategyArgs(len(keep), keep=tuple(keep)))
    assert torch.equal(_rows(new), _rows(layer)[keep])
    if bias:
        assert torch.equal(new.bias, layer.bias[keep])
    assert [o.source for o in origins] == keep and all(o.kind == "kept" for o in origins)


@PROPERTY
@given(sources=st.lists(st.integers(0, 11), min_size=1, max_size=8), strategy=st.sampled_from(
    ["pad-random", "pad-copy", "pad-mean"]), seed=st.integers(0, 2**31 - 1))
def test_pad_keeps_old_rows_bit_for_bit(sources: list[int], strategy: str, seed: int) -> None:
    layer = _layer()
    n = 12 + len(sources)
    args = StrategyArgs(n, copy_from=tuple(sources) if strategy == "pad-copy" else None, seed=seed)
    new, origins = STRATEGIES[strategy](layer, "linear", args)
    assert torch.equal(new.weight[:12], layer.weight) and torch.equal(new.bias[:12], layer.bias)
    assert len(origins) == n and all(o.kind == "kept" for o in origins[:12])
    if strategy == "pad-copy":
        assert torch.equal(new.weight[12:], layer.weight[sources])
        assert torch.equal(new.bias[12:], layer.bias[sources])
    if strategy == "pad-mean":
        assert torch.allclose(new.weight[12:], layer.weight.mean(0).expand(len(sources), -1))
    if strategy == "pad-random":
        assert torch.equal(new.bias[12:], torch.zeros(len(sources)))
        again, _ = STRATEGIES[strategy](layer, "linear", args)
        assert torch.equal(again.weight, new.weight), "same seed, same rows"


def test_pad_random_std_and_seed() -> None:
    layer = _layer(old=4, width=4096)
    new, _ = STRATEGIES["pad-random"](layer, "linear", StrategyArgs(6, seed=1, std=0.05))
    assert abs(float(new.weight[4:].detach().std()) - 0.05) < 0.005
    other, _ = STRATEGIES["pad-random"](layer, "linear", StrategyArgs(6, seed=2, std=0.05))
    assert not torch.equal(other.weight[4:], new.weight[4:])


def test_pad_strategies_refuse_shrinking() -> None:
    with pytest.raises(InvalidArgumentError, match="must exceed"):
        STRATEGIES["pad-mean"](_layer(), "linear", StrategyArgs(10))


def test_imprint_rows_follow_qi_et_al() -> None:
    layer = _layer(old=5, width=8)
    gen = torch.Generator().manual_seed(0)
    feats = {5: torch.randn(3, 8, generator=gen).abs(), 6: torch.randn(1, 8, generator=gen)}
    new, origins = STRATEGIES["imprint"](layer, "linear", StrategyArgs(7, features=feats))
    scale = layer.weight.norm(dim=1).mean()
    for idx, f in feats.items():
        expected = nn.functional.normalize(nn.functional.normalize(f, dim=1).mean(0), dim=0) * scale
        assert torch.allclose(new.weight[idx], expected, atol=1e-6)
    assert [o.kind for o in origins[5:]] == ["imprint", "imprint"]
    with pytest.raises(InvalidArgumentError, match="every new class"):
        STRATEGIES["imprint"](layer, "linear", StrategyArgs(7, features={5: feats[5]}))


def test_imprint_end_to_end_from_example_folder(tmp_path: Path) -> None:
    from toolkit.extension import extend
    from toolkit.records import Preprocessing

    for cls, value in (("bright", 230), ("dark", 20)):
        (tmp_path / "ex" / cls).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((40, 40, 3), value + i, dtype=np.uint8)).save(tmp_path / "ex" / cls / f"{i}.png")
    base = extend(strategy="replace", arch="resnet18", num_classes=3, class_names=["a", "b", "c"],
                  preprocessing=Preprocessing(input_size=(32, 32)), output=tmp_path / "base")
    res = extend(strategy="imprint", model_dir=base.path, num_classes=5, class_names=["a", "b", "c", "bright", "dark"],
                 examples_dir=tmp_path / "ex", output=tmp_path / "imp")
    assert [o.kind for o in res.config.head.origins] == ["kept"] * 3 + ["imprint"] * 2
    w = res.module.fc.weight
    assert torch.allclose(w[3].norm(), base.module.fc.weight.norm(dim=1).mean(), rtol=1e-5)
    with pytest.raises(Exception, match="no folder for class"):
        extend(strategy="imprint", model_dir=base.path, num_classes=5, class_names=["a", "b", "c", "bright", "x"],
               examples_dir=tmp_path / "ex", output=tmp_path / "imp2")
    assert not (tmp_path / "imp2").exists()


def _tiny_bn_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU()),
        nn.Sequential(nn.Conv2d(8, 8, 3), nn.BatchNorm2d(8), nn.ReLU()),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 4),
    )


def test_freeze_backbone_keeps_new_head_trainable_and_bn_stats_frozen() -> None:
    model = _tiny_bn_net()
    spec = extend_head(model, "pad-random", num_classes=6, input_shape=(1, 3, 16, 16))
    assert spec.module == "4"
    split = freeze_backbone(model, spec)
    assert split.trainable == split.head == 8 * 6 + 6
    assert all(p.requires_grad for p in model[4].parameters())
    assert not any(p.requires_grad for p in model[0].parameters())
    bn = model[0][1]
    before = bn.running_mean.clone()
    model.train()
    model(torch.randn(4, 3, 16, 16) * 5 + 3)
    assert torch.equal(bn.running_mean, before), "frozen BatchNorm statistics must not move in train mode"
    stages = unfreeze_stages(model, spec, 1)
    assert stages == ["1"]
    assert all(p.requires_grad for p in model[1].parameters())
    before1 = model[1][1].running_mean.clone()
    model.train()
    model(torch.randn(4, 3, 16, 16) * 5 + 3)
    assert not torch.equal(model[1][1].running_mean, before1), "unfrozen stage updates its statistics"
    assert torch.equal(bn.running_mean, before)


def test_param_groups_backbone_multiplier() -> None:
    model = _tiny_bn_net()
    spec = extend_head(model, "replace", num_classes=3, input_shape=(1, 3, 16, 16))
    groups = {g["name"]: g for g in param_groups(model, spec, lr=1e-3, backbone_lr_mult=0.1, weight_decay=0.05)}
    assert groups["head"]["lr"] == pytest.approx(1e-3) and groups["backbone"]["lr"] == pytest.approx(1e-4)
    assert groups["backbone_no_decay"]["weight_decay"] == 0.0 and groups["head"]["weight_decay"] == 0.05
    total = sum(p.numel() for g in groups.values() for p in g["params"])
    assert total == sum(p.numel() for p in model.parameters())


def test_locator_traces_custom_module_and_override() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Conv2d(3, 4, 3)
            self.proj = nn.Linear(4, 4)  # same width as the head, runs first
            self.cls = nn.Linear(4, 7)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.cls(self.proj(self.body(x).mean((2, 3))))

    model = Net()
    assert locate_head(model, input_shape=(1, 3, 8, 8)).module == "cls"
    assert locate_head(model, head="proj").module == "proj"
    with pytest.raises(HeadNotFoundError, match="not a Linear"):
        locate_head(model, head="body")


def test_strategy_args_pass_through_as_a_record_or_as_keywords() -> None:
    """``extend`` takes the strategy's settings as one ``StrategyArgs`` or as its fields' keywords,
    with the same result; both at once, or a keyword that is no field, is refused."""
    from toolkit.extension import extend
    from toolkit.heads import StrategyArgs as exported
    from toolkit.records import Preprocessing

    assert exported is StrategyArgs
    prep = Preprocessing(input_size=(32, 32))
    args = StrategyArgs(num_classes=6, hidden=[16, 8], activation="gelu", seed=3)  # lists are stored as tuples
    assert args.hidden == (16, 8)
    as_record = extend(strategy="mlp", args=args, arch="resnet18", preprocessing=prep, random_init=True)
    as_keywords = extend(strategy="mlp", arch="resnet18", preprocessing=prep, random_init=True,
                         num_classes=6, hidden=[16, 8], activation="gelu", seed=3)
    assert as_record.config.to_json() == as_keywords.config.to_json()
    a, b = as_record.module.state_dict(), as_keywords.module.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(InvalidArgumentError, match="given twice"):
        extend(strategy="mlp", args=args, arch="resnet18", num_classes=6)
    with pytest.raises(TypeError, match="unexpected keyword argument 'num_class'"):
        extend(strategy="mlp", arch="resnet18", num_class=6)


def test_extend_head_takes_the_record() -> None:
    model = _tiny_bn_net()
    spec = extend_head(model, "pad-copy", StrategyArgs(num_classes=6, copy_from=[0, 0]), input_shape=(1, 3, 16, 16))
    assert spec.num_classes == 6 and [o.source for o in spec.origins[4:]] == [0, 0]
    select = extend_head(_tiny_bn_net(), "select", StrategyArgs(keep=(2, 1)), input_shape=(1, 3, 16, 16))
    assert select.num_classes == 2  # num_classes resolved from keep
    with pytest.raises(InvalidArgumentError, match="needs num_classes"):
        STRATEGIES["replace"](_layer(), "linear", StrategyArgs())


def test_cli_strategy_defaults_are_the_records() -> None:
    import dataclasses

    import typer

    from toolkit.cli import app

    command = typer.main.get_command(app).commands["extend"]  # type: ignore[attr-defined]
    fields = {f.name: f.default for f in dataclasses.fields(StrategyArgs)}
    options = {p.name: p.default for p in command.params if p.name in fields}
    assert set(options) == set(fields) - {"features"}
    assert all(options[name] == fields[name] or fields[name] in (None, ()) for name in options), options
