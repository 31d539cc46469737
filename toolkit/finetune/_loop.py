"""The training loop of one run: phases, epochs, steps, checkpoints and early stopping.

Everything a resumed run needs is in ``RunState`` and the checkpoint written from it: the
position (epoch, next batch, global step, phase), the running sums of the current epoch, the
history, the early-stopping record and the best weights. Data order and augmentation are
derived from (seed, epoch, batch), never from a stream of draws, so a position is enough to
continue exactly where an uninterrupted run would be.

Under torchrun (``toolkit.finetune.distributed``) every rank runs this loop on its share of each
global batch: the position is the same number on every rank, the running sums are summed over
the ranks at each step, rank 0 writes the checkpoints (holding every rank's RNG state) and
reports progress, and the validation split is evaluated in parts whose sums are added.
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
from toolkit.finetune.config import NEW_ROWS_LR_MULT, FinetuneConfig
from toolkit.finetune.distributed import Distributed
from toolkit.finetune.evaluation import Evaluation, evaluate_sums
from toolkit.finetune.keep_old import FrozenRows, distill_loss
from toolkit.finetune.optim import Phase, apply_policy, group_lrs, make_optimizer, make_scheduler, plan_phases
from toolkit.finetune.progress import TrainingProgress
from toolkit.finetune.replay import Extras, StepExtras, balanced_cross_entropy, old_decision_loss
from toolkit.models.model_dir import state_dict_for_saving
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
        """The state a checkpoint saved under ``progress``.

        Args:
            data: the saved fields.
        """
        return cls(**data)


def batches_per_epoch(n: int, batch_size: int, world: int = 1) -> int:
    """Every image once per epoch, the last batch smaller, except a leftover too small to give
    each of the ``world`` processes two images: a batch of one breaks BatchNorm in training mode,
    so those sit the epoch out (see ``left_out``). One process: only a lone leftover image.

    Args:
        n: how many training images.
        batch_size: the global batch size.
        world: how many processes share each batch (default 1).
    """
    full, rest = divmod(n, batch_size)
    return max(1, full + (1 if rest >= 2 * world else 0))


def left_out(n: int, batch_size: int, world: int = 1) -> int:
    """Training images not seen in an epoch: the leftover of fewer than ``2 * world`` images.

    Args:
        n: how many training images.
        batch_size: the global batch size.
        world: how many processes share each batch (default 1).
    """
    rest = n % batch_size
    return rest if n > batch_size and 0 < rest < 2 * world else 0


class Loop:
    """Runs the phases of ``config`` on ``model`` from ``state``, checkpointing into ``store``.

    ``unseen``: the model's classes without training images, kept as ``config.keep_old`` says;
    ``teacher``: the original model's logits (N, classes) on the training images, by image index
    (needed when ``config.keep_old`` distills). ``extras``: images every step adds (replayed old
    examples, unlabelled images to distill on; ``toolkit.finetune.replay``).
    With ``keep_old="new-rows"`` and unseen classes, every epoch is a head-only epoch.
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
        dist: Distributed | None = None,
        device: torch.device | None = None,
        extras: StepExtras | None = None,
    ) -> None:
        self.model = model
        #: what a training step calls: ``model`` itself, or wrapped in DDP for the current phase
        self.net: nn.Module = model
        self.spec = spec
        self.config = config
        self.store = store
        self.reporter = reporter
        self.run_info = run_info
        self.dist = dist or Distributed()
        self.device = device if device is not None else torch.device(config.device)
        self.amp = config.uses_amp()
        self.amp_dtype = torch.float16 if self.device.type == "cuda" else torch.bfloat16
        self.augment = data.augment if config.augment == "auto" else config.augment
        self.train_x, self.train_y = (t.to(self.device) for t in data.train)
        self.val_x, self.val_y = data.val
        world = self.dist.world
        self.steps_per_epoch = batches_per_epoch(len(self.train_y), config.batch_size, world)
        self.images_per_epoch = len(self.train_y) - left_out(len(self.train_y), config.batch_size, world)
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
        self.extras = extras if extras is not None and extras.active else None
        self.old_index = torch.tensor(list(unseen), dtype=torch.long, device=self.device)
        # new-rows: no feature drift at all, the backbone (and its BatchNorm statistics) never trains
        new_rows = bool(unseen) and config.trains_new_rows_only
        if new_rows:  # a linear layer on frozen features: every epoch head-only, at a larger step
            self.config = config.replace(freeze_epochs=config.epochs, lr=config.lr * NEW_ROWS_LR_MULT)
        self.phases = plan_phases(self.config)

    # --- checkpoints ------------------------------------------------------------------------
    def _save(
        self,
        state: RunState,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        scaler: torch.amp.GradScaler,
    ) -> None:
        # every rank's RNG state (dropout draws from it); optimizer and scheduler states are the
        # same on every rank (gradients are all-reduced), so rank 0's stand for all
        states = self.dist.gather(rng.capture(self.device))
        if not self.dist.is_main:
            return
        self.store.save(
            {
                "format": FORMAT,
                "model": state_dict_for_saving(self.model),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "rng": {**states[0], "ranks": states} if self.dist.world > 1 else states[0],
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
    def _batch(
        self, order: torch.Tensor, epoch: int, b: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
        """This rank's images (augmented), labels and indices in the training set, of global batch
        ``b``, and the global batch's size. The augmentation is drawn for the whole global batch
        and this rank's part taken, so it is the one-process run's, image for image."""
        bs = self.config.batch_size
        batch = order[b * bs : (b + 1) * bs]
        start, stop = self.dist.share_span(len(batch))
        idx = batch[start:stop].to(self.device)
        x = self.train_x.index_select(0, idx)
        generator = rng.derived_generator(self.config.seed, epoch, b, 1)
        x = augment_batch(x, generator, mode=self.augment, span=(start, len(batch)))
        return x, self.train_y.index_select(0, idx), idx, len(batch)

    def _step(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        idx: torch.Tensor,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        n_global: int,
        extras: Extras | None = None,
    ) -> tuple[float, int]:
        added = extras.images() if extras is not None else []
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
            # one forward pass over the batch and the added images: BatchNorm sees them together
            out = self.net(torch.cat([x, *added])) if added else self.net(x)
        logits = out[: len(x)]
        if extras is not None and extras.ry is not None:
            labelled = out[: len(x) + len(extras.ry)]
            loss = balanced_cross_entropy(
                labelled, torch.cat([y, extras.ry]), label_smoothing=self.config.label_smoothing
            )
        else:
            loss = F.cross_entropy(logits.float(), y, label_smoothing=self.config.label_smoothing)
        if extras is not None and extras.ux is not None and extras.ut is not None:
            loss = loss + self.config.distill_weight * old_decision_loss(
                out[len(out) - len(extras.ux) :], extras.ut, self.old_index, self.config.distill_temperature
            )
        if self.teacher is not None and self.unseen_index is not None:
            student = logits.float().index_select(1, self.unseen_index)
            target = self.teacher.index_select(0, idx)
            loss = loss + self.config.distill_weight * distill_loss(
                student, target, self.config.distill_temperature
            )
        optimizer.zero_grad(set_to_none=True)
        # DDP averages the ranks' gradients: scaled so, the average is the global batch mean's
        # gradient even when the shares differ in size (the scale is exactly 1 when they do not)
        scale = len(y) * self.dist.world / n_global
        scaler.scale(loss if scale == 1.0 else loss * scale).backward()
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
            x, y, idx, n_global = self._batch(order, epoch, b)
            extras = None
            if self.extras is not None:
                extras = self.extras.draw(epoch, b, (self.dist.rank, self.dist.world))
            loss, correct = self._step(x, y, idx, optimizer, scaler, n_global, extras)
            scheduler.step()
            loss, total_correct, seen = self.dist.sum([loss, correct, len(y)])
            state.seconds += time.perf_counter() - started
            state.loss_sum += loss
            state.correct += round(total_correct)
            state.seen += round(seen)
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
            self.dist.maybe_die(state.global_step)
        self._end_epoch(phase, state, optimizer)
        self._save(state, optimizer, scheduler, scaler)

    def _end_epoch(self, phase: Phase, state: RunState, optimizer: torch.optim.Optimizer) -> None:
        cfg = self.config
        self.dist.broadcast_buffers(self.model)  # rank 0's BatchNorm statistics are the ones evaluated and saved
        val = self._evaluate()
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
        elif phase.index == len(self.phases) - 1:  # patience counts in the last phase only
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

    def _evaluate(self) -> Evaluation:
        """Validation top-1 and loss; each rank evaluates its part, the sums are added."""
        x, y = self.dist.share(self.val_x), self.dist.share(self.val_y)
        correct, loss_sum, count = self.dist.sum(
            evaluate_sums(self.model, x, y, batch_size=self.config.eval_batch_size, device=self.device, amp=self.amp)
        )
        return Evaluation(correct / max(count, 1), loss_sum / max(count, 1), round(count))

    # --- the whole run ----------------------------------------------------------------------
    def run(self, state: RunState, checkpoint: dict[str, Any] | None) -> RunState:
        """Train from ``state`` (restored from ``checkpoint`` if given) to the end or an early stop.

        Args:
            state: where the run stands.
            checkpoint: the checkpoint it was restored from (None: a fresh start).
        """
        if checkpoint is not None:
            best = checkpoint["model"] if checkpoint.get("best_is_model") else checkpoint.get("best_model")
            self.best_model = dict(best) if best is not None else None
        for phase in self.phases:
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
                rng.restore(checkpoint["rng"], self.device, rank=self.dist.rank)
                checkpoint = None
            state.phase = phase.index
            # synchronised BatchNorm where statistics are computed: not in the head-only phase
            sync_bn = self.config.sync_bn and phase.policy != "head"
            with self.dist.sync_batchnorm(self.model, sync_bn):
                self.net = self.dist.wrap(self.model, self.device)  # DDP over this phase's trainable parameters
                try:
                    while state.epoch < phase.stop and not state.stopped:
                        self._run_epoch(phase, state, optimizer, scheduler, scaler)
                finally:
                    self.net = self.model  # the wrapper (and its gradient hooks) goes with the phase
        return state
