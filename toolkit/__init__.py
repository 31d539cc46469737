"""rehead's toolkit: models, heads, fine-tuning and the CLI.

The public API is re-exported here lazily so that ``import toolkit`` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "ReheadError": "toolkit.errors",
    "HeadSpec": "toolkit.records",
    "ClassOrigin": "toolkit.records",
    "ModelConfig": "toolkit.records",
    "Preprocessing": "toolkit.records",
    "load_model": "toolkit.loading",
    "load_state_dict": "toolkit.checkpoint",
    "load_model_dir": "toolkit.model_dir",
    "save_model_dir": "toolkit.model_dir",
    "LoadedModel": "toolkit.model_dir",
    "extend": "toolkit.extend",
    "extend_head": "toolkit.heads.surgery",
    "locate_head": "toolkit.heads.locate",
    "STRATEGIES": "toolkit.heads.strategies",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'toolkit' has no attribute '{name}'")
