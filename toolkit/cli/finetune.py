"""``rehead finetune``: flags become a ``FinetuneConfig`` and keyword arguments of ``finetune``.

Data may cover only some of the model's classes (typically the new ones after ``rehead
extend``); ``--keep-old`` chooses how the others are kept and ``--retention-data`` where their
retention is measured.

Several processes: ``--nproc N`` hands the same command (without ``--nproc``) to torchrun,
``python -m torch.distributed.run --standalone --nproc-per-node N -m toolkit.cli finetune ...``;
launching torchrun yourself (several nodes, ``--max-restarts``) does the same. ``--batch-size``
stays the global batch. Errors that every process meets alike (bad input, exit 2) are reported
by rank 0 alone; any other error names the rank that met it.

The option defaults below repeat ``FinetuneConfig``'s so that ``--help`` shows them without
importing ``toolkit.finetune`` (and torch) when the CLI starts; a test in
``tests/finetune/test_finetune_cli.py`` fails the moment the two disagree.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import typer

from toolkit.cli._app import app
from toolkit.cli._parse import int_list

#: seconds a rank other than 0 waits before exiting on a bad-input error (see ``finetune``)
_QUIET_EXIT_DELAY_S = 3.0


@app.command()
def finetune(
    ctx: typer.Context,
    model_dir: Path = typer.Argument(
        ..., metavar="MODEL_DIR", help="Model directory to fine-tune (from 'rehead extend')."
    ),
    data: str = typer.Option(
        ...,
        "--data",
        help="'digits' (bundled 8x8 digits), a folder: DIR/train/<class>/*, DIR/val/<class>/* "
        "(optional DIR/test), or DIR/<class>/* split by --val-ratio, or a CSV manifest FILE.csv with "
        "a 'path,label[,split]' header (paths relative to the CSV's folder, labels class names). The "
        "classes may be a subset of the model's (e.g. images of the new classes only); the others are "
        "kept with --keep-old.",
    ),
    class_map: Path | None = typer.Option(
        None,
        "--class-map",
        help="File renaming class folders to the model's class names: a JSON object "
        '{"folder": "class"} or one "folder,class" pair per line.',
    ),
    keep_old: str = typer.Option(
        "auto",
        "--keep-old",
        help="Classes with no images in --data: none (plain fine-tuning; they are forgotten) | "
        "freeze-rows (their head rows and bias stay bit-identical) | distill (the original model's "
        "outputs on the training images are soft targets for them) | freeze-rows+distill | new-rows "
        "(only the new rows train: backbone and old rows frozen every epoch) | auto (new-rows, or distill "
        "with --old-examples). No effect when the data covers every class.",
    ),
    align: str = typer.Option(
        "auto",
        "--align",
        help="After training with some classes unseen, scale the trained classes' logits down: none | "
        "weights (weight aligning: to the old rows' mean norm) | calibrate (the smallest scale that keeps "
        "95% of the validation images deciding a new class) | auto (calibrate without --old-examples, "
        "none with them).",
    ),
    synthetic_old: int = typer.Option(
        0,
        "--synthetic-old",
        help="With no --old-examples: synthesise this many images per missing class from the original "
        "model (DeepInversion; needs BatchNorm layers) and replay them. 0 = off. Seconds for a small "
        "model, far more for a large one at 224 px (docs/finetune.md).",
    ),
    old_examples: str | None = typer.Option(
        None,
        "--old-examples",
        help="A few labelled images of the classes missing from --data, any number per class from one: "
        "DIR/<class>/* (class folders named like the model's classes) or a CSV manifest. Replayed every "
        "step with a class-balanced loss; by far the best way to keep the old classes in the decision.",
    ),
    unlabelled: str | None = typer.Option(
        None,
        "--unlabelled",
        help="Folder of any images, no labels (any sub-folders): where the original model is sure of an old "
        "class, its decision is distilled into the fine-tuned model.",
    ),
    distill_weight: float = typer.Option(
        1.0, "--distill-weight", help="distill: weight of the distillation loss next to cross-entropy."
    ),
    distill_temperature: float = typer.Option(
        2.0, "--distill-temperature", help="distill: softmax temperature of the soft targets."
    ),
    retention_data: str | None = typer.Option(
        None,
        "--retention-data",
        help="Images on which retention of the unseen classes is measured: how often the fine-tuned "
        "model's decision over all classes is the original model's, where that is an unseen class. Class "
        "folders named like the model's classes (or a manifest, or 'digits'): only the unseen classes' "
        "images; any other folder: every image. Default: --old-examples, else --unlabelled, else the "
        "training images (said plainly: they are of the new classes).",
    ),
    output: Path = typer.Option(
        ..., "-o", "--output", help="Model directory to write (checkpoints: OUTPUT.ckpt/)."
    ),
    digits: str | None = typer.Option(
        None,
        "--digits-subset",
        help="digits: train on these digits only (0-6 or 0,2,4); default: the model's.",
    ),
    epochs: int = typer.Option(6, "--epochs", help="Epochs in all, frozen ones included."),
    freeze_epochs: int = typer.Option(
        1,
        "--freeze-epochs",
        help="First epochs with the backbone frozen (BatchNorm statistics too).",
    ),
    unfreeze_stages: int | None = typer.Option(
        None,
        "--unfreeze-stages",
        help="After the frozen epochs open only the last K backbone stages (default: all).",
    ),
    lr: float = typer.Option(3e-3, "--lr", help="Peak learning rate of the head."),
    backbone_lr_mult: float = typer.Option(
        0.3, "--backbone-lr-mult", help="Backbone learning rate = --lr times this."
    ),
    batch_size: int = typer.Option(
        64, "--batch-size", "-b", help="Images per training step: the global batch, split across processes."
    ),
    optimizer: str = typer.Option("adamw", "--optimizer", help="adamw | sgd (Nesterov momentum)."),
    weight_decay: float = typer.Option(
        0.05, "--weight-decay", help="Decoupled weight decay (not on biases/norms)."
    ),
    momentum: float = typer.Option(0.9, "--momentum", help="sgd: momentum."),
    warmup_epochs: float = typer.Option(
        0.5, "--warmup-epochs", help="Linear warm-up per phase, in epochs."
    ),
    label_smoothing: float = typer.Option(
        0.1, "--label-smoothing", help="Cross-entropy smoothing (0 = off)."
    ),
    clip_grad_norm: float = typer.Option(
        2.0, "--clip", help="Clip the gradient L2 norm to this (0 = off)."
    ),
    patience: int = typer.Option(
        4,
        "--patience",
        help="Early stop after this many epochs without a better val top-1 (0 = off).",
    ),
    checkpoint_every_steps: int = typer.Option(
        0,
        "--checkpoint-every-steps",
        help="Also checkpoint every N steps mid-epoch (0 = at epoch ends only).",
    ),
    amp: bool | None = typer.Option(
        None, "--amp/--no-amp", help="Mixed precision (default: fp16 + grad scaler on CUDA, off on CPU)."
    ),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda."),
    threads: int | None = typer.Option(None, "--threads", help="torch CPU threads (default: torch's)."),
    augment: str = typer.Option(
        "auto",
        "--augment",
        help="auto | none | shift | shift-flip (auto: shift for digits, shift-flip for folders).",
    ),
    val_ratio: float = typer.Option(
        0.15, "--val-ratio", help="Folder without val/: fraction held out per class."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of weights, data order and augmentation."),
    workers: int = typer.Option(
        0, "--workers", help="Processes decoding the images of a folder or manifest (0 = this process)."
    ),
    sync_bn: bool = typer.Option(
        False,
        "--sync-bn",
        help="Several processes: BatchNorm statistics over the global batch, not each process's share "
        "(phases that train BatchNorm).",
    ),
    nproc: int | None = typer.Option(
        None,
        "--nproc",
        help="Run on N processes on this machine: hands this command to torchrun "
        "(python -m torch.distributed.run --standalone --nproc-per-node N -m toolkit.cli finetune ...).",
    ),
    work_dir: Path | None = typer.Option(
        None, "--work-dir", help="Checkpoint folder (default: OUTPUT.ckpt)."
    ),
    keep_checkpoints: bool = typer.Option(
        False, "--keep-checkpoints", help="Keep the checkpoint folder after success."
    ),
    plot: bool = typer.Option(True, "--plot/--no-plot", help="Write curves.png (needs matplotlib)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest readable checkpoint."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace OUTPUT (and stale checkpoints) if they exist."
    ),
) -> None:
    """Fine-tune a model directory (head-only, then the whole model) and write a new model directory."""
    if nproc is not None:
        raise typer.Exit(_hand_to_torchrun(ctx, nproc))
    from toolkit.errors import ReheadError
    from toolkit.finetune.config import FinetuneConfig
    from toolkit.finetune.distributed import launched
    from toolkit.finetune.trainer import finetune as run_finetune

    rank = int(os.environ.get("RANK", "0")) if launched() else 0
    try:
        config = FinetuneConfig(
            epochs=epochs,
            freeze_epochs=freeze_epochs,
            unfreeze_stages=unfreeze_stages,
            batch_size=batch_size,
            lr=lr,
            backbone_lr_mult=backbone_lr_mult,
            optimizer=optimizer,
            weight_decay=weight_decay,
            momentum=momentum,
            warmup_epochs=warmup_epochs,
            label_smoothing=label_smoothing,
            clip_grad_norm=clip_grad_norm if clip_grad_norm > 0 else None,
            amp=amp,
            patience=patience if patience > 0 else None,
            augment=augment,
            seed=seed,
            device=device,
            threads=threads,
            checkpoint_every_steps=checkpoint_every_steps if checkpoint_every_steps > 0 else None,
            keep_checkpoints=keep_checkpoints,
            plot=plot,
            keep_old=keep_old,
            distill_weight=distill_weight,
            distill_temperature=distill_temperature,
            align=align,
            sync_bn=sync_bn,
            synthetic_old=synthetic_old,
        )
        result = run_finetune(
            model_dir,
            data,
            config,
            output=output,
            overwrite=overwrite,
            resume=resume,
            work_dir=work_dir,
            digits=int_list(digits, flag="--digits-subset"),
            val_ratio=val_ratio,
            class_map=class_map,
            retention_data=retention_data,
            old_examples=old_examples,
            unlabelled=unlabelled,
            workers=workers,
            progress=True,
        )
    except ReheadError as exc:
        if rank == 0:
            raise
        if exc.exit_code == 2:
            # every rank met the same bad input: rank 0 reports it. The pause keeps torchrun, which
            # stops the whole group at the first exit, from cutting rank 0's report short.
            time.sleep(_QUIET_EXIT_DELAY_S)
            raise typer.Exit(exc.exit_code) from exc
        raise type(exc)(f"rank {rank}: {exc.message}", hint=exc.hint, param=exc.param) from exc
    if rank != 0:
        return
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
    """The torchrun command line that runs ``rehead <args>`` on ``nproc`` local processes."""
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
