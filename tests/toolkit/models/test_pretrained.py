"""Pretrained weights by name, through the libraries' real loading paths and caches.

torchvision: a state dict placed in a temporary torch hub folder under the exact file name
torchvision's weights URL has (torch hub loads a cached file without fetching or hashing it).
timm: a safetensors file placed in a temporary Hugging Face cache in the hub's own layout.
Offline: an unreachable proxy (torch hub) and HF_HUB_OFFLINE (huggingface_hub) make the
download fail the way it does on a machine without network.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torchvision
from safetensors.torch import save_file

from toolkit.errors import InvalidArgumentError, WeightsUnavailableError
from toolkit.extension import extend
from toolkit.models.model_dir import load_model_dir, sha256_file
from toolkit.models.pretrained import (
    RandomInitialisationWarning,
    UnverifiedWeightsWarning,
    is_weights_file,
    torchvision_cache_path,
)
from toolkit.records import Preprocessing

V1 = "ResNet18_Weights.IMAGENET1K_V1"


@pytest.fixture
def hub_dir(tmp_path: Path) -> Iterator[Path]:
    """An empty torch hub folder for this test; the previous one is restored after."""
    previous = torch.hub.get_dir()
    folder = tmp_path / "hub"
    torch.hub.set_dir(str(folder))
    try:
        yield folder
    finally:
        torch.hub.set_dir(previous)


@pytest.fixture
def resnet18_in_cache(hub_dir: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    """A resnet18 state dict (not ImageNet's: a seeded draw) where torch hub looks for V1."""
    torch.manual_seed(1)
    state = torchvision.models.resnet18(weights=None).state_dict()
    target = torchvision_cache_path(torchvision.models.get_weight(V1))
    assert target == hub_dir / "checkpoints" / "resnet18-f37072fd.pth"
    target.parent.mkdir(parents=True)
    torch.save(state, target)
    return target, state


@pytest.mark.parametrize("name", ["IMAGENET1K_V1", "DEFAULT", V1])
def test_named_torchvision_weights_load_from_the_hub_cache(
    resnet18_in_cache: tuple[Path, dict[str, torch.Tensor]], tmp_path: Path, name: str
) -> None:
    cached, state = resnet18_in_cache
    output = tmp_path / "m" if name == "IMAGENET1K_V1" else None  # one save and reload is enough
    with pytest.warns(UnverifiedWeightsWarning, match="f37072fd"):
        result = extend(strategy="pad-random", arch="resnet18", weights=name, num_classes=1002, output=output)
    cfg = result.config
    # the kept rows are the cached file's, bit for bit: it was loaded, not a random draw
    assert torch.equal(result.module.fc.weight[:1000], state["fc.weight"])
    assert torch.equal(result.module.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])
    assert cfg.class_names[:3] == ("tench", "goldfish", "great white shark")
    assert cfg.class_names[1000:] == ("new_1000", "new_1001")
    assert len(set(cfg.class_names)) == 1002  # duplicate ImageNet names made distinct
    assert cfg.preprocessing == Preprocessing(input_size=(224, 224), resize_size=256, interpolation="bilinear")
    assert cfg.lineage[-1]["weights"] == {
        "source": "torchvision",
        "name": V1,
        "url": "https://download.pytorch.org/models/resnet18-f37072fd.pth",
        "sha256_prefix": "f37072fd",
        "sha256": sha256_file(cached),
        "sha256_matches": False,
    }
    if output is not None:
        reloaded = load_model_dir(output)
        assert reloaded.config.preprocessing.resize_size == 256
        assert torch.equal(reloaded.module.fc.weight, result.module.fc.weight)


def test_input_size_keeps_the_resize_to_crop_ratio(
    resnet18_in_cache: tuple[Path, dict[str, torch.Tensor]], tmp_path: Path
) -> None:
    with pytest.warns(UnverifiedWeightsWarning):
        result = extend(strategy="replace", arch="resnet18", weights="IMAGENET1K_V1", num_classes=3, input_size=112)
    assert result.config.preprocessing.input_size == (112, 112)
    assert result.config.preprocessing.resize_size == 128  # 256/224 of 112
    assert result.config.class_names == ("class_0", "class_1", "class_2")


def test_unknown_weights_name_lists_the_valid_ones(hub_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="unknown weights") as info:
        extend(strategy="pad-random", arch="resnet18", weights="ResNet18_Weights.IMAGENET1K_V2", num_classes=1002)
    assert "IMAGENET1K_V1, DEFAULT" in info.value.hint
    assert info.value.param == "weights" and info.value.exit_code == 2
    with pytest.raises(InvalidArgumentError, match="not for resnet18"):
        extend(strategy="pad-random", arch="resnet18", weights="ResNet50_Weights.IMAGENET1K_V2", num_classes=1002)
    assert not (hub_dir / "checkpoints").exists()  # refused before torch hub was asked


def test_unknown_weights_name_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from toolkit.cli import main

    code = main(["extend", "--arch", "resnet18", "--weights", "IMAGENET1K_V9", "-n", "1002", "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "IMAGENET1K_V1, DEFAULT" in err and "--weights" in err
    assert not (tmp_path / "o").exists()


def _offline_env(tmp_path: Path) -> dict[str, str]:
    # A proxy on a closed local port: urllib's connection is refused at once, as offline here.
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("https_proxy", "http_proxy", "no_proxy")}
    env.update(TORCH_HOME=str(tmp_path / "torch"), https_proxy="http://127.0.0.1:9", HF_HUB_OFFLINE="1",
               HF_HUB_CACHE=str(tmp_path / "hf"), OMP_NUM_THREADS="1")
    return env


def test_offline_named_weights_exit_3_naming_url_and_cache_path(tmp_path: Path) -> None:
    out = tmp_path / "model"
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "toolkit.cli", "extend", "--arch", "resnet18", "--weights", "IMAGENET1K_V1",
         "-n", "1002", "-o", str(out)],
        env=_offline_env(tmp_path), capture_output=True, text=True, timeout=120,
    )
    elapsed = time.monotonic() - start
    assert proc.returncode == 3, proc.stderr
    expected = tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in proc.stderr
    assert str(expected) in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert not out.exists() and not expected.exists()
    assert not list(expected.parent.glob("*.partial"))  # torch hub removed its partial download
    assert elapsed < 60, f"offline failure took {elapsed:.0f} s"


@pytest.fixture
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "hf"
    monkeypatch.setenv("HF_HUB_CACHE", str(folder))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing may reach for the network
    return folder


def test_timm_pretrained_offline_names_the_hub_repository(hf_cache: Path, tmp_path: Path) -> None:
    pytest.importorskip("timm")
    start = time.monotonic()
    with pytest.raises(WeightsUnavailableError) as info:
        extend(strategy="replace", arch="timm:resnet18.a1_in1k", pretrained=True, num_classes=3, output=tmp_path / "o")
    assert time.monotonic() - start < 20
    assert info.value.exit_code == 3
    text = info.value.one_line()
    assert "timm/resnet18.a1_in1k" in text and str(hf_cache / "models--timm--resnet18.a1_in1k") in text
    assert not (tmp_path / "o").exists()


def test_timm_pretrained_loads_from_the_hf_cache(hf_cache: Path, tmp_path: Path) -> None:
    timm = pytest.importorskip("timm")
    torch.manual_seed(2)
    state = timm.create_model("resnet18.a1_in1k", pretrained=False).state_dict()
    # the hub cache's layout: refs/main names the snapshot that holds the file
    revision = "0" * 40
    snapshot = hf_cache / "models--timm--resnet18.a1_in1k" / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text(revision)
    save_file({k: v.contiguous() for k, v in state.items()}, str(snapshot / "model.safetensors"))
    result = extend(strategy="pad-mean", arch="timm:resnet18.a1_in1k", pretrained=True, num_classes=1001,
                    output=tmp_path / "m")
    assert torch.equal(result.module.fc.weight[:1000], state["fc.weight"])
    cfg = result.config
    assert cfg.class_names[:2] == ("tench", "goldfish") and cfg.class_names[-1] == "new_1000"
    prep = cfg.preprocessing
    assert (prep.input_size, prep.resize_size, prep.interpolation) == ((224, 224), 235, "bicubic")  # crop_pct 0.95
    assert cfg.lineage[-1]["weights"] == {
        "source": "timm",
        "hub_id": "timm/resnet18.a1_in1k",
        "file": "model.safetensors",
        "sha256": sha256_file(snapshot / "model.safetensors"),
    }
    assert load_model_dir(tmp_path / "m").config.arch == "timm:resnet18.a1_in1k"


def test_pretrained_is_for_timm_only() -> None:
    with pytest.raises(InvalidArgumentError, match="timm") as info:
        extend(strategy="replace", arch="resnet18", pretrained=True, num_classes=3)
    assert info.value.param == "pretrained" and "IMAGENET1K_V1" in info.value.hint


def test_random_initialisation_warns_and_is_recorded(tmp_path: Path) -> None:
    prep = Preprocessing(input_size=(32, 32))
    with pytest.warns(RandomInitialisationWarning, match="random initialisation of resnet18"):
        result = extend(strategy="replace", arch="resnet18", num_classes=3, preprocessing=prep)
    assert result.config.lineage[-1]["weights"] == {"source": "random initialisation"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet = extend(strategy="replace", arch="resnet18", num_classes=3, preprocessing=prep, random_init=True)
    assert quiet.config.lineage[-1]["weights"] == {"source": "random initialisation"}
    with pytest.raises(InvalidArgumentError, match="random_init"):
        extend(strategy="replace", arch="resnet18", weights="DEFAULT", random_init=True, num_classes=3)


def test_random_initialisation_warning_is_one_line_in_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from toolkit.cli import main

    out = tmp_path / "m"
    code = main(["extend", "--arch", "resnet18", "-s", "replace", "-n", "3", "--input-size", "32", "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    warned = [line for line in err.splitlines() if line.startswith("rehead: warning:")]
    assert len(warned) == 1 and "random initialisation" in warned[0], err
    code = main(["inspect", str(out), "--json"])
    info = json.loads(capsys.readouterr().out)
    assert code == 0
    assert info["weights_source"] == "random initialisation"
    assert info["input_size"] == "32x32" and info["resize_size"].startswith("none")


def test_weights_file_is_recorded_with_its_hash(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from toolkit.cli import main

    path = tmp_path / "w.safetensors"
    save_file(torchvision.models.resnet18(weights=None).state_dict(), str(path))
    result = extend(strategy="replace", arch="resnet18", weights=path, num_classes=3, input_size=32,
                    output=tmp_path / "m")
    assert result.config.lineage[-1]["weights"] == {"source": "file", "path": str(path), "sha256": sha256_file(path)}
    assert result.config.preprocessing.resize_size is None
    assert main(["inspect", str(tmp_path / "m"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["weights_source"] == f"file {path}"


def test_weights_name_or_file() -> None:
    assert not is_weights_file("IMAGENET1K_V1") and not is_weights_file("ResNet18_Weights.IMAGENET1K_V1")
    assert is_weights_file("missing.safetensors") and is_weights_file("x/missing.PTH")
    assert is_weights_file(__file__)  # an existing file, whatever its name


def test_preprocessing_resize_size_is_optional_in_config_json() -> None:
    old = {"input_size": [224, 224], "mean": [0.5] * 3, "std": [0.5] * 3, "channels": 3, "interpolation": "bilinear"}
    prep = Preprocessing.from_json(old)
    assert prep.resize_size is None and prep.to_json() == old  # older records read and write back unchanged
    cropped = Preprocessing(resize_size=256)
    assert cropped.to_json()["resize_size"] == 256
    assert Preprocessing.from_json(cropped.to_json()) == cropped
    assert cropped.with_input_size(32) == Preprocessing(input_size=(32, 32), resize_size=37)
    assert Preprocessing().with_input_size(32).resize_size is None
