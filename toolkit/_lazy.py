"""The lazy export every package ``__init__`` uses.

A package lists what it exports as ``_EXPORTS = {name: module}`` (and the same imports under
``TYPE_CHECKING`` for readers and type checkers; ``tests/test_layout.py`` keeps the two equal),
then sets ``__getattr__ = lazy_exports(__name__, _EXPORTS, globals())``: a name's module is
imported on its first use, so importing a package loads none of its modules. This module imports
nothing but the standard library, so any package may use it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from importlib import import_module


def lazy_exports(
    package: str, exports: Mapping[str, str], namespace: MutableMapping[str, object]
) -> Callable[[str], object]:
    """The module-level ``__getattr__`` (PEP 562) that imports an exported name on first use.

    Args:
        package: the package's ``__name__``, for the error message.
        exports: exported name -> the module that defines it.
        namespace: the package's ``globals()``; a loaded name is stored there, so later lookups
            skip ``__getattr__``.

    Returns:
        The function to bind as the package's ``__getattr__``.
    """

    def __getattr__(name: str) -> object:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__
