"""Fine-tuning after head surgery: trainer, schedules, checkpoints and resume."""

from toolkit.finetune.checkpoints import CheckpointStore, CheckpointWarning, load_checkpoint
from toolkit.finetune.config import DEFAULT_KEEP_OLD, KEEP_OLD_CHOICES, FinetuneConfig
from toolkit.finetune.evaluate import Evaluation, evaluate, evaluate_detail
from toolkit.finetune.keep_old import Retention
from toolkit.finetune.optim import Phase, plan_phases, warmup_cosine
from toolkit.finetune.pretrain import PRETRAIN_CONFIG, pretrain
from toolkit.finetune.progress import TrainingProgress
from toolkit.finetune.trainer import FinetuneResult, default_work_dir, finetune

__all__ = [
    "DEFAULT_KEEP_OLD",
    "KEEP_OLD_CHOICES",
    "PRETRAIN_CONFIG",
    "CheckpointStore",
    "CheckpointWarning",
    "Evaluation",
    "FinetuneConfig",
    "FinetuneResult",
    "Phase",
    "Retention",
    "TrainingProgress",
    "default_work_dir",
    "evaluate",
    "evaluate_detail",
    "finetune",
    "load_checkpoint",
    "plan_phases",
    "pretrain",
    "warmup_cosine",
]
