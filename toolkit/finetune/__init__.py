"""Fine-tuning after head surgery: trainer, schedules, checkpoints and resume."""

from toolkit.finetune.checkpoints import CheckpointStore, CheckpointWarning, load_checkpoint
from toolkit.finetune.config import FinetuneConfig
from toolkit.finetune.evaluate import Evaluation, evaluate, evaluate_detail
from toolkit.finetune.optim import Phase, plan_phases, warmup_cosine
from toolkit.finetune.pretrain import PRETRAIN_CONFIG, pretrain
from toolkit.finetune.progress import TrainingProgress
from toolkit.finetune.trainer import FinetuneResult, default_work_dir, finetune

__all__ = [
    "PRETRAIN_CONFIG",
    "CheckpointStore",
    "CheckpointWarning",
    "Evaluation",
    "FinetuneConfig",
    "FinetuneResult",
    "Phase",
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
