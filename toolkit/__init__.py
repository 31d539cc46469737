"""rehead's toolkit: models, heads, fine-tuning and the CLI.

The public API is re-exported here. At run time each name is imported on first use, so that
``import toolkit`` (and with it ``rehead --help``) does not import torch; the ``TYPE_CHECKING``
block names the same imports (``x as x``: an explicit re-export) for readers and type
checkers. A test keeps the two lists equal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from toolkit._lazy import lazy_exports

__version__ = "0.1.0"

if TYPE_CHECKING:
    from toolkit.errors import ReheadError as ReheadError
    from toolkit.extension import extend as extend
    from toolkit.heads.locate import locate_head as locate_head
    from toolkit.heads.strategies import STRATEGIES as STRATEGIES
    from toolkit.heads.surgery import extend_head as extend_head
    from toolkit.models.checkpoint import load_state_dict as load_state_dict
    from toolkit.models.loading import load_model as load_model
    from toolkit.models.model_dir import LoadedModel as LoadedModel
    from toolkit.models.model_dir import load_model_dir as load_model_dir
    from toolkit.models.model_dir import save_model_dir as save_model_dir
    from toolkit.records import ClassOrigin as ClassOrigin
    from toolkit.records import HeadSpec as HeadSpec
    from toolkit.records import ModelConfig as ModelConfig
    from toolkit.records import Preprocessing as Preprocessing

_EXPORTS = {
    "ReheadError": "toolkit.errors",
    "HeadSpec": "toolkit.records",
    "ClassOrigin": "toolkit.records",
    "ModelConfig": "toolkit.records",
    "Preprocessing": "toolkit.records",
    "load_model": "toolkit.models.loading",
    "load_state_dict": "toolkit.models.checkpoint",
    "load_model_dir": "toolkit.models.model_dir",
    "save_model_dir": "toolkit.models.model_dir",
    "LoadedModel": "toolkit.models.model_dir",
    "extend": "toolkit.extension",
    "extend_head": "toolkit.heads.surgery",
    "locate_head": "toolkit.heads.locate",
    "STRATEGIES": "toolkit.heads.strategies",
}

__all__ = ["__version__", *_EXPORTS]

__getattr__ = lazy_exports(__name__, _EXPORTS, globals())
