"""Hints say flags on the command line: the library's ``resume=True`` reads ``--resume`` there."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from toolkit.cli import main
from toolkit.cli._app import app
from toolkit.cli._words import cli_words


def _command(*path: str) -> object:
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    return command


@pytest.mark.parametrize(
    ("path", "text", "expected"),
    [
        (("finetune",), "pass resume=True to continue it, or overwrite=True to start over",
         "pass --resume to continue it, or --overwrite to start over"),
        (("validate",), "or cross_check=True to compare anyway", "or --cross-check to compare anyway"),
        (("validate",), "e.g. batch_sizes=(1, 8)", "e.g. --batch-sizes 1,8"),
        (("extend",), "e.g. keep=[3, 1, 7]", "e.g. --keep 3,1,7"),
        (("finetune",), "a class map only applies to an image folder; leave class_map unset",
         "a class map only applies to an image folder; leave --class-map unset"),
        # a path or a file name that holds an option's name is a path
        (("finetune",), "cannot read '/data/class_map.csv' or /data/class_map.csv",
         "cannot read '/data/class_map.csv' or /data/class_map.csv"),
        # not an option of this command, or plain English: left alone
        (("finetune",), "use kind='gpu' for engines; the data is fine", "use kind='gpu' for engines; the data is fine"),
    ],
)  # fmt: skip
def test_library_words_become_flags(path: tuple[str, ...], text: str, expected: str) -> None:
    assert cli_words(text, _command(*path)) == expected


def test_hints_on_the_command_line_name_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              digits_model_dir: Path) -> None:  # fmt: skip
    assert main(["validate", str(digits_model_dir), str(digits_model_dir), "--batch-sizes", "1,x"]) == 2
    err = capsys.readouterr().err
    assert "e.g. --batch-sizes 1,8" in err and "0-6" not in err, err
    work = tmp_path / "t.ckpt"
    work.mkdir()
    (work / "step-00000001.pt").write_bytes(b"")
    assert main(["finetune", str(digits_model_dir), "--data", "digits", "-o", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err
    assert "=True" not in err and "--resume" in err and "--overwrite" in err, err
