"""The Typer application object shared by the command modules."""

from __future__ import annotations

import typer

from toolkit import __version__


def _version(value: bool) -> None:
    if value:
        typer.echo(f"rehead {__version__}")
        raise typer.Exit(0)


app = typer.Typer(
    name="rehead",
    help="Extend or replace a pretrained classifier's head, fine-tune it, export it, and prove "
    "the export matches the eager model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain Click help: no "<bool>" after plain flags, and no rich import when --help renders.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"], "show_default": True},
)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback on errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print rehead's version and exit."
    ),
) -> None:
    """rehead: the head of a pretrained classifier, changed, trained, exported and proven."""
