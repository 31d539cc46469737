"""Fine-tuning after head surgery: trainer, schedules, checkpoints and resume.

Each public name is imported on first use, as in ``toolkit``: the CLI reads ``FinetuneConfig``'s
defaults when it starts, and that must not import torch. The ``TYPE_CHECKING`` block names the
same imports (``x as x``: an explicit re-export) for readers and type checkers; a test keeps the
two lists equal. No module here is named like a name exported here (``evaluate`` lives in
``evaluation``, ``pretrain`` in ``pretraining``): a submodule imported first would shadow it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from toolkit._lazy import lazy_exports

if TYPE_CHECKING:
    from toolkit.finetune.checkpoints import CheckpointStore as CheckpointStore
    from toolkit.finetune.checkpoints import CheckpointWarning as CheckpointWarning
    from toolkit.finetune.checkpoints import load_checkpoint as load_checkpoint
    from toolkit.finetune.config import DEFAULT_KEEP_OLD as DEFAULT_KEEP_OLD
    from toolkit.finetune.config import KEEP_OLD_CHOICES as KEEP_OLD_CHOICES
    from toolkit.finetune.config import FinetuneConfig as FinetuneConfig
    from toolkit.finetune.evaluation import Evaluation as Evaluation
    from toolkit.finetune.evaluation import evaluate as evaluate
    from toolkit.finetune.evaluation import evaluate_detail as evaluate_detail
    from toolkit.finetune.keep_old import Retention as Retention
    from toolkit.finetune.optim import Phase as Phase
    from toolkit.finetune.optim import plan_phases as plan_phases
    from toolkit.finetune.optim import warmup_cosine as warmup_cosine
    from toolkit.finetune.pretraining import PRETRAIN_CONFIG as PRETRAIN_CONFIG
    from toolkit.finetune.pretraining import pretrain as pretrain
    from toolkit.finetune.progress import TrainingProgress as TrainingProgress
    from toolkit.finetune.result import FinetuneResult as FinetuneResult
    from toolkit.finetune.result import default_work_dir as default_work_dir
    from toolkit.finetune.trainer import finetune as finetune

_EXPORTS = {
    "CheckpointStore": "toolkit.finetune.checkpoints",
    "CheckpointWarning": "toolkit.finetune.checkpoints",
    "load_checkpoint": "toolkit.finetune.checkpoints",
    "DEFAULT_KEEP_OLD": "toolkit.finetune.config",
    "KEEP_OLD_CHOICES": "toolkit.finetune.config",
    "FinetuneConfig": "toolkit.finetune.config",
    "Evaluation": "toolkit.finetune.evaluation",
    "evaluate": "toolkit.finetune.evaluation",
    "evaluate_detail": "toolkit.finetune.evaluation",
    "Retention": "toolkit.finetune.keep_old",
    "Phase": "toolkit.finetune.optim",
    "plan_phases": "toolkit.finetune.optim",
    "warmup_cosine": "toolkit.finetune.optim",
    "PRETRAIN_CONFIG": "toolkit.finetune.pretraining",
    "pretrain": "toolkit.finetune.pretraining",
    "TrainingProgress": "toolkit.finetune.progress",
    "FinetuneResult": "toolkit.finetune.result",
    "default_work_dir": "toolkit.finetune.result",
    "finetune": "toolkit.finetune.trainer",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS, globals())
