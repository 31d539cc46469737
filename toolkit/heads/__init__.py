"""Head surgery: locate a classifier's head, change it with a named strategy, freeze around it.

Each public name is imported on first use, as in ``toolkit``: the CLI reads ``StrategyArgs``'
defaults when it starts, and that must not import torch. The ``TYPE_CHECKING`` block names the
same imports (``x as x``: an explicit re-export) for readers and type checkers; a test keeps the
two lists equal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from toolkit._lazy import lazy_exports

if TYPE_CHECKING:
    from toolkit.heads.freeze import ParamSplit as ParamSplit
    from toolkit.heads.freeze import backbone_stages as backbone_stages
    from toolkit.heads.freeze import freeze_backbone as freeze_backbone
    from toolkit.heads.freeze import param_groups as param_groups
    from toolkit.heads.freeze import split as split
    from toolkit.heads.freeze import unfreeze_all as unfreeze_all
    from toolkit.heads.freeze import unfreeze_stages as unfreeze_stages
    from toolkit.heads.locate import HeadLocation as HeadLocation
    from toolkit.heads.locate import candidates as candidates
    from toolkit.heads.locate import locate_head as locate_head
    from toolkit.heads.options import StrategyArgs as StrategyArgs
    from toolkit.heads.strategies import STRATEGIES as STRATEGIES
    from toolkit.heads.surgery import apply_head_structure as apply_head_structure
    from toolkit.heads.surgery import extend_head as extend_head
    from toolkit.heads.surgery import head_features as head_features
    from toolkit.heads.surgery import identity_spec as identity_spec
    from toolkit.records import ClassOrigin as ClassOrigin
    from toolkit.records import HeadSpec as HeadSpec

_EXPORTS = {
    "ParamSplit": "toolkit.heads.freeze",
    "backbone_stages": "toolkit.heads.freeze",
    "freeze_backbone": "toolkit.heads.freeze",
    "param_groups": "toolkit.heads.freeze",
    "split": "toolkit.heads.freeze",
    "unfreeze_all": "toolkit.heads.freeze",
    "unfreeze_stages": "toolkit.heads.freeze",
    "HeadLocation": "toolkit.heads.locate",
    "candidates": "toolkit.heads.locate",
    "locate_head": "toolkit.heads.locate",
    "StrategyArgs": "toolkit.heads.options",
    "STRATEGIES": "toolkit.heads.strategies",
    "apply_head_structure": "toolkit.heads.surgery",
    "extend_head": "toolkit.heads.surgery",
    "head_features": "toolkit.heads.surgery",
    "identity_spec": "toolkit.heads.surgery",
    "ClassOrigin": "toolkit.records",
    "HeadSpec": "toolkit.records",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS, globals())
