"""Helpers for the reliability tests: the CLI in a real subprocess, leftover checks, the ledger.

``run`` starts ``python -m toolkit.cli`` (the console script's code) with this interpreter, the
test models' folder on ``PYTHONPATH`` and one thread. ``assert_clean_failure`` checks the
contract of every bad input: the exit code, one ``rehead: error: ... hint: ...`` line, no
traceback, and nothing left behind (neither the output nor a hidden temp file or staging
folder beside it). ``LEDGER`` counts what the tests tried, for the README's figures.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
#: the counts the README's "what rehead promises" section reports (written at session end)
LEDGER: collections.Counter[str] = collections.Counter()


def env(**extra: str) -> dict[str, str]:
    paths = [str(TESTS / "converters"), str(TESTS / "reliability"), *sys.path]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p), "OMP_NUM_THREADS": "1", **extra}


def run(args: Sequence[object], *, timeout: float = 300, cwd: Path | None = None, **extra_env: str
        ) -> subprocess.CompletedProcess[str]:
    """``rehead ARGS`` in a subprocess; its exit code, stdout and stderr."""
    return subprocess.run(
        [sys.executable, "-m", "toolkit.cli", *[str(a) for a in args]],
        capture_output=True, text=True, timeout=timeout, env=env(**extra_env), cwd=cwd,
    )


def leftovers(out: Path) -> list[str]:
    """Hidden temp files, staging folders or set-aside outputs beside ``out``."""
    parent = out.parent
    if not parent.is_dir():
        return []
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{out.name}."))


def assert_clean_failure(
    proc: subprocess.CompletedProcess[str], out: Path | None, *, expect: str, exit_code: int = 2,
    kind: str = "bad_inputs",
) -> str:
    """The failure contract (see the module docstring); returns the error line."""
    assert proc.returncode == exit_code, (proc.returncode, proc.stderr[-2000:])
    lines = [line for line in proc.stderr.strip().splitlines()
             if line.startswith("rehead: error:")]
    others = [line for line in proc.stderr.strip().splitlines()
              if line.strip() and not line.startswith(("rehead: error:", "rehead: warning:"))
              and not line.lstrip().startswith(("export ", "note:", "validat", "packag", "lint"))]
    assert len(lines) == 1, f"expected one error line, got: {proc.stderr[-2000:]!r}"
    assert "hint:" in lines[0], lines[0]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert not [o for o in others if o.startswith(("  File ", "Traceback"))], others
    assert expect.lower() in lines[0].lower(), lines[0]
    if out is not None:
        assert not out.exists(), f"{out} was written on a bad input"
        assert not leftovers(out), leftovers(out)
    LEDGER[kind] += 1
    return lines[0]


def write_ledger() -> None:
    """Add this session's counts to the JSON file ``REHEAD_RELIABILITY_LEDGER`` names (if set)."""
    target = os.environ.get("REHEAD_RELIABILITY_LEDGER")
    if not target or not LEDGER:
        return
    path = Path(target)
    old = json.loads(path.read_text()) if path.is_file() else {}
    merged = collections.Counter(old.get("counts", {}))
    merged.update(LEDGER)
    path.write_text(json.dumps({"counts": dict(sorted(merged.items()))}, indent=2) + "\n")
