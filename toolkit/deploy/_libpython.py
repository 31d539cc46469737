"""The preflight of ``rehead serve``: will PyTriton's Python-backend stub load this interpreter's libpython?

The stub (``triton_python_backend_stub``) is linked against ``libpythonX.Y.so.1.0`` and gets
whichever file of that name the dynamic loader finds first, then runs this interpreter's
standard library on it. Found here: pyenv's Python 3.11.7 keeps its (shared) libpython in its
own prefix, where the loader does not look, so the stub loaded Debian's 3.11.2 library from
/usr/lib and failed at model load (3.11.7's ``multiprocessing`` calls ``RLock._recursion_count``,
which 3.11.2's C code lacks). ``check_libpython`` runs before anything starts: it resolves the
library the stub will load (with this interpreter's library folder put first on
``LD_LIBRARY_PATH``, which is what makes pyenv's Python work) and asks that library its version;
any other version, or no library, is ``MissingDependencyError`` (exit 3) naming the interpreter
to use instead.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from toolkit.errors import MissingDependencyError

_SHARED_FIX = (
    "run rehead from a virtual environment of a Python whose shared libpython the loader finds, e.g. "
    "Debian's: /usr/bin/python3.11 -m venv VENV && VENV/bin/pip install 'rehead[cpu,serve]'; "
    "or build the interpreter with a shared library (pyenv: PYTHON_CONFIGURE_OPTS=--enable-shared pyenv install X.Y.Z)"
)
_VERSION_PROBE = (
    "import ctypes, sys\n"
    "lib = ctypes.CDLL(sys.argv[1], mode=ctypes.RTLD_LOCAL)\n"
    "lib.Py_GetVersion.restype = ctypes.c_char_p\n"
    "print(lib.Py_GetVersion().decode().split()[0])\n"
)


@dataclasses.dataclass(frozen=True)
class LibpythonCheck:
    """What ``check_libpython`` found: the interpreter's ``version``, the ``library`` the stub will
    load (None: none found) and that library's ``library_version``; ``ld_library_path``: the value
    the server must run with."""

    version: str
    library: str | None
    library_version: str | None
    ld_library_path: str

    @property
    def ok(self) -> bool:
        return self.library is not None and self.library_version == self.version


def stub_path(version: str | None = None) -> Path:
    """PyTriton's Python-backend stub for Python ``version`` (default: this interpreter's X.Y).

    Args:
        version: the Python version (default None: this interpreter's).
    """
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            "nvidia-pytriton is not installed (it runs the Triton server)", hint='pip install "rehead[serve]"'
        )
    minor = ".".join((version or platform.python_version()).split(".")[:2])
    root = Path(next(iter(spec.submodule_search_locations)))
    stub = root / "tritonserver" / "python_backend_stubs" / minor / "triton_python_backend_stub"
    if not stub.is_file():
        shipped = sorted(p.name for p in (root / "tritonserver" / "python_backend_stubs").glob("*"))
        raise MissingDependencyError(
            f"nvidia-pytriton ships no Python-backend stub for Python {minor} (it has {', '.join(shipped) or 'none'})",
            hint=f"run rehead serve under one of those Python versions; {_SHARED_FIX}",
        )
    return stub


def _resolve(stub: Path, soname: str, env: Mapping[str, str]) -> str | None:
    """The file the dynamic loader gives ``stub`` for ``soname`` under ``env`` (ldd's answer)."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return None
    # ldd is a shell script on glibc systems: it needs a PATH even when the environment checked has none
    run_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
    try:
        done = subprocess.run([ldd, str(stub)], env=run_env, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in done.stdout.splitlines():
        name, _, rest = line.strip().partition(" => ")
        if name == soname:
            target = rest.split(" (")[0].strip()
            return None if not target or target == "not found" else target
    return None


def library_version(library: str) -> str | None:
    """``Py_GetVersion()`` of a libpython file (in a child process, so nothing loads here).

    Args:
        library: the libpython file's path.
    """
    try:
        done = subprocess.run(
            [sys.executable, "-c", _VERSION_PROBE, library], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = done.stdout.strip()
    return text if done.returncode == 0 and re.fullmatch(r"\d+\.\d+\.\d+\S*", text) else None


def check_libpython(
    *,
    version: str | None = None,
    config_vars: Mapping[str, Any] | None = None,
    stub: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> LibpythonCheck:
    """Check that PyTriton's stub will load a libpython of this interpreter's exact version.

    Raises ``MissingDependencyError`` (exit 3) saying what the stub would load and which interpreter
    to use. Pass other values than the defaults to check another interpreter's build.

    Args:
        version: the Python version, X.Y.Z (default None: this interpreter's).
        config_vars: ``sysconfig.get_config_vars()`` of the interpreter (default None: this one's).
        stub: PyTriton's Python-backend stub (default None: ``stub_path(version)``).
        environ: the environment the stub runs in (default None: this process's).
    """
    version = version or platform.python_version()
    config = sysconfig.get_config_vars() if config_vars is None else config_vars
    environ = os.environ if environ is None else environ
    stub = stub or stub_path(version)
    minor = ".".join(version.split(".")[:2])
    soname = str(config.get("INSTSONAME") or f"libpython{minor}.so.1.0")
    if ".so" not in soname:  # a static build names its .a here
        soname = f"libpython{minor}.so.1.0"
    libdir = str(config.get("LIBDIR") or "")
    shared = bool(config.get("Py_ENABLE_SHARED")) and bool(libdir) and (Path(libdir) / soname).is_file()
    ld_path = environ.get("LD_LIBRARY_PATH", "")
    library = _resolve(stub, soname, environ)
    found = library_version(library) if library else None
    parts = [p for p in ld_path.split(":") if p]
    if found != version and shared and libdir not in parts:
        # The interpreter's own folder first: what makes a Python with its libpython outside the
        # loader's default folders (pyenv's) work.
        ld_path = ":".join([libdir, *parts])
        library = _resolve(stub, soname, {**environ, "LD_LIBRARY_PATH": ld_path})
        if library is None and shutil.which("ldd") is None:
            library = str(Path(libdir) / soname)  # no ldd here: the folder put first is where it looks
        found = library_version(library) if library else None
    check = LibpythonCheck(version, library, found, ld_path)
    if check.ok:
        return check
    build = (
        f"this Python ({version}, {sys.executable}) has a shared libpython in {libdir}"
        if shared
        else f"this Python ({version}, {sys.executable}) is built without a shared libpython "
        f"(Py_ENABLE_SHARED={config.get('Py_ENABLE_SHARED')!r}, no {soname} in {libdir or 'its LIBDIR'})"
    )
    loads = (
        f"the stub would load {library} (Python {found or 'unknown'}), another Python's library, "
        "and fail when the model loads"
        if library
        else f"the stub finds no {soname} at all and cannot start"
    )
    raise MissingDependencyError(
        f"Triton's Python-backend stub (PyTriton) needs the shared libpython of the Python that runs rehead: "
        f"{build}; {loads}",
        hint=_SHARED_FIX,
    )


__all__ = ["LibpythonCheck", "check_libpython", "library_version", "stub_path"]
