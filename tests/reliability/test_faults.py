"""Faults (docs/bad-inputs.md rows 24, 25, 27, 28 and 40): SIGKILL at several points of every
kind of write, a full disk, two runs on one output, fine-tuning killed and resumed, leftovers of
killed runs. Real processes, real kills, a real file-size limit (RLIMIT_FSIZE).

A kill is either timed from outside (early: while the process starts; mid-write: once its
staging folder or temp file holds data) or exact: ``REHEAD_FAULT_AT`` makes the process SIGKILL
itself at a named point of ``toolkit._atomic`` (``staged``: everything written and fsynced, not
yet published; ``rename``: just before the publishing rename; ``renamed``: just after it).
After every kill the destination must hold the previous complete artifact, the new complete
one (killed after the rename), or nothing; and the next run on it must clean up and succeed.
"""

from __future__ import annotations

import hashlib
import os
import random
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from reliability_util import LEDGER, assert_clean_failure, env, leftovers, run

POINTS = ("staged", "rename", "renamed")


def _digest(path: Path) -> str:
    """sha256 of a file, or of a folder's files (names and bytes)."""
    h = hashlib.sha256()
    if path.is_file():
        h.update(path.read_bytes())
    else:
        for item in sorted(path.rglob("*")):
            if item.is_file():
                h.update(str(item.relative_to(path)).encode() + b"\0" + item.read_bytes())
    return h.hexdigest()


def _start(args: Sequence[object], **extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "toolkit.cli", *[str(a) for a in args]], env=env(**extra),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _kill_when(proc: subprocess.Popen[bytes], ready: Callable[[], bool], timeout: float = 240) -> bool:
    """SIGKILL ``proc`` once ``ready()``; False if it ended first."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if ready():
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
            return True
        time.sleep(0.005)
    proc.wait(timeout=60)
    return False


def _has_staged_data(out: Path) -> Callable[[], bool]:
    def ready() -> bool:
        for name in leftovers(out):
            item = out.parent / name
            files = [item] if item.is_file() else list(item.rglob("*")) if item.is_dir() else []
            if any(f.is_file() and f.stat().st_size > 0 for f in files):
                return True
        return False

    return ready


def _check_after_kill(out: Path, previous: str | None, complete: Callable[[Path], bool]) -> str:
    """The destination after a kill: ``previous``, a complete new artifact, or nothing."""
    if not out.exists():
        state = "nothing"
    elif previous is not None and _digest(out) == previous:
        state = "previous"
    else:
        assert complete(out), f"{out} is neither the previous artifact nor a complete new one"
        state = "new"
    LEDGER["kills"] += 1
    LEDGER["kills_survived"] += 1
    return state


def _onnx_complete(path: Path) -> bool:
    import numpy as np
    import onnx
    import onnxruntime as ort

    onnx.checker.check_model(str(path), full_check=True)
    out = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"images": np.zeros((1, 3, 16, 16), np.float32)})[0]
    return out.shape == (1, 10)


def _bundle_complete(path: Path) -> bool:
    return run(["verify", path]).returncode == 0


def _kill_matrix(
    args: Sequence[object], out: Path, complete: Callable[[Path], bool], *, with_previous: bool, points: Sequence[str]
) -> dict[str, str]:
    """Kill ``rehead ARGS`` at every point of ``points`` (``early``, ``mid-write`` or a fault point),
    check the destination after each, then check that a clean run repairs everything."""
    previous = None
    overwrite = ["--overwrite"] if with_previous else []
    if with_previous:
        done = run([*args, "--overwrite"])
        assert done.returncode == 0, done.stderr
        previous = _digest(out)
    states = {}
    for point in points:
        if point == "early":
            proc = _start([*args, *overwrite])
            killed = _kill_when(proc, lambda start=time.monotonic(): time.monotonic() - start > 0.3)
        elif point == "mid-write":
            proc = _start([*args, *overwrite])
            killed = _kill_when(proc, _has_staged_data(out))
        else:
            proc = _start([*args, *overwrite], REHEAD_FAULT_AT=point)
            proc.wait(timeout=300)
            killed = proc.returncode == -signal.SIGKILL
        assert killed, f"the run ended before the {point} kill (exit {proc.returncode}): {proc.stderr.read()[-800:]!r}"
        LEDGER["faults_injected"] += 1
        states[point] = _check_after_kill(out, previous, complete)
        if states[point] == "new":  # a complete new artifact is the previous one of the next kill
            previous = _digest(out)
    repaired = run([*args, "--overwrite"])  # the next run cleans up the dead runs' leftovers
    assert repaired.returncode == 0, repaired.stderr
    assert complete(out) and not leftovers(out), leftovers(out)
    return states


@pytest.mark.parametrize("with_previous", [pytest.param(False, marks=pytest.mark.slow), True])
def test_row24_sigkill_during_export_onnx(tiny_dir: Path, tmp_path: Path, with_previous: bool) -> None:
    out = tmp_path / "m.onnx"
    states = _kill_matrix(["export", "onnx", tiny_dir, "-o", out], out, _onnx_complete,
                          with_previous=with_previous, points=("early", "mid-write", *POINTS))
    # killed after the rename: the new artifact, complete (byte-identical to the previous one, as
    # the export is deterministic); before it, the previous artifact or nothing
    assert states["renamed"] in ("new", "previous")
    if with_previous:
        assert states["early"] == states["staged"] == states["rename"] == "previous"
    else:
        assert states["staged"] == states["rename"] == "nothing"


@pytest.mark.slow
def test_row24_sigkill_during_export_onnx_int8_with_external_data(tiny_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    _kill_matrix(["export", "onnx", tiny_dir, "-o", out, "--int8", "--calib", "digits", "--calib-samples", "16",
                  "--external-data"], out, _onnx_complete, with_previous=True, points=("mid-write", *POINTS))
    data = [p for p in tmp_path.iterdir() if p.name != "m.onnx"]
    assert len(data) == 1  # one data file: neither the killed runs' nor the replaced one's is left


@pytest.mark.parametrize("with_previous", [False, True])
def test_row24_sigkill_during_package(tiny_dir: Path, tiny_onnx: Path, tmp_path: Path, with_previous: bool) -> None:
    out = tmp_path / "bundle"
    # (no timed mid-write kill: the tiny bundle is written in milliseconds; the fault points cover it)
    states = _kill_matrix(["package", tiny_dir, tiny_onnx, "-o", out, "--no-latency"], out, _bundle_complete,
                          with_previous=with_previous, points=("early", *POINTS))
    if with_previous:
        # killed between the two renames of an overwrite: the destination is empty for a moment and
        # the previous bundle waits beside it; nothing is lost (test_row40 shows it put back)
        assert states["rename"] in ("nothing", "previous") and states["staged"] == "previous"


def test_row24_sigkill_during_package_archive(tiny_dir: Path, tiny_onnx: Path, tmp_path: Path) -> None:
    out = tmp_path / "bundle.tar"
    _kill_matrix(["package", tiny_dir, tiny_onnx, "-o", out, "--archive", "tar", "--no-latency"], out,
                 _bundle_complete, with_previous=True, points=POINTS)


@pytest.mark.slow
def test_row24_sigkill_during_export_pt2(tiny_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.pt2"

    def complete(path: Path) -> bool:
        return run(["validate", tiny_dir, path, "--no-latency"]).returncode == 0

    _kill_matrix(["export", "pt2", tiny_dir, "-o", out], out, complete, with_previous=True,
                 points=("mid-write", *POINTS))


@pytest.mark.gpu
def test_row24_sigkill_during_refit(tiny_dir: Path, tiny_onnx: Path, tmp_path: Path) -> None:
    """rehead refit killed at each publishing point leaves the old engine or a whole new one (runs
    where a GPU and TensorRT are; REHEAD_REQUIRE_GPU=1 makes their absence a failure)."""
    engine = tmp_path / "m.engine"
    built = run(["export", "tensorrt", tiny_onnx, "-o", engine, "--refittable", "--max-batch", "8"])
    assert built.returncode == 0, built.stderr
    out = tmp_path / "refitted.engine"

    def complete(path: Path) -> bool:
        return run(["validate", tiny_dir, path, "--device", "cuda", "--no-latency"]).returncode == 0

    _kill_matrix(["refit", engine, tiny_onnx, "-o", out], out, complete, with_previous=True, points=POINTS)


def _fsize_limit(limit: int) -> Callable[[], None]:
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def _run_limited(args: Sequence[object], limit: int) -> subprocess.CompletedProcess[str]:
    # no bytecode written under the limit: a .pyc cut at 2 KiB would break every later import
    return subprocess.run([sys.executable, "-m", "toolkit.cli", *[str(a) for a in args]],
                          env=env(PYTHONDONTWRITEBYTECODE="1"),
                          capture_output=True, text=True, timeout=300, preexec_fn=_fsize_limit(limit))


@pytest.mark.parametrize("command", ["export-onnx", "export-int8", "extend", "package", "validate-report"])
def test_row24_full_disk_is_a_clean_error_and_keeps_the_previous_artifact(
    tiny_dir: Path, tiny_onnx: Path, tmp_path: Path, command: str
) -> None:
    out = tmp_path / {"export-onnx": "m.onnx", "export-int8": "m.onnx", "extend": "model", "package": "bundle",
                      "validate-report": "report"}[command]
    args: list[object] = {
        "export-onnx": ["export", "onnx", tiny_dir, "-o", out],
        "export-int8": ["export", "onnx", tiny_dir, "-o", out, "--int8", "--calib", "digits", "--calib-samples", "8"],
        "extend": ["extend", "--from", tiny_dir, "-s", "pad-random", "-n", "12", "-o", out],
        "package": ["package", tiny_dir, tiny_onnx, "-o", out, "--no-latency"],
        "validate-report": ["validate", tiny_dir, tiny_onnx, "--no-latency", "--report", out],
    }[command]
    done = run([*args, "--overwrite"])
    assert done.returncode == 0, done.stderr
    previous = _digest(out)
    proc = _run_limited([*args, "--overwrite"], limit=2048)  # every file over 2 KiB fails to write
    assert_clean_failure(proc, None, expect="", exit_code=3, kind="faults_injected")
    assert "room" in proc.stderr or "too large" in proc.stderr.lower() or "space" in proc.stderr.lower()
    assert _digest(out) == previous and not leftovers(out)
    LEDGER["artifacts_checked"] += 1


@pytest.mark.parametrize("overwrite", [False, True])
def test_row25_two_exports_to_one_output(tiny_dir: Path, tmp_path: Path, overwrite: bool) -> None:
    out = tmp_path / "m.onnx"
    flags = ["--overwrite"] if overwrite else []
    procs = [_start(["export", "onnx", tiny_dir, "-o", out, *flags]) for _ in range(2)]
    codes = sorted(p.wait(timeout=300) for p in procs)
    errors = [p.stderr.read().decode() for p in procs]
    if overwrite:
        assert codes == [0, 0], errors  # both complete; the file is one of them, whole
    else:
        assert codes in ([0, 2], [0, 0]), errors  # one wins; the other refuses (or finished first)
        if codes == [0, 2]:
            assert any("already exists" in e or "appeared" in e or "another run" in e for e in errors), errors
    assert _onnx_complete(out) and not leftovers(out)
    LEDGER["faults_injected"] += 1


def test_row25_two_packages_to_one_bundle(tiny_dir: Path, tiny_onnx: Path, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    procs = [_start(["package", tiny_dir, tiny_onnx, "-o", out, "--no-latency"]) for _ in range(2)]
    codes = sorted(p.wait(timeout=300) for p in procs)
    assert codes in ([0, 2], [0, 0]), [p.stderr.read() for p in procs]
    assert _bundle_complete(out) and not leftovers(out)
    LEDGER["faults_injected"] += 1


def _finetune(model_dir: Path, out: Path, *extra: str) -> list[object]:
    return ["finetune", model_dir, "--data", "digits", "--digits-subset", "0-2", "--epochs", "2",
            "--freeze-epochs", "1", "--batch-size", "32", "--threads", "1", "--seed", "7", "--no-plot",
            "--checkpoint-every-steps", "1", "-o", out, *extra]


def _weights(out: Path) -> bytes:
    return (out / "model.safetensors").read_bytes()


def _kill_at_steps(model_dir: Path, out: Path, steps: Sequence[int], *extra: str) -> None:
    """Start the fine-tune, SIGKILL it once the checkpoint of each of ``steps`` exists (every
    process of the run: torchrun's workers outlive their launcher), resume each time, then finish."""
    from toolkit.finetune import default_work_dir

    work = default_work_dir(out)
    for i, step in enumerate(steps):
        proc = _start([*_finetune(model_dir, out, *extra), *(["--resume"] if i else [])])
        target = work / f"step-{step:08d}.pt"
        assert _kill_when(proc, target.exists), f"no checkpoint of step {step}: {proc.stderr.read()[-800:]!r}"
        subprocess.run(["pkill", "-9", "-f", str(out)], check=False)
        time.sleep(0.5)
        assert not out.exists()
        LEDGER["faults_injected"] += 1
        LEDGER["kills"] += 1
    done = run([*_finetune(model_dir, out, *extra), "--resume"])
    assert done.returncode == 0, done.stderr[-2000:]
    LEDGER["kills_survived"] += len(steps)


@pytest.mark.slow
def test_row27_finetune_killed_three_times_ends_identical(digits_model_dir: Path, tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    done = run(_finetune(digits_model_dir, reference))
    assert done.returncode == 0, done.stderr
    steps = sorted(random.Random(15).sample(range(2, 23), 3))  # 12 steps an epoch, 2 epochs
    killed = tmp_path / "killed"
    _kill_at_steps(digits_model_dir, killed, steps)
    assert _weights(killed) == _weights(reference)


@pytest.mark.slow
def test_row27_finetune_under_torchrun_killed_three_times_ends_identical(digits_model_dir: Path,
                                                                         tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    done = run([*_finetune(digits_model_dir, reference), "--nproc", "2"])
    assert done.returncode == 0, done.stderr[-2000:]
    steps = sorted(random.Random(27).sample(range(2, 23), 3))
    killed = tmp_path / "killed"
    _kill_at_steps(digits_model_dir, killed, steps, "--nproc", "2")
    assert _weights(killed) == _weights(reference)


@pytest.mark.slow  # the store's own fallback is tested quickly in tests/finetune/test_checkpoints.py
def test_row28_corrupt_latest_checkpoint_falls_back_with_a_warning(digits_model_dir: Path, tmp_path: Path) -> None:
    from toolkit.finetune import default_work_dir

    reference = tmp_path / "reference"
    assert run(_finetune(digits_model_dir, reference)).returncode == 0
    out = tmp_path / "killed"
    work = default_work_dir(out)
    proc = _start(_finetune(digits_model_dir, out))
    assert _kill_when(proc, (work / "step-00000015.pt").exists)
    newest = max(work.glob("step-*.pt"))
    newest.write_bytes(newest.read_bytes()[:100])  # the newest checkpoint is now corrupt
    done = run([*_finetune(digits_model_dir, out), "--resume"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "warning" in done.stderr and newest.name in done.stderr and "Traceback" not in done.stderr
    assert _weights(out) == _weights(reference)  # resumed from the one before: still identical
    LEDGER["faults_injected"] += 1


def _dead_tag() -> str:
    """The owner tag of a process that has ended (as a killed run's leftovers carry)."""
    from toolkit import _atomic

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return f"{child.pid}-{_atomic.owner_tag().split('-')[1]}"


def test_row40_leftovers_of_dead_runs_are_removed_and_live_ones_kept(tiny_dir: Path, tmp_path: Path) -> None:
    from toolkit import _atomic

    out = tmp_path / "m.onnx"
    dead, live = _dead_tag(), _atomic.owner_tag()  # this test process is the live owner
    stale_dir = tmp_path / f".m.onnx.{dead}.abcd1234.partial"
    stale_dir.mkdir()
    (stale_dir / "m.onnx").write_bytes(os.urandom(43_000))  # what a killed export leaves
    (tmp_path / f".m.onnx.{dead}.efgh5678.tmp").write_bytes(b"half")
    live_dir = tmp_path / f".m.onnx.{live}.ijkl9012.partial"
    live_dir.mkdir()
    old_style = tmp_path / ".m.onnx.xyz.partial"  # no owner recorded: left alone
    old_style.mkdir()
    done = run(["export", "onnx", tiny_dir, "-o", out])
    assert done.returncode == 0, done.stderr
    assert sorted(leftovers(out)) == sorted([live_dir.name, old_style.name])
    LEDGER["faults_injected"] += 1


def test_row40_set_aside_previous_output_of_a_dead_run_is_put_back(tiny_dir: Path, tiny_onnx: Path,
                                                                   tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    assert run(["package", tiny_dir, tiny_onnx, "-o", out, "--no-latency"]).returncode == 0
    previous = _digest(out)
    proc = _start(["package", tiny_dir, tiny_onnx, "-o", out, "--no-latency", "--overwrite"], REHEAD_FAULT_AT="rename")
    proc.wait(timeout=300)
    assert proc.returncode == -signal.SIGKILL and not out.exists()  # killed between the two renames
    assert any(name.endswith(".old") for name in leftovers(out))
    again = run(["package", tiny_dir, tiny_onnx, "-o", out, "--no-latency"])  # no --overwrite
    assert again.returncode == 2 and "already exists" in again.stderr  # the previous bundle is back
    assert _digest(out) == previous and not leftovers(out)
    LEDGER["faults_injected"] += 1
    LEDGER["kills"] += 1
    LEDGER["kills_survived"] += 1
