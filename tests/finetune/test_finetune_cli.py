"""``rehead finetune`` end to end: accuracy on digits, and bad inputs as one-line errors (row 31)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from toolkit.cli import main
from toolkit.finetune import default_work_dir

DIGITS = [str(d) for d in range(10)]


def _digit_folder(root: Path, *, per_class: int = 2) -> Path:
    from toolkit.data.digits import digits_uint8

    images, labels = digits_uint8("train")
    for digit in range(10):
        folder = root / str(digit)
        folder.mkdir(parents=True)
        for i, img in enumerate(images[labels == digit][:per_class]):
            Image.fromarray(np.kron(img, np.ones((4, 4), dtype=np.uint8))).save(folder / f"{i}.png")
    return root


def _corrupt(root: Path, case: str) -> str:
    """Damage the folder as ``case`` says; return what the error must name."""
    if case == "unreadable":
        (root / "3" / "0.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00garbage")
        return "0.png"
    if case == "non-image":
        (root / "5" / "readme.md").write_text("not an image")
        return "readme.md"
    if case == "empty-class":
        for f in (root / "7").iterdir():
            f.unlink()
        return "class '7'"
    if case == "extra-class":
        (root / "cats").mkdir()
        return "cats are not classes of the model"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["unreadable", "non-image", "empty-class", "extra-class"])
def test_bad_image_folder_is_one_line_exit_2_nothing_written(
    digits_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    data = _digit_folder(tmp_path / "data")
    must_name = _corrupt(data, case)
    out = tmp_path / "out"
    code = main(["finetune", str(digits_model_dir), "--data", str(data), "-o", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("rehead: error: ") and must_name in err[0], err
    assert "Traceback" not in err[0]
    assert not out.exists() and not default_work_dir(out).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_usage_errors(digits_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "o")
    assert main(["finetune", str(digits_model_dir), "--data", "digits", "--digits-subset", "0-x", "-o", out]) == 2
    assert "--digits-subset: '0-x' is not an integer" in capsys.readouterr().err
    assert main(["finetune", str(digits_model_dir), "--data", "digits", "--epochs", "0", "-o", out]) == 2
    err = capsys.readouterr().err
    assert "epochs must be a positive integer, got 0; hint: e.g. 6" in err and "flag: --epochs" in err
    assert main(["finetune", str(digits_model_dir), "--data", "digits", "--optimizer", "lamb", "-o", out]) == 2
    assert "unknown optimizer 'lamb'" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["finetune", str(digits_model_dir), "--data", "digits", "--device", "cuda", "-o", out]) == 3
        assert "no CUDA GPU" in capsys.readouterr().err
    assert not Path(out).exists()


def test_cli_finetune_of_an_extended_resnet18_reaches_95_percent_on_digits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The demo flow, small: resnet18 (32x32) trained on digits 0-6, head padded to 10, then the CLI."""
    from toolkit.extension import extend
    from toolkit.finetune import FinetuneConfig, evaluate, pretrain
    from toolkit.models.model_dir import load_model_dir

    # one thread: on a shared 2-core machine two OpenMP threads stall each other (5x slower here)
    pre_cfg = FinetuneConfig(epochs=3, freeze_epochs=0, backbone_lr_mult=1.0, threads=1)
    base = pretrain("resnet18", "digits", DIGITS[:7], pre_cfg, output=tmp_path / "base", progress=False)
    extended = extend(
        strategy="pad-random", model_dir=base.path, num_classes=10, class_names=DIGITS, output=tmp_path / "ext"
    )
    out = tmp_path / "ft"
    assert main(["finetune", str(extended.path), "--data", "digits", "--threads", "1", "-o", str(out)]) == 0
    stdout = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert f"test top-1 {metrics['test_top1']:.4f}" in stdout
    assert metrics["test_top1"] >= 0.95, metrics
    loaded = load_model_dir(out)
    from toolkit.data import load_training_data

    data = load_training_data("digits", loaded.config.preprocessing, loaded.config.class_names)
    assert data.test is not None and len(set(data.test[1].tolist())) == 10  # all ten digits, held out
    assert evaluate(loaded.module, *data.test) == pytest.approx(metrics["test_top1"])
    assert [e["stage"] for e in loaded.config.lineage] == ["extend", "finetune", "extend", "finetune"]


def test_option_defaults_are_finetune_configs() -> None:
    """The CLI's defaults are read from FinetuneConfig (toolkit.finetune.config imports no torch); every
    option named like a field shows the field's default, "off" (None) as 0."""
    import dataclasses

    import typer

    from toolkit.cli import app
    from toolkit.finetune import FinetuneConfig

    group = typer.main.get_command(app)
    command = group.commands["finetune"]  # type: ignore[attr-defined]
    config = {f.name: f.default for f in dataclasses.fields(FinetuneConfig)}
    checked = 0
    for param in command.params:
        name = param.name
        if name in config and param.default is not None:
            # 0 on the command line is the config's None ("off") for clip, patience, checkpoint_every_steps
            value = None if param.default == 0 and config[name] is None else param.default
            assert value == config[name], (param.name, param.default, config[name])
            checked += 1
    assert checked >= 12
