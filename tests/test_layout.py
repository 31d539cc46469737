"""The shape issue 23 set: one registry of formats, lazy packages, small modules and functions.

These read the source (AST) or a fresh interpreter's ``sys.modules``; each fails on the layout
it replaced (a suffix spelled in the bundle, an eager ``converters/__init__``, a 1,000-line module).
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("toolkit", "converters", "validation")
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 100
#: format folders: each may spell its own suffixes (int8 is a variant of the ONNX format)
FORMAT_FOLDERS = {
    "onnx": (".onnx",),
    "int8": (".onnx",),
    "tensorrt": (".engine", ".plan", ".onnx"),
    "pt2": (".pt2",),
    "openvino": (".xml", ".onnx"),
}
SUFFIX = re.compile(r"\.(onnx|pt2|engine|plan|xml)$")
#: strings that end like an artifact but name something else
NOT_ARTIFACTS = ("ai.onnx", "torch.onnx", "junit.xml")


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _string_constants(tree: ast.AST) -> list[ast.Constant]:
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def test_no_module_over_the_limit() -> None:
    long = {_rel(p): n for p in _modules() if (n := p.read_text(encoding="utf-8").count("\n")) > MAX_MODULE_LINES}
    assert long == {}, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_no_function_over_the_limit() -> None:
    long = {}
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                if (n := node.end_lineno - start + 1) > MAX_FUNCTION_LINES:  # type: ignore[operator]
                    long[f"{_rel(path)}:{node.name}"] = n
    assert long == {}, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_artifact_suffixes_are_spelled_in_the_registry_only() -> None:
    """Outside ``converters/artifact.py`` a library module asks the registry; a format's folder may
    name its own files; the CLI's help (``MODEL.onnx``) and the demo's file names are text."""
    found = {}
    for path in _modules():
        rel = _rel(path)
        parts = path.relative_to(ROOT).parts
        if rel == "converters/artifact.py" or parts[:2] == ("toolkit", "cli") or rel == "toolkit/demo.py":
            continue
        allowed: tuple[str, ...] = ()
        if parts[0] == "converters" and len(parts) > 2:
            allowed = FORMAT_FOLDERS.get(parts[1], ())
        for node in _string_constants(ast.parse(path.read_text(encoding="utf-8"))):
            text = node.value.strip()
            match = SUFFIX.search(text)
            if match and not text.endswith(NOT_ARTIFACTS) and match.group(0) not in allowed:
                found.setdefault(rel, []).append((node.lineno, node.value))
    assert found == {}, f"artifact suffixes spelled outside the registry: {found}"


def _init_files() -> list[Path]:
    """Every package ``__init__`` but the CLI's: the application's entry point imports its
    command modules to register them with Typer (by design; ``test_cli_startup`` keeps it light)."""
    cli = ROOT / "toolkit" / "cli" / "__init__.py"
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("__init__.py") if p != cli)


@pytest.mark.parametrize("init", _init_files(), ids=_rel)
def test_every_package_init_is_lazy(init: Path) -> None:
    """A package ``__init__`` imports none of its modules at run time."""
    tree = ast.parse(init.read_text(encoding="utf-8"))
    eager = [
        ast.unparse(node)
        for node in tree.body
        if isinstance(node, (ast.Import, ast.ImportFrom))
        and not (isinstance(node, ast.ImportFrom) and node.module in ("__future__", "typing", "toolkit._lazy"))
    ]
    assert eager == [], f"{_rel(init)} imports at run time: {eager}"
    exports = {}
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom)
                exports.update({a.asname or a.name: stmt.module for a in stmt.names})
    table = next(
        (
            ast.literal_eval(node.value)
            for node in tree.body
            if isinstance(node, ast.Assign) and [getattr(t, "id", "") for t in node.targets] == ["_EXPORTS"]
        ),
        {},
    )
    assert exports == table, "the TYPE_CHECKING imports and _EXPORTS name different things"


def _loaded(code: str, prefixes: tuple[str, ...]) -> list[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in sys.modules if m.startswith({prefixes!r}))))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def test_the_comparison_layer_loads_no_exporter() -> None:
    heavy = ("converters.onnx", "converters.int8", "converters.tensorrt", "converters.pt2", "torch", "onnx")
    assert _loaded("import converters.compare\nfrom converters.compare import compare_outputs", heavy) == []


def test_the_artifact_registry_loads_no_format_until_asked() -> None:
    heavy = ("converters.onnx", "converters.int8", "converters.tensorrt", "converters.pt2", "torch", "onnx")
    code = "from converters import artifact\nartifact.format_of('m.plan'); artifact.suffixes()"
    assert _loaded(code, heavy) == []


def test_converters_imports_no_validation_module() -> None:
    code = "import converters.runners.registry, converters.artifact, converters.onnx.export, converters.pt2.export"
    assert _loaded(code, ("validation",)) == []
