"""Naming your own classes: a padded head takes the new classes' names alone (or the full list),
``extend`` says what the new classes are called and how to rename them, and a fine-tune whose
folders match no class lists the classes the data leaves open, the new ones first."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolkit.cli import main
from toolkit.errors import InvalidArgumentError
from toolkit.extension import extend

NEW = ["circle", "square", "triangle"]


@pytest.mark.parametrize("strategy", ["pad-random", "pad-mean"])
def test_padded_head_takes_the_new_names_alone_or_all(digits_model_dir: Path, strategy: str) -> None:
    alone = extend(strategy=strategy, model_dir=digits_model_dir, num_classes=13, class_names=NEW)
    assert alone.config.class_names == (*(str(d) for d in range(10)), *NEW)
    full = extend(strategy=strategy, model_dir=digits_model_dir, num_classes=13,
                  class_names=list(alone.config.class_names))  # fmt: skip
    assert full.config.class_names == alone.config.class_names
    with pytest.raises(InvalidArgumentError, match=r"2 class names given for a head of 13 classes") as info:
        extend(strategy=strategy, model_dir=digits_model_dir, num_classes=13, class_names=NEW[:2])
    assert "3 new classes' names alone, or all 13" in info.value.hint


def test_replace_still_needs_every_name(digits_model_dir: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="3 class names given for 13 classes"):
        extend(strategy="replace", model_dir=digits_model_dir, num_classes=13, class_names=NEW)


def test_extend_names_the_new_classes_and_says_how_to_rename(
    digits_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["extend", "--from", str(digits_model_dir), "-n", "13", "-s", "pad-random",
                 "-o", str(tmp_path / "m")]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "new classes (rows 10-12): new_10, new_11, new_12" in out
    assert "--class-names FILE (the 3 new names alone" in out and "--class-map" in out

    names = tmp_path / "new.txt"
    names.write_text("\n".join(NEW))
    assert main(["extend", "--from", str(digits_model_dir), "-n", "13", "-s", "pad-random", "--class-names",
                 str(names), "-o", str(tmp_path / "named")]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "new classes (rows 10-12): circle, square, triangle" in out and "to name them" not in out

    data = tmp_path / "shapes"
    for cls in NEW:
        (data / cls).mkdir(parents=True)
    assert main(["finetune", str(tmp_path / "m"), "--data", str(data), "-o", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err
    assert "does not cover, new ones first: new_10, new_11, new_12, 0, 1" in err, err
    assert "circle,new_10" in err and not (tmp_path / "t").exists()
