"""Copy NVIDIA's published TensorRT type stubs (tensorrt-stubs) into build/trt-stubs, repaired.

The stubs are generated from the pybind11 bindings and a few signatures are not valid Python
(a parameter named ``in``; a parameter without a default after one with a default), so mypy
refuses to read them at all, and the module's ``bool`` (TensorRT's data type) shadows the
builtin in every annotation. This copies ``tensorrt/`` and ``tensorrt_bindings/`` from the
installed package, renames ``in`` to ``in_`` in parameter lists, gives later parameters a
``...`` default where an earlier one has a default, spells the builtin ``builtins.bool`` in
annotations, and gives ``OnnxParser.get_error`` the ``ParserError`` return its docstring names
(the generator wrote ``-> ...``), then checks that every file parses.
Nothing else changes: every type stays NVIDIA's. mypy reads them through ``mypy_path``.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import shutil
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "build" / "trt-stubs"
_DEF = re.compile(r"^(\s*def \w+\()(.*)(\)\s*->.*:\s*)$")


def _split(params: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in params:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    if current.strip():
        parts.append(current)
    return parts


def repair(line: str) -> str:
    match = _DEF.match(line)
    if not match:
        return line
    head, params, tail = match.groups()
    fixed, defaulted = [], False
    for part in _split(params):
        part = re.sub(r"^(\s*)in(\s*:)", r"\1in_\2", part)
        name = part.strip()
        if "=" in name:
            defaulted = True
        elif defaulted and name and not name.startswith("*"):
            part = f"{part} = ..."
        fixed.append(part)
    return head + ",".join(fixed) + tail


_BOOL = re.compile(r"\bbool\b")


def builtin_bool(line: str) -> str:
    """``bool`` in an annotation -> ``builtins.bool`` (the module-level ``bool: DataType`` stays)."""
    if line.startswith("bool:") or "bool" not in line:
        return line
    return _BOOL.sub("builtins.bool", line)


def main() -> int:
    spec = importlib.util.find_spec("tensorrt_bindings")
    if spec is None or not spec.submodule_search_locations:
        print("tensorrt-stubs is not installed (pip install --no-deps tensorrt-stubs)", file=sys.stderr)
        return 1
    site = Path(next(iter(spec.submodule_search_locations))).parent
    shutil.rmtree(OUT, ignore_errors=True)
    for package in ("tensorrt", "tensorrt_bindings"):
        for source in (site / package).glob("*.pyi"):
            target = OUT / package / source.name
            target.parent.mkdir(parents=True, exist_ok=True)
            text = "".join(builtin_bool(repair(line)) for line in source.read_text().splitlines(keepends=True))
            text = text.replace("import typing\n", "import builtins\nimport typing\n", 1)
            text = text.replace(
                "    def get_error(self, index: int) -> ...:", "    def get_error(self, index: int) -> ParserError:"
            )
            ast.parse(text, filename=str(target))  # raises if a line is still not Python
            target.write_text(text)
    print(f"TensorRT stubs repaired into {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
