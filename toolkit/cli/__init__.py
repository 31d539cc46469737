"""The thin command line: flags become keyword arguments, errors become exit codes.

Exit codes: 0 success, 1 a validation gate failed, 2 bad input or usage, 3 missing optional
dependency or hardware, 4 an internal error (a bug in rehead). Errors print one line with a
hint, and the flag at fault where the library names the keyword argument it came from (each
option's parameter name is that keyword argument); ``--debug`` adds the traceback. Every
command module registers itself on ``app``.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Sequence
from typing import Any

import typer

from toolkit.cli._app import app
from toolkit.errors import ReheadError

# Importing a command module registers its commands on ``app``. They import the libraries they
# call inside each command, so that ``rehead --help`` stays fast.
# (in pipeline order, which is the order `rehead --help` lists them in)
from toolkit.cli import extend, finetune, export, lint, refit, validate, deploy, serve, demo  # noqa: F401  isort: skip


def _click_exceptions() -> tuple[tuple[type[BaseException], ...], ...]:
    """Exit, Abort, UsageError, ClickException from click and from the copy Typer may vendor."""
    import importlib

    modules = []
    for name in ("typer._click.exceptions", "click.exceptions"):
        try:
            modules.append(importlib.import_module(name))
        except ImportError:
            continue
    return tuple(
        tuple(getattr(m, kind) for m in modules if hasattr(m, kind))
        for kind in ("Exit", "Abort", "UsageError", "ClickException")
    )


def _print_error(text: str) -> None:
    print(f"rehead: error: {text}", file=sys.stderr)


def _one_line_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: object = None,
    line: object = None,
) -> None:
    from toolkit.cli._words import cli_words

    text = cli_words(" ".join(str(message).split()), _RUNNING[-1] if _RUNNING else None)
    print(f"rehead: warning: {text}", file=sys.stderr)


#: the commands running in this process, innermost last (for the warning handler's flag names)
_RUNNING: list[Any] = []


class _Interrupted(Exception):
    """Ctrl-C inside a command, with the one line that says what was kept and what to run
    (raised before Typer turns the KeyboardInterrupt into a silent exit 130)."""

    def __init__(self, note: str) -> None:
        super().__init__(note)
        self.note = note


def _track_running(command: Any, running: list[Any], argv: Sequence[str], path: str = "") -> None:
    """Wrap the callback of ``command`` and of every command below it so that the error handler
    knows which command was running when a library error reached it, and an interrupted command
    can say what it kept."""
    for name, sub in getattr(command, "commands", {}).items():
        _track_running(sub, running, argv, f"{path} {name}".strip())
    callback = command.callback
    if callback is None:
        return

    def run(*args: Any, **kwargs: Any) -> Any:
        running.append(command)
        try:
            return callback(*args, **kwargs)
        except KeyboardInterrupt as exc:
            from toolkit.cli._interrupt import interrupt_note

            raise _Interrupted(interrupt_note(path, kwargs, argv)) from exc

    command.callback = run


def _flag(command: Any, param: str | None) -> str | None:
    """The option of ``command`` that fills the library's keyword argument ``param`` (``--calib-samples``
    for ``calib_samples``): each option's parameter name is the keyword argument it is copied into."""
    if command is None or param is None:
        return None
    for option in command.params:
        if option.name == param and option.param_type_name == "option":
            long_names = [name for name in option.opts if name.startswith("--")]
            return str((long_names or option.opts)[0])
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code (the console script exits with it).

    Args:
        argv: the arguments after the program name (default None: ``sys.argv[1:]``).
    """
    import warnings

    args = list(sys.argv[1:] if argv is None else argv)
    warnings.showwarning = _one_line_warning
    debug = "--debug" in args
    command = typer.main.get_command(app)
    running = _RUNNING
    running.clear()
    _track_running(command, running, [a for a in args if a != "--debug"])
    exit_exc, abort_exc, usage_exc, click_exc = _click_exceptions()
    try:
        result = command.main(args=args, prog_name="rehead", standalone_mode=False)
    except exit_exc as exc:
        return int(exc.exit_code)  # type: ignore[attr-defined]
    except abort_exc:
        _print_error("aborted")
        return 130
    except usage_exc as exc:
        ctx = getattr(exc, "ctx", None)
        where = f"{ctx.command_path} --help" if ctx is not None else "rehead --help"
        message = " ".join(exc.format_message().split())  # type: ignore[attr-defined]
        _print_error(f"{message}; hint: see '{where}'")
        return 2
    except click_exc as exc:
        _print_error(" ".join(exc.format_message().split()))  # type: ignore[attr-defined]
        return 2
    except ReheadError as exc:
        if debug:
            traceback.print_exc()
        # Library messages name keyword arguments; the CLI adds the flag that sets one.
        from toolkit.cli._words import cli_words

        running_command = running[-1] if running else None
        flag = _flag(running_command, exc.param)
        more = "; rerun with --debug for the traceback" if exc.exit_code == 4 and not debug else ""
        text = cli_words(exc.one_line(), running_command)
        _print_error(text + (f"; flag: {flag}" if flag else "") + more)
        return exc.exit_code
    except _Interrupted as exc:
        from toolkit.cli._interrupt import INTERRUPTED_EXIT, is_main_process

        if is_main_process():
            _print_error(exc.note)
        return INTERRUPTED_EXIT
    except KeyboardInterrupt:
        _print_error("interrupted; hint: nothing is published half-written: run the command again")
        return 130
    except Exception as exc:  # the last line of defence: our bug, one line unless --debug
        if debug:
            traceback.print_exc()
        from toolkit._atomic import out_of_room

        if isinstance(exc, MemoryError):  # numpy's array allocation: an input asked for more than there is
            detail = " ".join(str(exc).split())[:200]
            _print_error(
                f"out of memory: {detail or type(exc).__name__}; hint: ask for less at once (smaller "
                "--batch-sizes, fewer --samples) or run on a machine with more memory"
            )
            return 3
        room = out_of_room(exc)
        if room is not None:  # a write ran out of room below a library call that did not say so
            _print_error(
                f"a write ran out of room: {room.strerror}{f' ({room.filename})' if room.filename else ''}; "
                "hint: free space on that file system (or raise the limit) and run again; "
                "nothing was published, the previous content is intact"
            )
            return 3
        first = str(exc).splitlines()[0][:300] if str(exc) else ""
        _print_error(
            f"internal error: {type(exc).__name__}: {first}; hint: this is a bug in rehead, "
            "rerun with --debug and report the traceback"
        )
        return 4
    return int(result) if isinstance(result, int) else 0


__all__ = ["app", "main"]
