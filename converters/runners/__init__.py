"""Running an artifact: the ``Runner`` interface, the registry that opens a file with its format's runner
(``converters.artifact``), and the eager PyTorch runner; each format's own runner lives in its folder.

Names are imported on first use; the ``TYPE_CHECKING`` block names the same imports for
readers and type checkers (a test keeps the two lists equal).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from toolkit._lazy import lazy_exports

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

__getattr__ = lazy_exports(__name__, _EXPORTS, globals())
