"""Head surgery: locate a classifier's head, change it with a named strategy, freeze around it."""

from toolkit.heads.freeze import (
    ParamSplit,
    backbone_stages,
    freeze_backbone,
    param_groups,
    split,
    unfreeze_all,
    unfreeze_stages,
)
from toolkit.heads.locate import HeadLocation, candidates, locate_head
from toolkit.heads.strategies import STRATEGIES, StrategyArgs
from toolkit.heads.surgery import apply_head_structure, extend_head, head_features, identity_spec
from toolkit.records import ClassOrigin, HeadSpec

__all__ = [
    "STRATEGIES",
    "ClassOrigin",
    "HeadLocation",
    "HeadSpec",
    "ParamSplit",
    "StrategyArgs",
    "apply_head_structure",
    "backbone_stages",
    "candidates",
    "extend_head",
    "freeze_backbone",
    "head_features",
    "identity_spec",
    "locate_head",
    "param_groups",
    "split",
    "unfreeze_all",
    "unfreeze_stages",
]
