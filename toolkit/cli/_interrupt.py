"""What an interrupted command (Ctrl-C) says: where it stopped, what was kept, what to run.

Every write rehead does is staged and published atomically, so an interrupted export, package
or report publishes nothing and leaves any previous output as it was; an interrupted fine-tune
keeps its checkpoints and continues with ``--resume``. The note is built from the command's own
parsed options, so the command it suggests is the user's, with the flag added.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

#: exit status of a process ended by SIGINT, as shells report it
INTERRUPTED_EXIT = 130


def _rerun(argv: Sequence[str], *extra: str) -> str:
    args = list(argv)
    args += [flag for flag in extra if flag not in args]
    return shlex.join(["rehead", *args])


def _output(params: Mapping[str, Any]) -> str | None:
    for key in ("output", "report_dir", "json_path", "junit_path"):
        value = params.get(key)
        if value is not None:
            return str(value)
    return None


def _finetune(params: Mapping[str, Any], argv: Sequence[str]) -> str:
    from toolkit.finetune import default_work_dir
    from toolkit.finetune.checkpoints import CheckpointStore

    output = params.get("output")
    work = Path(params["work_dir"]) if params.get("work_dir") else default_work_dir(output or "out")
    paths = CheckpointStore(work).paths()
    resume = _rerun(argv, "--resume")
    if not paths:
        return (
            f"fine-tuning interrupted before its first checkpoint; nothing was written to '{output}'; "
            f"hint: run it again ({resume} starts from the beginning when there is no checkpoint)"
        )
    from toolkit.errors import CorruptCheckpointError
    from toolkit.finetune.checkpoints import load_checkpoint

    where = f"step {int(paths[-1].stem.removeprefix('step-'))}"
    try:
        progress = load_checkpoint(paths[-1])["progress"]
        where = f"epoch {int(progress['epoch']) + 1}, step {int(progress['global_step'])}"
    except (CorruptCheckpointError, KeyError, TypeError, ValueError):
        pass  # the step in the file name is enough to say where it stops
    return (
        f"fine-tuning interrupted; it continues from its last checkpoint ({where}), kept in '{work}'; nothing was "
        f"published at '{output}'; hint: continue where it stopped with: {resume}"
    )


def _published_nothing(what: str) -> Callable[[Mapping[str, Any], Sequence[str]], str]:
    def note(params: Mapping[str, Any], argv: Sequence[str]) -> str:
        out = _output(params)
        kept = (
            f"nothing was published at '{out}' (a previous one is intact)" if out else "nothing was written"
        )
        return f"{what} interrupted; {kept}; hint: run it again: {_rerun(argv)}"

    return note


#: command path (below ``rehead``) -> its note; commands not named get the plain one
NOTES: dict[str, Callable[[Mapping[str, Any], Sequence[str]], str]] = {
    "finetune": _finetune,
    "extend": _published_nothing("extend"),
    "validate": _published_nothing("validation"),
    "bench": _published_nothing("benchmark"),
    "package": _published_nothing("packaging"),
    "triton": _published_nothing("writing the Triton repository"),
    "demo": _published_nothing("the demo"),
}


def interrupt_note(command_path: str, params: Mapping[str, Any], argv: Sequence[str]) -> str:
    """One line (without the ``rehead: error:`` prefix) for an interrupted command.

    Args:
        command_path: the command below ``rehead`` (``finetune``, ``export onnx``).
        params: the command's parsed parameters (its output, its work directory).
        argv: the arguments after ``rehead`` (``--debug`` left out), for the command line to run again.
    """
    path = command_path.strip()
    note = NOTES.get(path)
    if note is None and path.startswith("export "):
        note = _published_nothing(f"{path.removeprefix('export ')} export")
    if note is None:
        note = _published_nothing(path or "rehead")
    try:
        return note(params, argv)
    except Exception as exc:  # never hide the interrupt behind a failure to describe it
        return f"{path or 'rehead'} interrupted ({type(exc).__name__} while describing it); hint: run it again"


def is_main_process() -> bool:
    """Under torchrun only rank 0 speaks (every rank gets the Ctrl-C)."""
    return os.environ.get("RANK", "0") == "0"
