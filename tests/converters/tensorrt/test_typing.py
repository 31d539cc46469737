"""converters.tensorrt._trt is checked by mypy against NVIDIA's TensorRT stubs with Any forbidden (pyproject's
override). This proves the check has teeth: the module passes, and a copy with one Any escape fails."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
STUBS = ROOT / "build" / "trt-stubs"


def _mypy(target: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), "--no-incremental",
         "--follow-imports=silent", str(target)],
        cwd=cwd, capture_output=True, text=True, timeout=300,
    )


@pytest.fixture(scope="module")
def stubs() -> Path:
    pytest.importorskip("mypy")
    if not (STUBS / "tensorrt" / "__init__.pyi").is_file():
        done = subprocess.run([sys.executable, str(ROOT / ".ci" / "trt_stubs.py")], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"tensorrt-stubs not installed: {done.stderr.strip()}")
    return STUBS


def test_trt_module_type_checks_and_an_any_escape_is_caught(stubs: Path, tmp_path: Path) -> None:
    package = tmp_path / "converters" / "tensorrt"
    package.mkdir(parents=True)
    (package.parent / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    module = package / "_trt.py"
    shutil.copy(ROOT / "converters" / "tensorrt" / "_trt.py", module)
    (tmp_path / "toolkit").mkdir()  # the one rehead module _trt imports
    (tmp_path / "toolkit" / "__init__.py").write_text("")
    shutil.copy(ROOT / "toolkit" / "errors.py", tmp_path / "toolkit" / "errors.py")
    clean = _mypy(module, tmp_path)
    assert clean.returncode == 0, clean.stdout
    # trt.nptype is untyped in the stubs: its result is Any, which the override forbids
    module.write_text(module.read_text() + "\n\ndef leak() -> object:\n    return trt.nptype(trt.DataType.FLOAT)\n")
    leaked = _mypy(module, tmp_path)
    assert leaked.returncode == 1 and 'has type "Any"' in leaked.stdout, leaked.stdout
