"""The lazily exported names of ``toolkit`` (and of ``toolkit.heads``, ``toolkit.finetune``) are the
functions, every time they are imported."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_extend_is_the_function_on_every_import() -> None:
    code = (
        "import toolkit.cli\n"  # the CLI imports the library's modules; a name must not be shadowed by one
        "from toolkit import extend\n"
        "import toolkit.extension\n"
        "from toolkit import extend as again\n"
        "assert callable(extend) and extend is again, (extend, again)\n"
        "assert extend.__module__ == 'toolkit.extension'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("package", ["toolkit.heads", "toolkit.finetune"])
def test_lazy_subpackage_exports_are_the_modules_names(package: str) -> None:
    """Each lazily exported name is its module's object (``tests/test_layout.py`` checks that the
    ``TYPE_CHECKING`` imports name the same)."""
    import importlib

    module = importlib.import_module(package)
    assert set(module.__all__) == set(module._EXPORTS)
    for name, where in module._EXPORTS.items():
        assert getattr(module, name) is getattr(importlib.import_module(where), name)


def test_no_submodule_shadows_an_exported_name() -> None:
    """Every submodule imported first (as training does), the exported names are still the functions."""
    code = (
        "import importlib, pkgutil, toolkit.finetune, toolkit.heads\n"
        "for pkg in (toolkit.finetune, toolkit.heads):\n"
        "    for info in pkgutil.iter_modules(pkg.__path__):\n"
        "        importlib.import_module(f'{pkg.__name__}.{info.name}')\n"
        "from toolkit.finetune import evaluate, finetune, pretrain\n"
        "from toolkit.heads import split\n"
        "assert all(callable(f) and not hasattr(f, '__path__') and type(f).__name__ == 'function'\n"
        "           for f in (evaluate, finetune, pretrain, split)), (evaluate, finetune, pretrain, split)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
