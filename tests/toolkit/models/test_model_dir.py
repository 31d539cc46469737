"""Model directories: save/load bit-for-bit, atomic writes, records, timm families, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from toolkit.cli import main
from toolkit.errors import ModelDirError, OutputExistsError
from toolkit.extension import extend
from toolkit.models.architectures import min_input_size, torchvision_classifiers
from toolkit.models.model_dir import load_model_dir, save_model_dir
from toolkit.records import ModelConfig, Preprocessing

# Every builder through the CLI is the slow sweep; these cover each family in the default run.
FAST_ARCHS = ["resnet18", "squeezenet1_1", "googlenet", "mobilenet_v3_small", "efficientnet_b0", "regnet_x_400mf",
              "shufflenet_v2_x0_5", "mnasnet0_5", "densenet121", "convnext_tiny", "swin_t", "inception_v3"]
TIMM_ARCHS = ["timm:resnet18", "timm:mobilenetv3_small_050", "timm:efficientnet_b0", "timm:vit_tiny_patch16_224",
              "timm:convnext_atto", "timm:deit_tiny_distilled_patch16_224"]


def _roundtrip_cli(arch: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], strategy: str = "pad-mean") -> None:
    size = min_input_size(arch) if not arch.startswith("timm:") else None
    out = tmp_path / "m"
    args = ["extend", "--arch", arch, "-s", strategy, "-n", "1003", "-o", str(out), "--seed", "1"]
    if size is not None and size != 224:
        args += ["--input-size", str(max(size, 64))]
    code = main(args)
    err = capsys.readouterr().err
    assert code == 0, err
    loaded = load_model_dir(out)
    cfg = loaded.config
    assert cfg.num_classes == 1003 and cfg.head.new_indices == (1000, 1001, 1002)
    x = torch.randn(2, *cfg.preprocessing.input_shape(1)[1:], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        first = loaded.module(x)
        again = load_model_dir(out).module(x)
    assert first.shape == (2, 1003)
    assert torch.equal(first, again), "reloading must give bit-identical outputs"


@pytest.mark.parametrize("arch", FAST_ARCHS)
def test_cli_extend_roundtrip_bit_for_bit(arch: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _roundtrip_cli(arch, tmp_path, capsys)


@pytest.mark.slow
@pytest.mark.parametrize("arch", [a for a in torchvision_classifiers() if a not in FAST_ARCHS])
def test_cli_extend_roundtrip_every_builder(arch: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _roundtrip_cli(arch, tmp_path, capsys)


@pytest.mark.parametrize("arch", TIMM_ARCHS)
def test_timm_families(arch: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("timm")
    _roundtrip_cli(arch, tmp_path, capsys, strategy="pad-random")


def test_timm_distilled_head_and_aux() -> None:
    pytest.importorskip("timm")
    from toolkit.heads.locate import locate_head
    from toolkit.models.loading import load_model

    loc = locate_head(load_model("timm:deit_tiny_distilled_patch16_224"))
    assert loc.module == "head" and loc.aux_modules == ("head_dist",)


def test_extend_from_model_dir_chains_lineage_and_names(tmp_path: Path) -> None:
    base = extend(strategy="replace", arch="resnet18", num_classes=4, class_names=["a", "b", "c", "d"],
                  preprocessing=Preprocessing(input_size=(32, 32)), output=tmp_path / "base")
    sel = extend(strategy="select", model_dir=base.path, keep=[3, 1], output=tmp_path / "sel")
    assert sel.config.class_names == ("d", "b")
    assert [s["stage"] for s in sel.config.lineage] == ["extend", "extend"]
    assert sel.config.preprocessing.input_size == (32, 32)
    pad = extend(strategy="pad-copy", model_dir=sel.path, num_classes=4, copy_from=[0, 0],
                 class_names=["d", "b", "e", "f"], output=tmp_path / "pad")
    origins = [(o.kind, o.source) for o in pad.config.head.origins]
    assert origins == [("kept", 0), ("kept", 1), ("copy", 0), ("copy", 0)]
    w = pad.module.fc.weight
    assert torch.equal(w[2], w[0]) and torch.equal(w[3], w[0])


def test_googlenet_aux_heads_survive_reextension(tmp_path: Path) -> None:
    prep = Preprocessing(input_size=(64, 64))
    first = extend(strategy="pad-random", arch="googlenet", num_classes=1002, preprocessing=prep, output=tmp_path / "a")
    assert set(first.config.head.aux_modules) == {"aux1.fc2", "aux2.fc2"}
    second = extend(strategy="pad-mean", model_dir=first.path, num_classes=1004, output=tmp_path / "b")
    assert set(second.config.head.aux_modules) == {"aux1.fc2", "aux2.fc2"}
    loaded = load_model_dir(tmp_path / "b").module
    assert loaded.aux1.fc2.out_features == 1004 and loaded.fc.out_features == 1004


def test_block_heads_roundtrip(tmp_path: Path) -> None:
    prep = Preprocessing(input_size=(32, 32))
    res = extend(strategy="mlp", arch="resnet18", num_classes=5, hidden=[64, 32], activation="gelu",
                 dropout=0.1, preprocessing=prep, output=tmp_path / "mlp")
    assert res.config.head.hidden == (64, 32)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(res.module.eval()(x), load_model_dir(tmp_path / "mlp").module(x))
    # a row strategy on a block head keeps the hidden layers and pads the output layer
    pad = extend(strategy="pad-random", model_dir=tmp_path / "mlp", num_classes=7, output=tmp_path / "pad")
    assert pad.config.head.hidden == (64, 32)
    loaded = load_model_dir(tmp_path / "pad").module
    assert torch.equal(loaded.fc[0].weight, res.module.fc[0].weight)
    assert torch.equal(loaded.fc[-1].weight[:5], res.module.fc[-1].weight)


def test_save_is_atomic_and_refuses_clobber(tmp_path: Path, digits_model_dir: Path) -> None:
    loaded = load_model_dir(digits_model_dir)
    with pytest.raises(OutputExistsError):
        save_model_dir(loaded.module, loaded.config, digits_model_dir)

    class Boom(RuntimeError):
        pass

    target = tmp_path / "target"
    save_model_dir(loaded.module, loaded.config, target)
    before = (target / "model.safetensors").read_bytes()
    bad_config = loaded.config

    class Exploding(dict):  # a state dict that fails half-way through saving
        def items(self):  # type: ignore[override]
            raise Boom("disk full")

    import toolkit.models.model_dir as md

    original = md.state_dict_for_saving
    md.state_dict_for_saving = lambda model: Exploding()  # type: ignore[assignment,misc]
    try:
        with pytest.raises(Boom):
            save_model_dir(loaded.module, bad_config, target, overwrite=True)
    finally:
        md.state_dict_for_saving = original
    assert (target / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target"], "no staging folder may remain"


def test_tampered_weights_and_config_are_refused(tmp_path: Path, digits_model_dir: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(digits_model_dir, copy)
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (copy / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ModelDirError, match="sha256"):
        load_model_dir(copy)
    cfg = json.loads((copy / "config.json").read_text())
    cfg["class_names"] = cfg["class_names"][:3]
    (copy / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelDirError, match="class names"):
        load_model_dir(copy)


def test_config_roundtrip(digits_model_dir: Path) -> None:
    data = json.loads((digits_model_dir / "config.json").read_text())
    cfg = ModelConfig.from_json(data)
    assert cfg.to_json() == data
    assert cfg.head.kept_indices == tuple(range(7)) and cfg.head.new_indices == (7, 8, 9)


def test_inspect_cli(digits_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(digits_model_dir), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["head_module"] == "fc" and info["in_features"] == 512 and info["out_features"] == 10
    assert info["trainable_with_frozen_backbone"] == info["head_params"] == 512 * 10 + 10
    assert main(["inspect", "--arch", "squeezenet1_1"]) == 0
    assert "classifier.1" in capsys.readouterr().out


@pytest.mark.parametrize("kwargs", [{"dropout": 0.5}, {"": None}, {"num_classes": "ten"}])
def test_bad_arch_kwargs_are_bad_input(
    digits_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], kwargs: dict[str, object]
) -> None:
    """A builder that rejects config.json's arch_kwargs is the user's input (exit 2, naming the key and
    what the builder accepts), not a bug in rehead (exit 4)."""
    import shutil

    model = tmp_path / "model"
    shutil.copytree(digits_model_dir, model)
    config = json.loads((model / "config.json").read_text())
    config["arch_kwargs"] = kwargs
    (model / "config.json").write_text(json.dumps(config))
    assert main(["inspect", str(model)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "internal error" not in err, err
    assert "arch_kwargs" in err and repr(next(iter(kwargs))) in err and "num_classes" in err.split("accepts:")[1], err
