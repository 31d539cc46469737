"""Bad-inputs row 27: a fine-tune killed with SIGKILL mid-epoch, then resumed, ends bit-identical.

Real processes, a real kill: the CLI runs in a subprocess with a checkpoint every 3 steps; once
the checkpoint of step 15 (in the middle of the second epoch) exists, the process gets SIGKILL.
``--resume`` then finishes the run, and its ``model.safetensors`` must equal, byte for byte, the
one of an uninterrupted run with the same seed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from toolkit.finetune import default_work_dir
from toolkit.models.model_dir import WEIGHTS_FILE

CLI = [sys.executable, "-c", "import sys; from toolkit.cli import main; sys.exit(main())"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
KILL_AT_STEP = 15  # 3 digits: 376 training images / 32 = 12 steps per epoch: step 15 is mid epoch 2


def _command(model_dir: Path, out: Path, *extra: str, epochs: int = 2) -> list[str]:
    return [
        *CLI, "finetune", str(model_dir), "--data", "digits", "--digits-subset", "0-2",
        "--epochs", str(epochs), "--freeze-epochs", "1", "--batch-size", "32", "--threads", "1", "--seed", "7",
        "--no-plot", "-o", str(out), *extra,
    ]  # fmt: skip


def test_sigkill_mid_epoch_then_resume_gives_identical_weights(digits_model_dir: Path, tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    done = subprocess.run(_command(digits_model_dir, reference), env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr

    killed = tmp_path / "killed"
    work = default_work_dir(killed)
    steps = _kill_at(_command(digits_model_dir, killed, "--checkpoint-every-steps", "3"), killed)

    resumed = subprocess.run(
        _command(digits_model_dir, killed, "--checkpoint-every-steps", "3", "--resume"),
        env=ENV, capture_output=True, text=True,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stderr and f"step {max(steps)}" in resumed.stderr
    assert (killed / WEIGHTS_FILE).read_bytes() == (reference / WEIGHTS_FILE).read_bytes()
    assert not work.exists()  # checkpoints cleaned up after the successful resume


def test_resume_without_checkpoints_starts_fresh(digits_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "fresh"
    run = subprocess.run(
        _command(digits_model_dir, out, "--resume", epochs=1), env=ENV, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert "no checkpoint" in run.stderr and (out / WEIGHTS_FILE).is_file()


@pytest.mark.slow
def test_sigkill_then_resume_with_old_examples_and_unlabelled_images(digits_model_dir: Path, tmp_path: Path) -> None:
    """Issue 22: the replayed old examples and the distilled unlabelled images are drawn per step
    from (seed, epoch, batch), and the original model's logits on the unlabelled images are cached:
    a killed and resumed subset run still ends byte-identical."""
    old = _digit_folder(tmp_path / "old", {str(d): d for d in range(7)}, per_class=1)
    unlabelled = _digit_folder(tmp_path / "unlabelled", {"a": 0, "b": 3, "c": 8}, per_class=4)
    extra = ("--digits-subset", "7-9", "--old-examples", str(old), "--unlabelled", str(unlabelled),
             "--keep-old", "distill", "--align", "calibrate")  # fmt: skip
    reference = tmp_path / "reference"
    done = subprocess.run(_command(digits_model_dir, reference, *extra), env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    killed = tmp_path / "killed"
    steps = _kill_at(_command(digits_model_dir, killed, *extra, "--checkpoint-every-steps", "3"), killed)
    resumed = subprocess.run(
        _command(digits_model_dir, killed, *extra, "--checkpoint-every-steps", "3", "--resume"),
        env=ENV, capture_output=True, text=True,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert f"step {max(steps)}" in resumed.stderr
    assert (killed / WEIGHTS_FILE).read_bytes() == (reference / WEIGHTS_FILE).read_bytes()


def _kill_at(command: list[str], out: Path) -> list[int]:
    """Run ``command`` until the checkpoint of ``KILL_AT_STEP`` exists, SIGKILL it; the steps left."""
    work = default_work_dir(out)
    target = work / f"step-{KILL_AT_STEP:08d}.pt"
    proc = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not target.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert target.exists(), f"no checkpoint for step {KILL_AT_STEP} (exit code {proc.poll()})"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not out.exists(), "the run finished before the kill: nothing was interrupted"
    steps = sorted(int(p.stem.split("-")[1]) for p in work.glob("step-*.pt"))
    assert KILL_AT_STEP in steps and max(steps) < 24
    return steps


def _digit_folder(root: Path, digits: dict[str, int], *, per_class: int) -> Path:
    """``{folder name: digit}``: DIR/<folder>/*.png holding real digit images (upscaled 4x)."""
    import numpy as np
    from PIL import Image

    from toolkit.data.digits import digits_uint8

    images, labels = digits_uint8("train")
    for name, digit in digits.items():
        (root / name).mkdir(parents=True)
        for i, img in enumerate(images[labels == digit][:per_class]):
            Image.fromarray(np.kron(img, np.ones((4, 4), dtype=np.uint8))).save(root / name / f"{i}.png")
    return root
