"""One docstring convention (issue 23): every public function or method that takes parameters has a
Google-style ``Args:`` section with one entry per parameter, named as in the signature.

Public: the name does not start with ``_`` (dunders included in that). ``self``/``cls`` are not
parameters; properties (and their setters) take none. The CLI's Typer commands are left out: their
docstrings are the ``--help`` text. The source is read with ``ast``; nothing is imported.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("toolkit", "converters", "validation")
#: an entry of the Args section: ``name: ...``, ``name (type): ...``, ``*args: ...``, ``**kwargs: ...``
ENTRY = re.compile(r"^\s+\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:")
SECTION = re.compile(r"^\S.*:$")

Function = ast.FunctionDef | ast.AsyncFunctionDef


def _decorator_name(decorator: ast.expr) -> str:
    """The dotted name of a decorator, calls unwrapped (``@app.command("x")`` -> ``app.command``).

    Args:
        decorator: the decorator's expression.
    """
    if isinstance(decorator, ast.Call):
        decorator = decorator.func
    return ast.unparse(decorator)


def _is_exempt(node: Function) -> bool:
    names = [_decorator_name(d) for d in node.decorator_list]
    for name in names:
        if name in ("property", "functools.cached_property", "cached_property"):
            return True
        if name.endswith((".setter", ".deleter")):
            return True
        owner, _, attr = name.rpartition(".")
        if attr == "command" and (owner == "app" or owner.endswith("_app")):
            return True  # a Typer command: its docstring is the CLI's help
    return False


def _parameters(node: Function, in_class: bool) -> list[str]:
    args = node.args
    positional = [a.arg for a in (*args.posonlyargs, *args.args)]
    is_static = any(_decorator_name(d) in ("staticmethod", "builtins.staticmethod") for d in node.decorator_list)
    if in_class and not is_static and positional:
        positional = positional[1:]  # self or cls
    names = positional + [a.arg for a in args.kwonlyargs]
    names += [a.arg for a in (args.vararg, args.kwarg) if a is not None]
    return names


def _public_functions(tree: ast.Module) -> Iterator[tuple[str, Function, bool]]:
    """Module-level functions and methods of (nested) classes; functions inside functions are local.

    Args:
        tree: the parsed module.
    """

    def walk(body: list[ast.stmt], prefix: str, in_class: bool) -> Iterator[tuple[str, Function, bool]]:
        for node in body:
            if isinstance(node, ast.ClassDef):
                yield from walk(node.body, f"{prefix}{node.name}.", True)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
                yield f"{prefix}{node.name}", node, in_class

    yield from walk(tree.body, "", False)


def _documented(docstring: str) -> set[str] | None:
    """The parameter names the ``Args:`` section lists (None when there is no section).

    Args:
        docstring: the cleaned docstring (``ast.get_docstring``).
    """
    lines = docstring.splitlines()
    if "Args:" not in (line.strip() for line in lines):
        return None
    start = next(i for i, line in enumerate(lines) if line.strip() == "Args:")
    indent = len(lines[start]) - len(lines[start].lstrip())
    names: set[str] = set()
    entry_indent = None
    for line in lines[start + 1 :]:
        if not line.strip():
            continue
        here = len(line) - len(line.lstrip())
        if here <= indent:
            break  # the next section (Returns:, Raises:) or closing prose
        if entry_indent is None:
            entry_indent = here
        if here == entry_indent and (match := ENTRY.match(line)):
            names.add(match.group(1))
    return names


def _problems(package: str) -> list[str]:
    problems = []
    for path in sorted((ROOT / package).rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for qualname, node, in_class in _public_functions(tree):
            if _is_exempt(node):
                continue
            params = _parameters(node, in_class)
            if not params:
                continue
            where = f"{rel}:{node.lineno} {qualname}"
            docstring = ast.get_docstring(node)
            if not docstring:
                problems.append(f"{where}: no docstring")
                continue
            if docstring.lstrip().startswith("Args:"):
                problems.append(f"{where}: no summary line above Args:")
                continue
            documented = _documented(docstring)
            if documented is None:
                problems.append(f"{where}: no Args: section")
                continue
            missing = [p for p in params if p not in documented]
            extra = sorted(documented - set(params))
            if missing or extra:
                problems.append(f"{where}: Args: missing {missing}, not parameters {extra}")
    return problems


@pytest.mark.parametrize("package", PACKAGES)
def test_public_functions_document_their_parameters(package: str) -> None:
    problems = _problems(package)
    summary = f"{len(problems)} public functions in {package}/ without a full Args: section"
    assert problems == [], summary + ":\n" + "\n".join(problems)


def test_the_checker_reads_google_style() -> None:
    """The reader of ``Args:`` sections: entries at one indent, continuations and later sections ignored."""
    doc = (
        "Summary.\n\nArgs:\n    a: first (default 1).\n        b: continuation, not an entry.\n"
        "    *rest: more.\n\nReturns:\n    c: not an arg.\n"
    )
    assert _documented(doc) == {"a", "rest"}
    assert _documented("Summary only.") is None
    source = (
        "class C:\n"
        "    def m(self, x, *, y=1): pass\n"
        "    @staticmethod\n"
        "    def s(z): pass\n"
        "    @property\n"
        "    def p(self): pass\n"
        "    def _private(self, q): pass\n"
        "@app.command()\n"
        "def cmd(flag): pass\n"
    )
    found = {name: (node, in_class) for name, node, in_class in _public_functions(ast.parse(source))}
    assert set(found) == {"C.m", "C.s", "C.p", "cmd"}
    assert _parameters(*found["C.m"]) == ["x", "y"]
    assert _parameters(*found["C.s"]) == ["z"]
    assert _is_exempt(found["C.p"][0]) and _is_exempt(found["cmd"][0])
