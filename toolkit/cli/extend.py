"""``rehead extend`` and ``rehead inspect``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from toolkit.cli._app import app
from toolkit.cli._parse import class_names_file, int_list


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
        None, "--arch", help="Source architecture: torchvision builder, timm:<name> or py:<module>:<callable>."
    ),
    model_dir: Path | None = typer.Option(None, "--from", help="Source model directory (instead of --arch)."),
    weights: Path | None = typer.Option(
        None, "--weights", help="Source weights: .safetensors, or a .pt/.pth state dict (loaded weights-only)."
    ),
    source_num_classes: int | None = typer.Option(
        None, "--source-num-classes", help="Head size of the source weights if not the architecture's default."
    ),
    keep: str | None = typer.Option(None, "--keep", help="select: old class indices to keep, in order (3,1,7 or 0-6)."),
    copy_from: str | None = typer.Option(
        None, "--copy-from", help="pad-copy: old class index for each new class (default: a seeded draw)."
    ),
    class_names: Path | None = typer.Option(
        None, "--class-names", help="File with every class name of the new head, one per line (or a JSON list)."
    ),
    examples_dir: Path | None = typer.Option(
        None, "--examples", help="imprint: folder with one sub-folder of example images per new class name."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed for random rows, draws and fresh heads."),
    std: float = typer.Option(0.01, "--std", help="pad-random: standard deviation of the new rows."),
    hidden: str | None = typer.Option(
        None, "--hidden", help="bottleneck/mlp: hidden widths (default 256 / 512,256)."
    ),
    activation: str = typer.Option("relu", "--activation", help="bottleneck/mlp: relu | gelu | silu | tanh."),
    dropout: float = typer.Option(0.0, "--dropout", help="bottleneck/mlp: dropout after each hidden layer."),
    head: str | None = typer.Option(None, "--head", help="Dotted module name of the head (skips the search)."),
    input_size: int | None = typer.Option(
        None, "--input-size", help="Square input size in pixels recorded in the config (default: the architecture's)."
    ),
    allow_pickle: bool = typer.Option(
        False, "--trust-pickle", help="Allow a checkpoint that needs unpickling code (only for files you trust)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUTPUT if it exists."),
) -> None:
    """Change a classifier's head and write a model directory (model.safetensors + config.json)."""
    import dataclasses

    from rich.console import Console

    from toolkit.architectures import default_preprocessing
    from toolkit.extension import extend as run_extend

    console = Console(stderr=True)
    prep = None
    if input_size is not None:
        from toolkit.errors import InvalidArgumentError

        if input_size <= 0:
            raise InvalidArgumentError(f"--input-size must be positive (got {input_size})")
        base = default_preprocessing(arch) if arch else None
        if base is None and model_dir is not None:
            from toolkit.model_dir import read_config

            base = read_config(model_dir).preprocessing
        prep = dataclasses.replace(base, input_size=(input_size, input_size)) if base else None
    with console.status("loading the source model and changing its head"):
        result = run_extend(
            strategy=strategy,
            arch=arch,
            model_dir=model_dir,
            weights=weights,
            num_classes=num_classes,
            keep=int_list(keep, flag="--keep"),
            copy_from=int_list(copy_from, flag="--copy-from"),
            class_names=class_names_file(class_names),
            examples_dir=examples_dir,
            seed=seed,
            std=std,
            hidden=int_list(hidden, flag="--hidden") or (),
            activation=activation,
            dropout=dropout,
            head=head,
            source_num_classes=source_num_classes,
            preprocessing=prep,
            allow_pickle=allow_pickle,
            output=output,
            overwrite=overwrite,
        )
    spec = result.config.head
    typer.echo(
        f"wrote {output}: {result.config.arch}, head '{spec.module}' {spec.old_num_classes} -> "
        f"{spec.num_classes} classes ({spec.strategy}; kept {len(spec.kept_indices)}, new {len(spec.new_indices)})"
    )


@app.command()
def inspect(
    model_dir: Path | None = typer.Argument(None, metavar="MODEL_DIR", help="A model directory (or use --arch)."),
    arch: str | None = typer.Option(None, "--arch", help="Inspect an architecture instead of a directory."),
    head: str | None = typer.Option(None, "--head", help="Dotted module name of the head (skips the search)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Show the head found, its in/out features, parameter counts and the frozen/trainable split."""
    from toolkit.errors import InvalidArgumentError
    from toolkit.inspect import inspect_model

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
