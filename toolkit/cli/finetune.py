"""``rehead finetune``: flags become a ``FinetuneConfig`` and keyword arguments of ``finetune``.

Data may cover only some of the model's classes (typically the new ones after ``rehead
extend``); ``--keep-old`` chooses how the others are kept and ``--retention-data`` where their
retention is measured.

Several processes: ``--nproc N`` hands the same command (without ``--nproc``) to torchrun,
``python -m torch.distributed.run --standalone --nproc-per-node N -m toolkit.cli finetune ...``;
launching torchrun yourself (several nodes, ``--max-restarts``) does the same. ``--batch-size``
stays the global batch. Errors that every process meets alike (bad input, exit 2) are reported
by rank 0 alone; any other error names the rank that met it.

The options named like ``FinetuneConfig``'s fields build the record (``_config``), and their
defaults are its fields' (``toolkit.finetune.config`` imports no torch, so ``--help`` stays
fast); 0 on the command line is the record's ``None`` ("off") for ``--clip``, ``--patience`` and
``--checkpoint-every-steps``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from toolkit.cli._app import app
from toolkit.cli._parse import int_list
from toolkit.finetune.config import DEFAULT_VAL_RATIO, FinetuneConfig

if TYPE_CHECKING:
    from toolkit.finetune.result import FinetuneResult

#: seconds a rank other than 0 waits before exiting on a bad-input error (see ``_errors_by_rank``)
_QUIET_EXIT_DELAY_S = 3.0
#: the options' defaults: the record's
_CONFIG = FinetuneConfig()
#: the record's fields whose ``None`` ("off") is 0 (or less) on the command line
_ZERO_IS_OFF = ("clip_grad_norm", "patience", "checkpoint_every_steps")
_T = TypeVar("_T")


def _off(value: _T | None) -> _T | int:
    """A field's default as its option's: ``None`` ("off") is 0."""
    return 0 if value is None else value


# The command's argument and options, each declared once: its flags and help here, its default in
# the signature (for the options named like FinetuneConfig's fields, the record's).
_ModelDir = Annotated[
    Path,
    typer.Argument(metavar="MODEL_DIR", help="Model directory to fine-tune (from 'rehead extend')."),
]
_Data = Annotated[
    str,
    typer.Option(
        "--data",
        help="'digits' (bundled 8x8 digits), a folder: DIR/train/<class>/*, DIR/val/<class>/* "
        "(optional DIR/test), or DIR/<class>/* split by --val-ratio, or a CSV manifest FILE.csv with "
        "a 'path,label[,split]' header (paths relative to the CSV's folder, labels class names). The "
        "classes may be a subset of the model's (e.g. images of the new classes only); the others are "
        "kept with --keep-old.",
    ),
]
_ClassMap = Annotated[
    Path | None,
    typer.Option(
        "--class-map",
        help="File renaming class folders to the model's class names: a JSON object "
        '{"folder": "class"} or one "folder,class" pair per line.',
    ),
]
_KeepOld = Annotated[
    str,
    typer.Option(
        "--keep-old",
        help="Classes with no images in --data: none (plain fine-tuning; they are forgotten) | "
        "freeze-rows (their head rows and bias stay bit-identical) | distill (the original model's "
        "outputs on the training images are soft targets for them) | freeze-rows+distill | new-rows "
        "(only the new rows train: backbone and old rows frozen every epoch) | auto (new-rows, or distill "
        "with --old-examples). No effect when the data covers every class.",
    ),
]
_Align = Annotated[
    str,
    typer.Option(
        "--align",
        help="After training with some classes unseen, scale the trained classes' logits down: none | "
        "weights (weight aligning: to the old rows' mean norm) | calibrate (the smallest scale that keeps "
        "95% of the validation images deciding a new class) | auto (calibrate without --old-examples, "
        "none with them).",
    ),
]
_SyntheticOld = Annotated[
    int,
    typer.Option(
        "--synthetic-old",
        help="With no --old-examples: synthesise this many images per missing class from the original "
        "model (DeepInversion; needs BatchNorm layers) and replay them. 0 = off. Seconds for a small "
        "model, far more for a large one at 224 px (docs/finetune.md).",
    ),
]
_OldExamples = Annotated[
    str | None,
    typer.Option(
        "--old-examples",
        help="A few labelled images of the classes missing from --data, any number per class from one: "
        "DIR/<class>/* (class folders named like the model's classes) or a CSV manifest. Replayed every "
        "step with a class-balanced loss; by far the best way to keep the old classes in the decision.",
    ),
]
_Unlabelled = Annotated[
    str | None,
    typer.Option(
        "--unlabelled",
        help="Folder of any images, no labels (any sub-folders): where the original model is sure of an old "
        "class, its decision is distilled into the fine-tuned model.",
    ),
]
_DistillWeight = Annotated[
    float,
    typer.Option("--distill-weight", help="distill: weight of the distillation loss next to cross-entropy."),
]
_DistillTemperature = Annotated[
    float,
    typer.Option("--distill-temperature", help="distill: softmax temperature of the soft targets."),
]
_RetentionData = Annotated[
    str | None,
    typer.Option(
        "--retention-data",
        help="Images on which retention of the unseen classes is measured: how often the fine-tuned "
        "model's decision over all classes is the original model's, where that is an unseen class. Class "
        "folders named like the model's classes (or a manifest, or 'digits'): only the unseen classes' "
        "images; any other folder: every image. Default: --old-examples, else --unlabelled, else the "
        "training images (said plainly: they are of the new classes).",
    ),
]
_Output = Annotated[Path, typer.Option("-o", "--output", help="Model directory to write (checkpoints: OUTPUT.ckpt/).")]
_Digits = Annotated[
    str | None,
    typer.Option("--digits-subset", help="digits: train on these digits only (0-6 or 0,2,4); default: the model's."),
]
_Epochs = Annotated[int, typer.Option("--epochs", help="Epochs in all, frozen ones included.")]
_FreezeEpochs = Annotated[
    int,
    typer.Option("--freeze-epochs", help="First epochs with the backbone frozen (BatchNorm statistics too)."),
]
_UnfreezeStages = Annotated[
    int | None,
    typer.Option(
        "--unfreeze-stages",
        help="After the frozen epochs open only the last K backbone stages (default: all).",
    ),
]
_Lr = Annotated[float, typer.Option("--lr", help="Peak learning rate of the head.")]
_BackboneLrMult = Annotated[float, typer.Option("--backbone-lr-mult", help="Backbone learning rate = --lr times this.")]
_BatchSize = Annotated[
    int,
    typer.Option("--batch-size", "-b", help="Images per training step: the global batch, split across processes."),
]
_Optimizer = Annotated[str, typer.Option("--optimizer", help="adamw | sgd (Nesterov momentum).")]
_WeightDecay = Annotated[float, typer.Option("--weight-decay", help="Decoupled weight decay (not on biases/norms).")]
_Momentum = Annotated[float, typer.Option("--momentum", help="sgd: momentum.")]
_WarmupEpochs = Annotated[float, typer.Option("--warmup-epochs", help="Linear warm-up per phase, in epochs.")]
_LabelSmoothing = Annotated[float, typer.Option("--label-smoothing", help="Cross-entropy smoothing (0 = off).")]
_ClipGradNorm = Annotated[float, typer.Option("--clip", help="Clip the gradient L2 norm to this (0 = off).")]
_Patience = Annotated[
    int,
    typer.Option("--patience", help="Early stop after this many epochs without a better val top-1 (0 = off)."),
]
_CheckpointEverySteps = Annotated[
    int,
    typer.Option("--checkpoint-every-steps", help="Also checkpoint every N steps mid-epoch (0 = at epoch ends only)."),
]
_Amp = Annotated[
    bool | None,
    typer.Option("--amp/--no-amp", help="Mixed precision (default: fp16 + grad scaler on CUDA, off on CPU)."),
]
_Device = Annotated[str, typer.Option("--device", help="cpu | cuda.")]
_Threads = Annotated[int | None, typer.Option("--threads", help="torch CPU threads (default: torch's).")]
_Augment = Annotated[
    str,
    typer.Option(
        "--augment",
        help="auto | none | shift | shift-flip (auto: shift for digits, shift-flip for folders).",
    ),
]
_ValRatio = Annotated[float, typer.Option("--val-ratio", help="Folder without val/: fraction held out per class.")]
_Seed = Annotated[int, typer.Option("--seed", help="Seed of weights, data order and augmentation.")]
_Workers = Annotated[
    int,
    typer.Option("--workers", help="Processes decoding the images of a folder or manifest (0 = this process)."),
]
_SyncBn = Annotated[
    bool,
    typer.Option(
        "--sync-bn",
        help="Several processes: BatchNorm statistics over the global batch, not each process's share "
        "(phases that train BatchNorm).",
    ),
]
_Nproc = Annotated[
    int | None,
    typer.Option(
        "--nproc",
        help="Run on N processes on this machine: hands this command to torchrun "
        "(python -m torch.distributed.run --standalone --nproc-per-node N -m toolkit.cli finetune ...).",
    ),
]
_WorkDir = Annotated[Path | None, typer.Option("--work-dir", help="Checkpoint folder (default: OUTPUT.ckpt).")]
_KeepCheckpoints = Annotated[bool, typer.Option("--keep-checkpoints", help="Keep the checkpoint folder after success.")]
_Plot = Annotated[bool, typer.Option("--plot/--no-plot", help="Write curves.png (needs matplotlib).")]
_Resume = Annotated[bool, typer.Option("--resume", help="Continue from the newest readable checkpoint.")]
_Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace OUTPUT (and stale checkpoints) if they exist.")]


@app.command()
def finetune(
    ctx: typer.Context,
    *,  # keyword-only: a required option (--output) may follow options with defaults
    model_dir: _ModelDir,
    data: _Data,
    class_map: _ClassMap = None,
    keep_old: _KeepOld = _CONFIG.keep_old,
    align: _Align = _CONFIG.align,
    synthetic_old: _SyntheticOld = _CONFIG.synthetic_old,
    old_examples: _OldExamples = None,
    unlabelled: _Unlabelled = None,
    distill_weight: _DistillWeight = _CONFIG.distill_weight,
    distill_temperature: _DistillTemperature = _CONFIG.distill_temperature,
    retention_data: _RetentionData = None,
    output: _Output,
    digits: _Digits = None,
    epochs: _Epochs = _CONFIG.epochs,
    freeze_epochs: _FreezeEpochs = _CONFIG.freeze_epochs,
    unfreeze_stages: _UnfreezeStages = _CONFIG.unfreeze_stages,
    lr: _Lr = _CONFIG.lr,
    backbone_lr_mult: _BackboneLrMult = _CONFIG.backbone_lr_mult,
    batch_size: _BatchSize = _CONFIG.batch_size,
    optimizer: _Optimizer = _CONFIG.optimizer,
    weight_decay: _WeightDecay = _CONFIG.weight_decay,
    momentum: _Momentum = _CONFIG.momentum,
    warmup_epochs: _WarmupEpochs = _CONFIG.warmup_epochs,
    label_smoothing: _LabelSmoothing = _CONFIG.label_smoothing,
    clip_grad_norm: _ClipGradNorm = _off(_CONFIG.clip_grad_norm),
    patience: _Patience = _off(_CONFIG.patience),
    checkpoint_every_steps: _CheckpointEverySteps = _off(_CONFIG.checkpoint_every_steps),
    amp: _Amp = _CONFIG.amp,
    device: _Device = _CONFIG.device,
    threads: _Threads = _CONFIG.threads,
    augment: _Augment = _CONFIG.augment,
    val_ratio: _ValRatio = DEFAULT_VAL_RATIO,
    seed: _Seed = _CONFIG.seed,
    workers: _Workers = 0,
    sync_bn: _SyncBn = _CONFIG.sync_bn,
    nproc: _Nproc = None,
    work_dir: _WorkDir = None,
    keep_checkpoints: _KeepCheckpoints = _CONFIG.keep_checkpoints,
    plot: _Plot = _CONFIG.plot,
    resume: _Resume = False,
    overwrite: _Overwrite = False,
) -> None:
    """Fine-tune a model directory (head-only, then the whole model) and write a new model directory."""
    if nproc is not None:
        raise typer.Exit(_hand_to_torchrun(ctx, nproc))
    from toolkit.finetune.trainer import finetune as run_finetune

    rank = _rank()
    with _errors_by_rank(rank):
        result = run_finetune(
            model_dir, data, _config(ctx.params), output=output, overwrite=overwrite, resume=resume,
            work_dir=work_dir, digits=int_list(digits, flag="--digits-subset"), val_ratio=val_ratio,
            class_map=class_map, retention_data=retention_data, old_examples=old_examples, unlabelled=unlabelled,
            workers=workers, progress=True,
        )  # fmt: skip
    if rank == 0:
        _say_result(result)


def _config(params: Mapping[str, Any]) -> FinetuneConfig:
    """The record built from the options named like its fields (0 is "off" for ``_ZERO_IS_OFF``)."""
    values = {f.name: params[f.name] for f in dataclasses.fields(FinetuneConfig) if f.name in params}
    for name in _ZERO_IS_OFF:
        values[name] = values[name] if values[name] > 0 else None
    return FinetuneConfig(**values)


def _rank() -> int:
    """This process's rank under torchrun (0 when not launched by it)."""
    from toolkit.finetune.distributed import launched

    return int(os.environ.get("RANK", "0")) if launched() else 0


@contextlib.contextmanager
def _errors_by_rank(rank: int) -> Iterator[None]:
    """Rank 0 reports errors as they are. Bad input (exit 2) every rank meets alike, so another
    rank exits quietly and leaves the report to rank 0; any other error names the rank that met it."""
    from toolkit.errors import ReheadError

    try:
        yield
    except ReheadError as exc:
        if rank == 0:
            raise
        if exc.exit_code == 2:
            # The pause keeps torchrun, which stops the whole group at the first exit, from cutting
            # rank 0's report short.
            time.sleep(_QUIET_EXIT_DELAY_S)
            raise typer.Exit(exc.exit_code) from exc
        raise type(exc)(f"rank {rank}: {exc.message}", hint=exc.hint, param=exc.param) from exc


def _say_result(result: FinetuneResult) -> None:
    """The run's one-line summary, and the retention of the unseen classes when some were kept."""
    test = "n/a (no test split)" if result.test_top1 is None else f"{result.test_top1:.4f}"
    typer.echo(
        f"wrote {result.path}: {len(result.history)} epochs in {result.seconds:.0f} s, "
        f"val top-1 {result.val_top1:.4f} (epoch {result.best_epoch}), test top-1 {test}"
        + (" (early stop)" if result.stopped_early else "")
        + (f" on {result.world_size} processes" if result.world_size > 1 else "")
    )
    if result.retention is not None:
        r = result.retention
        typer.echo(
            f"kept {r.classes} unseen classes with {result.keep_old}: retention {r.after:.4f} (the original "
            f"model's decision over all classes kept, on {r.images} images of {r.images_of}: {r.source}); "
            f"among the old logits only {r.among_old_logits:.4f}"
        )  # a warning, if any, was shown with the progress lines (and is in metrics.json)


def torchrun_command(nproc: int, args: list[str]) -> list[str]:
    """The torchrun command line that runs ``rehead <args>`` on ``nproc`` local processes.

    Args:
        nproc: how many local processes (``--nproc-per-node``).
        args: the arguments after ``rehead``.
    """
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
        "-m", "toolkit.cli", *args,
    ]  # fmt: skip


def _hand_to_torchrun(ctx: typer.Context, nproc: int) -> int:
    """Run this very command under torchrun on ``nproc`` processes; torchrun's exit code."""
    from toolkit._args import positive_int
    from toolkit.errors import InvalidArgumentError
    from toolkit.finetune.distributed import launched

    positive_int(nproc, "nproc", example="2")
    if launched():
        raise InvalidArgumentError(
            "--nproc starts torchrun, but this process already runs under torchrun",
            hint="leave --nproc out: torchrun's --nproc-per-node sets the processes",
            param="nproc",
        )
    args = (["--debug"] if ctx.parent is not None and ctx.parent.params.get("debug") else []) + [
        str(ctx.info_name),
        *_given_args(ctx),
    ]
    return subprocess.call(torchrun_command(nproc, args))


def _given_args(ctx: Any) -> list[str]:
    """The arguments given to this command, rebuilt from what click parsed, ``--nproc`` left out."""
    out: list[str] = []
    for param in ctx.command.params:
        name = param.name
        source = ctx.get_parameter_source(name)
        if name == "nproc" or source is None or source.name != "COMMANDLINE":
            continue
        value = ctx.params[name]
        if param.param_type_name == "argument":
            out.append(str(value))
        elif getattr(param, "is_flag", False):
            secondary = getattr(param, "secondary_opts", [])
            if value:
                out.append(param.opts[0])
            elif secondary:
                out.append(secondary[0])
        else:
            long_names = [o for o in param.opts if o.startswith("--")]
            out += [(long_names or param.opts)[0], str(value)]
    return out
