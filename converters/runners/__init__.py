"""Running an artifact: the ``Runner`` interface, the registry that opens a file with its format's runner
(``converters.artifact``), and the eager PyTorch runner; each format's own runner lives in its folder.

Names are imported on first use; the ``TYPE_CHECKING`` block names the same imports for
readers and type checkers (a test keeps the two lists equal).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from converters.runners.base import Runner as Runner
    from converters.runners.registry import open_runner as open_runner
    from converters.runners.registry import register_runner as register_runner
    from converters.runners.registry import registered_suffixes as registered_suffixes

_EXPORTS = {
    "Runner": "converters.runners.base",
    "open_runner": "converters.runners.registry",
    "register_runner": "converters.runners.registry",
    "registered_suffixes": "converters.runners.registry",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'converters.runners' has no attribute '{name}'")
