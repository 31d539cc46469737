"""``rehead extend`` and ``rehead inspect``."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from toolkit.cli._app import app
from toolkit.cli._parse import class_names_file, int_list
from toolkit.heads.options import StrategyArgs

if TYPE_CHECKING:
    from toolkit.records import ModelConfig

#: the strategy options' defaults (``StrategyArgs`` imports no torch)
_STRATEGY = StrategyArgs()


@app.command()
def extend(
    output: Path = typer.Option(..., "-o", "--output", help="Model directory to write."),
    strategy: str = typer.Option(
        "pad-random",
        "--strategy",
        "-s",
        help="replace | select | pad-random | pad-copy | pad-mean | imprint | bottleneck | mlp.",
    ),
    num_classes: int | None = typer.Option(
        None, "--num-classes", "-n", help="Classes of the new head (select: defaults to len(--keep))."
    ),
    arch: str | None = typer.Option(
        None, "--arch", help="Source architecture: torchvision builder, timm:<name>[.<tag>] or py:<module>:<callable>."
    ),
    model_dir: Path | None = typer.Option(None, "--from", help="Source model directory (instead of --arch)."),
    weights: str | None = typer.Option(
        None,
        "--weights",
        help="Source weights: torchvision weights by name (IMAGENET1K_V1, DEFAULT, ResNet18_Weights.IMAGENET1K_V1; "
        "downloaded into torch hub's cache), or a file: .safetensors, or a .pt/.pth state dict (loaded weights-only).",
    ),
    pretrained: bool = typer.Option(
        False, "--pretrained", help="timm:<name>[.<tag>]: load timm's pretrained weights (Hugging Face hub cache)."
    ),
    random_init: bool = typer.Option(
        False, "--random-init", help="Start from a random backbone on purpose (no weights; silences the warning)."
    ),
    source_num_classes: int | None = typer.Option(
        None, "--source-num-classes", help="Head size of the source weights if not the architecture's default."
    ),
    keep: str | None = typer.Option(None, "--keep", help="select: old class indices to keep, in order (3,1,7 or 0-6)."),
    copy_from: str | None = typer.Option(
        None, "--copy-from", help="pad-copy: old class index for each new class (default: a seeded draw)."
    ),
    class_names: Path | None = typer.Option(
        None, "--class-names", help="File of class names, one per line (or a JSON list): every class of the new head, "
        "or for pad-* and imprint the new classes alone."
    ),
    examples_dir: Path | None = typer.Option(
        None, "--examples", help="imprint: folder with one sub-folder of example images per new class name."
    ),
    seed: int = typer.Option(_STRATEGY.seed, "--seed", help="Seed for random rows, draws and fresh heads."),
    std: float = typer.Option(_STRATEGY.std, "--std", help="pad-random: standard deviation of the new rows."),
    hidden: str | None = typer.Option(
        None, "--hidden", help="bottleneck/mlp: hidden widths (default 256 / 512,256)."
    ),
    activation: str = typer.Option(
        _STRATEGY.activation, "--activation", help="bottleneck/mlp: relu | gelu | silu | tanh."
    ),
    dropout: float = typer.Option(
        _STRATEGY.dropout, "--dropout", help="bottleneck/mlp: dropout after each hidden layer."
    ),
    head: str | None = typer.Option(None, "--head", help="Dotted module name of the head (skips the search)."),
    input_size: int | None = typer.Option(
        None, "--input-size", help="Square input size in pixels recorded in the config (default: the architecture's)."
    ),
    allow_pickle: bool = typer.Option(
        False, "--trust-pickle", help="Allow a checkpoint that needs unpickling code (only for files you trust)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUTPUT if it exists."),
) -> None:
    """Change a classifier's head and write a model directory (model.safetensors + config.json).

    \b
    Start from pretrained weights (class names and preprocessing come with them):
      rehead extend --arch resnet18 --weights IMAGENET1K_V1 -s pad-random -n 1003 -o out/model
      rehead extend --arch timm:resnet18.a1_in1k --pretrained -s replace -n 10 -o out/model
    From your own weights file, or a model directory:
      rehead extend --arch resnet18 --weights my.safetensors -s select --keep 0-6 -o out/model
      rehead extend --from out/model -s pad-mean -n 12 -o out/model2
    Without weights the backbone is random: a warning says so (--random-init to mean it).
    Offline, named weights must already be in torch hub's / the Hugging Face cache; the error
    names the URL and the exact cache path to place the file at (exit 3).
    """
    from toolkit.extension import extend as run_extend

    args = StrategyArgs(
        num_classes=num_classes,
        keep=_indices(keep, "--keep"),
        copy_from=_indices(copy_from, "--copy-from"),
        seed=seed,
        std=std,
        hidden=_indices(hidden, "--hidden") or (),
        activation=activation,
        dropout=dropout,
    )
    # a download shows torch hub's / huggingface_hub's own progress bar; a spinner would garble it
    may_download = pretrained or (weights is not None and not _is_file(weights))
    with _spinner(not may_download):
        result = run_extend(
            strategy=strategy, args=args, arch=arch, model_dir=model_dir, weights=weights, pretrained=pretrained,
            random_init=random_init, class_names=class_names_file(class_names), examples_dir=examples_dir,
            head=head, source_num_classes=source_num_classes, input_size=input_size, allow_pickle=allow_pickle,
            output=output, overwrite=overwrite, progress=may_download,
        )  # fmt: skip
    _say_result(result.config, output)


def _indices(text: str | None, flag: str) -> tuple[int, ...] | None:
    """A list flag's numbers (``3,1,7`` or ``0-6``), or ``None`` when it is not given."""
    values = int_list(text, flag=flag)
    return None if values is None else tuple(values)


def _spinner(shown: bool) -> contextlib.AbstractContextManager[object]:
    """A spinner on stderr while the model loads, or nothing (a download shows its own progress)."""
    from rich.console import Console

    if not shown:
        return contextlib.nullcontext()
    return Console(stderr=True).status("loading the source model and changing its head")


def _say_result(config: ModelConfig, output: Path) -> None:
    """What was written: the head's change, then the new classes."""
    spec = config.head
    typer.echo(
        f"wrote {output}: {config.arch}, head '{spec.module}' {spec.old_num_classes} -> "
        f"{spec.num_classes} classes ({spec.strategy}; kept {len(spec.kept_indices)}, new {len(spec.new_indices)})"
    )
    _say_new_classes(config.class_names, spec.new_indices, spec.strategy)


def _say_new_classes(names: Sequence[str], new: Sequence[int], strategy: str) -> None:
    """Name the new classes, and say how to rename the ones that got placeholder names."""
    from toolkit._text import listing
    from toolkit.heads.strategies import PAD_STRATEGIES

    if not new:
        return
    new_names = [names[i] for i in new]
    rows = f"row {new[0]}" if len(new) == 1 else f"rows {new[0]}-{new[-1]}"
    typer.echo(f"new classes ({rows}): {listing(new_names, limit=8)}")
    placeholders = [n for n in new_names if re.fullmatch(r"(new|class)_\d+", n)]
    if placeholders:
        which = f"the {len(new)} new names alone" if strategy in PAD_STRATEGIES else f"all {len(names)} names"
        typer.echo(
            f"  to name them: rerun with --class-names FILE ({which}, one per line) and --overwrite, "
            f"or map your data's folders to them at fine-tuning: --class-map FILE with lines like "
            f"'circle,{placeholders[0]}'"
        )


def _is_file(weights: str) -> bool:
    from toolkit.models.pretrained import is_weights_file

    return is_weights_file(weights)


@app.command()
def inspect(
    model_dir: Path | None = typer.Argument(None, metavar="MODEL_DIR", help="A model directory (or use --arch)."),
    arch: str | None = typer.Option(None, "--arch", help="Inspect an architecture instead of a directory."),
    head: str | None = typer.Option(None, "--head", help="Dotted module name of the head (skips the search)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Show the head found, its in/out features, parameter counts and the frozen/trainable split."""
    from toolkit.errors import InvalidArgumentError
    from toolkit.heads.summary import inspect_model

    if (model_dir is None) == (arch is None):
        raise InvalidArgumentError("give a MODEL_DIR or --arch NAME (one of them)", hint="rehead inspect out/model")
    info = inspect_model(model_dir=model_dir, arch=arch, head=head)
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{info['arch']} — head", show_header=False)
    for key, value in info.items():
        if key != "arch":
            table.add_row(key.replace("_", " "), str(value))
    Console().print(table)
