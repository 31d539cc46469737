"""``rehead --help`` stays fast: the CLI imports no heavy library until a command runs.

Timing on a shared machine is noisy, so the tests check the cause instead: which modules a
fresh interpreter holds after importing the CLI and rendering its help. The lazily loaded
package APIs are checked against the ``TYPE_CHECKING`` imports that type checkers read.
"""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "torchvision", "numpy", "onnx", "onnxruntime", "onnxscript", "matplotlib", "converters", "validation")


def _loaded_after(code: str) -> list[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def test_importing_the_cli_loads_no_heavy_library() -> None:
    assert _loaded_after("import toolkit.cli") == []


@pytest.mark.parametrize(
    "args", [["--help"], ["export", "onnx", "--help"], ["validate", "--help"], ["finetune", "--help"]]
)
def test_help_loads_no_heavy_library(args: list[str]) -> None:
    code = (
        "import contextlib, io\nfrom toolkit.cli import main\n"
        f"with contextlib.redirect_stdout(io.StringIO()):\n    main({args!r})"
    )
    assert _loaded_after(code) == []


def _type_checking_imports(package: str) -> dict[str, str]:
    """name -> module of the imports under ``if TYPE_CHECKING:`` in the package's ``__init__``."""
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.origin is not None
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    names: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom) and stmt.module is not None
                names.update({alias.asname or alias.name: stmt.module for alias in stmt.names})
    return names


@pytest.mark.parametrize("package", ["toolkit", "validation"])
def test_lazy_exports_match_the_type_checking_imports(package: str) -> None:
    module = importlib.import_module(package)
    assert _type_checking_imports(package) == module._EXPORTS
    assert set(module.__all__) - {"__version__"} == set(module._EXPORTS)


def _command_paths() -> list[list[str]]:
    import typer

    from toolkit.cli import app

    paths: list[list[str]] = [[]]

    def walk(command: object, path: list[str]) -> None:
        for name, sub in getattr(command, "commands", {}).items():
            paths.append([*path, name])
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return paths


@pytest.mark.parametrize("path", _command_paths(), ids=lambda p: " ".join(p) or "rehead")
def test_help_shows_plain_flags_without_a_type(path: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from toolkit.cli import main

    assert main([*path, "--help"]) == 0
    text = capsys.readouterr().out
    assert "Usage: rehead" in text and "-h, --help" in text
    assert "<bool>" not in text and "BOOLEAN" not in text, text
