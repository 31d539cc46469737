"""docs/bad-inputs.md and the tests stay in step: every row has a ``test_row<N>_*`` test in the
file the row names, and every such test names a row of the table."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "docs" / "bad-inputs.md"
HERE = Path(__file__).resolve().parent
ROW = re.compile(r"^\| (\d+) \|(.+)\|\s*(test_[\w.]+\.py)\s*\|\s*$")


def _rows() -> dict[int, str]:
    rows = {}
    for line in TABLE.read_text(encoding="utf-8").splitlines():
        match = ROW.match(line)
        if match:
            rows[int(match[1])] = match[3]
    return rows


def _tests() -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for path in sorted(HERE.glob("test_*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.FunctionDef) and (m := re.match(r"test_row(\d+(?:_and_\d+)*)_", node.name)):
                for number in m[1].split("_and_"):  # test_row2_and_4_...: rows 2 and 4
                    found.setdefault(int(number), []).append(f"{path.name}::{node.name}")
    return found


def test_every_row_has_a_test_in_the_file_it_names() -> None:
    rows, tests = _rows(), _tests()
    assert sorted(rows) == list(range(1, max(rows) + 1)), "rows are numbered 1..N without gaps"
    missing = {n: f for n, f in rows.items() if not any(t.startswith(f + "::") for t in tests.get(n, []))}
    assert not missing, f"rows without a test_row<N>_ test in the file they name: {missing}"


def test_every_row_test_names_a_row_of_the_table() -> None:
    rows, tests = _rows(), _tests()
    strays = {n: t for n, t in tests.items() if n not in rows}
    assert not strays, f"tests for rows the table does not have: {strays}"


def test_the_table_keeps_the_reference_rows() -> None:
    """Rows 1-31 are shared/reference/bad-inputs.md's, in its order (its 'input' column)."""
    reference = ROOT.parent / "shared" / "reference" / "bad-inputs.md"
    if not reference.is_file():  # a clone without the shared folder beside it
        return
    ours = {int(m[1]): m[2].split("|")[0].strip() for line in TABLE.read_text().splitlines() if (m := ROW.match(line))}
    theirs = {}
    for line in reference.read_text(encoding="utf-8").splitlines():
        if (m := re.match(r"^\| (\d+) \| (.+?) \|", line)):
            theirs[int(m[1])] = m[2].strip()
    assert theirs and all(ours.get(n) == text for n, text in theirs.items()), {
        n: (ours.get(n), t) for n, t in theirs.items() if ours.get(n) != t}
