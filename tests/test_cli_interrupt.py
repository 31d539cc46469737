"""Ctrl-C: one line that says where the command stopped, what was kept and the exact command to run.

A real SIGINT to a real ``rehead finetune`` process: the line it prints names the kept checkpoint
and a command with ``--resume``; running that very command finishes the run. The notes of the other
commands are checked on their own (what they keep is what atomic publishing keeps: nothing half-written).
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from toolkit.cli._interrupt import interrupt_note
from toolkit.finetune import default_work_dir
from toolkit.models.model_dir import WEIGHTS_FILE

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a shell's background job would ignore it


def test_ctrl_c_during_finetune_says_how_to_resume_and_that_command_works(
    digits_model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "tuned"
    args = ["finetune", str(digits_model_dir), "--data", "digits", "--digits-subset", "0-2", "--epochs", "2",
            "--freeze-epochs", "1", "--batch-size", "32", "--threads", "1", "--checkpoint-every-steps", "3",
            "--no-plot", "-o", str(out)]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "toolkit.cli", *args], env=ENV, cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint,
    )  # fmt: skip
    work = default_work_dir(out)
    deadline = time.monotonic() + 240
    while not (work.is_dir() and any(work.glob("step-*.pt"))):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    errors = [line for line in err.splitlines() if line.startswith("rehead: error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    line = errors[0]
    assert "interrupted" in line and "step" in line and str(work.name) in line and "--resume" in line, line
    assert not out.exists(), "nothing is published by an interrupted fine-tune"

    resume = line.split("continue where it stopped with: ", 1)[1]
    argv = shlex.split(resume)
    assert argv[0] == "rehead" and argv[1:] == [*args, "--resume"], argv
    done = subprocess.run([sys.executable, "-m", "toolkit.cli", *argv[1:]], env=ENV, cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "resuming from" in done.stderr + done.stdout
    assert (out / WEIGHTS_FILE).is_file()


def test_interrupt_notes_say_what_was_kept_and_what_to_run(tmp_path: Path) -> None:
    argv = ["export", "onnx", "model", "-o", str(tmp_path / "m.onnx")]
    note = interrupt_note("export onnx", {"output": tmp_path / "m.onnx"}, argv)
    assert note.startswith("onnx export interrupted") and "nothing was published" in note
    assert note.endswith(f"run it again: rehead export onnx model -o {tmp_path / 'm.onnx'}"), note

    note = interrupt_note("validate", {"report_dir": None}, ["validate", "m", "a.onnx"])
    assert "nothing was written" in note and "rehead validate m a.onnx" in note
    note = interrupt_note("validate", {"report_dir": tmp_path / "r"}, ["validate", "m", "a.onnx", "--report", "r"])
    assert f"nothing was published at '{tmp_path / 'r'}'" in note

    fresh = interrupt_note("finetune", {"output": tmp_path / "t", "work_dir": None}, ["finetune", "m", "-o", "t"])
    assert "before its first checkpoint" in fresh and "rehead finetune m -o t --resume" in fresh
