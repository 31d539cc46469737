"""The training loop of one run: phases, epochs, steps, checkpoints and early stopping.

Everything a resumed run needs is in ``RunState`` and the checkpoint written from it: the
position (epoch, next batch, global step, phase), the running sums of the current epoch, the
history, the early-stopping record and the best weights. Data order and augmentation are
derived from (seed, epoch, batch), never from a stream of draws, so a position is enough to
continue exactly where an uninterrupted run would be.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from toolkit.data.augment import augment_batch
from toolkit.data.training import TrainingData
from toolkit.errors import InternalError
from toolkit.finetune import rng
from toolkit.finetune.checkpoints import FORMAT, CheckpointStore
from toolkit.finetune.config import FinetuneConfig
from toolkit.finetune.evaluate import evaluate_detail
from toolkit.finetune.keep_old import FrozenRows, distill_loss
from toolkit.finetune.optim import Phase, apply_policy, group_lrs, make_optimizer, make_scheduler, plan_phases
from toolkit.finetune.progress import TrainingProgress
from toolkit.model_dir import state_dict_for_saving
from toolkit.records import HeadSpec


@dataclasses.dataclass
class RunState:
    """Where a run stands; saved in every checkpoint under ``progress`` (numbers, strings, lists).

    ``epoch`` counts the epochs completed (the 0-based index of the one running) and
    ``best_epoch`` is 0-based too (-1: none yet); what a person reads (history records, metrics,
    console) numbers epochs from 1.
    """

    epoch: int = 0
    batch: int = 0
    global_step: int = 0
    phase: int = -1
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    seconds: float = 0.0
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    best_top1: float = -1.0
    best_epoch: int = -1
    bad_epochs: int = 0
    stopped: bool = False

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunState:
        return cls(**data)


def batches_per_epoch(n: int, batch_size: int) -> int:
    """Every image once per epoch, the last batch smaller, except a lone leftover image: a batch
    of one breaks BatchNorm in training mode, so that one sits the epoch out (see ``left_out``)."""
    full, rest = divmod(n, batch_size)
    return max(1, full + (1 if rest > 1 else 0))


def left_out(n: int, batch_size: int) -> int:
    """Training images not seen in an epoch: 1 when ``n`` leaves a single image over, else 0."""
    return 1 if n > batch_size and n % batch_size == 1 else 0


class Loop:
    """Runs the phases of ``config`` on ``model`` from ``state``, checkpointing into ``store``.

    ``unseen``: the model's classes without training images, kept as ``config.keep_old`` says;
    ``teacher``: the original model's logits (N, classes) on the training images, by image index
    (needed when ``config.keep_old`` distills).
    """

    def __init__(
        self,
        model: nn.Module,
        spec: HeadSpec,
        data: TrainingData,
        config: FinetuneConfig,
        store: CheckpointStore,
        reporter: TrainingProgress,
        run_info: dict[str, Any],
        *,
        unseen: Sequence[int] = (),
        teacher: torch.Tensor | None = None,
    ) -> None:
        self.model = model
        self.spec = spec
        self.config = config
        self.store = store
        self.reporter = reporter
        self.run_info = run_info
        self.device = torch.device(config.device)
        self.amp = config.uses_amp()
        self.amp_dtype = torch.float16 if self.device.type == "cuda" else torch.bfloat16
        self.augment = data.augment if config.augment == "auto" else config.augment
        self.train_x, self.train_y = (t.to(self.device) for t in data.train)
        self.val_x, self.val_y = data.val
        self.steps_per_epoch = batches_per_epoch(len(self.train_y), config.batch_size)
        self.images_per_epoch = len(self.train_y) - left_out(len(self.train_y), config.batch_size)
        self.best_model: dict[str, torch.Tensor] | None = None
        # with every class in the data there is nothing to keep: the run is exactly a plain one
        self.frozen = FrozenRows(model, spec, unseen) if unseen and config.freezes_rows else None
        self.teacher: torch.Tensor | None = None
        self.unseen_index: torch.Tensor | None = None
        if unseen and config.distills:
            if teacher is None:
                raise InternalError("keep_old distills but the loop got no teacher logits")
            self.unseen_index = torch.tensor(list(unseen), dtype=torch.long, device=self.device)
            self.teacher = teacher.to(self.device).index_select(1, self.unseen_index)

    # --- checkpoints ------------------------------------------------------------------------
    def _save(
        self,
        state: RunState,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        scaler: torch.amp.GradScaler,
    ) -> None:
        self.store.save(
            {
                "format": FORMAT,
                "model": state_dict_for_saving(self.model),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "rng": rng.capture(self.device),
                "progress": state.to_json(),
                # right after the best epoch the best weights are the model's: not stored twice
                "best_model": None if self._best_is_current(state) else self.best_model,
                "best_is_model": self._best_is_current(state),
                "run": self.run_info,
            },
            state.global_step,
        )

    def _best_is_current(self, state: RunState) -> bool:
        return self.best_model is not None and state.batch == 0 and state.best_epoch == state.epoch - 1

    # --- one step / one epoch ---------------------------------------------------------------
    def _batch(self, order: torch.Tensor, epoch: int, b: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Images (augmented), labels and the images' indices in the training set."""
        bs = self.config.batch_size
        idx = order[b * bs : (b + 1) * bs].to(self.device)
        x = self.train_x.index_select(0, idx)
        x = augment_batch(x, rng.derived_generator(self.config.seed, epoch, b, 1), mode=self.augment)
        return x, self.train_y.index_select(0, idx), idx

    def _step(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        idx: torch.Tensor,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
    ) -> tuple[float, int]:
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
            logits = self.model(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=self.config.label_smoothing)
        if self.teacher is not None and self.unseen_index is not None:
            student = logits.float().index_select(1, self.unseen_index)
            target = self.teacher.index_select(0, idx)
            loss = loss + self.config.distill_weight * distill_loss(
                student, target, self.config.distill_temperature
            )
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if self.frozen is not None:
            self.frozen.zero_grads()
        if self.config.clip_grad_norm is not None:
            scaler.unscale_(optimizer)
            params = [p for g in optimizer.param_groups for p in g["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.config.clip_grad_norm)
        scaler.step(optimizer)
        scaler.update()
        if self.frozen is not None:
            self.frozen.restore()
        return float(loss.detach()) * len(y), int((logits.detach().argmax(1) == y).sum())

    def _run_epoch(
        self,
        phase: Phase,
        state: RunState,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        scaler: torch.amp.GradScaler,
    ) -> None:
        cfg, epoch = self.config, state.epoch
        order = torch.randperm(len(self.train_y), generator=rng.derived_generator(cfg.seed, epoch))
        self.reporter.start_epoch(epoch + 1, cfg.epochs, phase.name, self.steps_per_epoch, state.batch)
        self.model.train()
        for b in range(state.batch, self.steps_per_epoch):
            started = time.perf_counter()
            x, y, idx = self._batch(order, epoch, b)
            loss, correct = self._step(x, y, idx, optimizer, scaler)
            scheduler.step()
            state.seconds += time.perf_counter() - started
            state.loss_sum += loss
            state.correct += correct
            state.seen += len(y)
            state.global_step += 1
            state.batch = b + 1
            self.reporter.step(
                b + 1,
                state.loss_sum / state.seen,
                state.correct / state.seen,
                state.seen / max(state.seconds, 1e-9),
            )
            every = cfg.checkpoint_every_steps
            if every and state.global_step % every == 0 and state.batch < self.steps_per_epoch:
                self._save(state, optimizer, scheduler, scaler)
        self._end_epoch(phase, state, optimizer)
        self._save(state, optimizer, scheduler, scaler)

    def _end_epoch(self, phase: Phase, state: RunState, optimizer: torch.optim.Optimizer) -> None:
        cfg = self.config
        val = evaluate_detail(
            self.model,
            self.val_x,
            self.val_y,
            batch_size=cfg.eval_batch_size,
            device=self.device,
            amp=self.amp,
        )
        lrs = group_lrs(optimizer)
        record = {
            "epoch": state.epoch + 1,
            "epochs": cfg.epochs,
            "phase": phase.name,
            "train_loss": state.loss_sum / max(state.seen, 1),
            "train_top1": state.correct / max(state.seen, 1),
            "val_loss": val.loss,
            "val_top1": val.top1,
            "lr_head": lrs["head"],
            "lr_backbone": lrs["backbone"],
            "images_per_s": state.seen / max(state.seconds, 1e-9),
            "seconds": state.seconds,
        }
        state.history.append(record)
        if val.top1 > state.best_top1:
            state.best_top1, state.best_epoch, state.bad_epochs = val.top1, state.epoch, 0
            if cfg.restore_best:
                self.best_model = state_dict_for_saving(self.model)
        elif phase.index == len(plan_phases(cfg)) - 1:  # patience counts in the last phase only
            state.bad_epochs += 1
        state.stopped = cfg.patience is not None and state.bad_epochs >= cfg.patience
        state.epoch += 1
        state.batch = 0
        state.loss_sum, state.correct, state.seen, state.seconds = 0.0, 0, 0, 0.0
        self.reporter.end_epoch(record)
        if state.stopped:
            self.reporter.message(
                f"early stop: no better val top-1 for {state.bad_epochs} epochs (best {state.best_top1:.4f} "
                f"at epoch {state.best_epoch + 1})"
            )

    # --- the whole run ----------------------------------------------------------------------
    def run(self, state: RunState, checkpoint: dict[str, Any] | None) -> RunState:
        """Train from ``state`` (restored from ``checkpoint`` if given) to the end or an early stop."""
        if checkpoint is not None:
            best = checkpoint["model"] if checkpoint.get("best_is_model") else checkpoint.get("best_model")
            self.best_model = dict(best) if best is not None else None
        for phase in plan_phases(self.config):
            if state.stopped or state.epoch >= phase.stop:
                continue
            apply_policy(self.model, self.spec, phase.policy)
            optimizer = make_optimizer(self.model, self.spec, self.config)
            scheduler = make_scheduler(optimizer, self.config, phase, self.steps_per_epoch)
            scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp and self.device.type == "cuda")
            if checkpoint is not None and state.phase == phase.index:
                optimizer.load_state_dict(checkpoint["optimizer"])
                scheduler.load_state_dict(checkpoint["scheduler"])
                if checkpoint["scaler"]:  # empty when the checkpointed run had no scaler (CPU)
                    scaler.load_state_dict(checkpoint["scaler"])
            if checkpoint is not None:
                rng.restore(checkpoint["rng"], self.device)
                checkpoint = None
            state.phase = phase.index
            while state.epoch < phase.stop and not state.stopped:
                self._run_epoch(phase, state, optimizer, scheduler, scaler)
        return state
