"""Checkpoint store: atomic writes (row 24), two kept, corrupt latest skipped with a warning (row 28)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from toolkit.errors import CorruptCheckpointError, DiskFullError
from toolkit.finetune import CheckpointStore, CheckpointWarning, load_checkpoint
from toolkit.finetune.checkpoints import FORMAT


def _state(value: float, size: int = 8) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "model": {"w": torch.full((size,), value)},
        "optimizer": {},
        "scheduler": {},
        "scaler": {},
        "rng": {"torch": torch.get_rng_state()},
        "progress": {"epoch": int(value)},
        "run": {"config": {}},
    }


class Unpicklable:
    """Pickling this raises half-way through ``torch.save``: a write that fails mid-file."""

    def __reduce__(self) -> Any:
        raise OSError(28, "No space left on device")


def test_keeps_the_last_two_and_loads_weights_only(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "ck")
    assert store.load_latest() is None and not (tmp_path / "ck").exists()
    for step in (1, 2, 3):
        store.save(_state(float(step)), step)
    assert [p.name for p in store.paths()] == ["step-00000002.pt", "step-00000003.pt"]
    state, path = store.load_latest()  # type: ignore[misc]
    assert path.name == "step-00000003.pt" and float(state["model"]["w"][0]) == 3.0
    # the file itself loads with the weights-only unpickler
    assert torch.load(path, weights_only=True)["progress"] == {"epoch": 3}


@pytest.mark.parametrize("damage", ["truncate", "zero", "garbage", "foreign"])
def test_corrupt_latest_falls_back_with_a_warning(tmp_path: Path, damage: str) -> None:
    store = CheckpointStore(tmp_path)
    store.save(_state(1.0), 1)
    latest = store.save(_state(2.0), 2)
    data = latest.read_bytes()
    if damage == "truncate":
        latest.write_bytes(data[: len(data) // 2])
    elif damage == "zero":
        latest.write_bytes(b"")
    elif damage == "garbage":
        latest.write_bytes(os.urandom(len(data)))
    else:
        torch.save({"weights": torch.zeros(2)}, latest)  # loads, but is no rehead checkpoint
    with pytest.warns(CheckpointWarning, match=r"corrupt checkpoint '.*step-00000002\.pt'.*falling back"):
        state, path = store.load_latest()  # type: ignore[misc]
    assert path.name == "step-00000001.pt" and float(state["model"]["w"][0]) == 1.0


def test_all_corrupt_is_an_error_naming_them(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    for step in (1, 2):
        store.save(_state(1.0), step).write_bytes(b"junk")
    with pytest.warns(CheckpointWarning), pytest.raises(CorruptCheckpointError, match="no readable"):
        store.load_latest()
    with pytest.raises(CorruptCheckpointError, match="step-00000001"):
        load_checkpoint(tmp_path / "step-00000001.pt")


def test_a_write_failing_midway_leaves_the_previous_checkpoint(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    good = store.save(_state(1.0, size=1 << 16), 1)
    before = good.read_bytes()
    bad = _state(2.0, size=1 << 16)
    bad["progress"] = {"poison": Unpicklable()}
    # a full disk is reported as such (exit 3), not as the writer's own error
    with pytest.raises(DiskFullError, match="No space left") as caught:
        store.save(bad, 2)
    assert isinstance(caught.value.__cause__, OSError) and caught.value.exit_code == 3
    assert good.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [good.name]  # no temp file, no partial step-2


WRITER = textwrap.dedent(
    """
    import sys, torch
    from toolkit.finetune.checkpoints import CheckpointStore, FORMAT
    store = CheckpointStore(sys.argv[1])
    big = torch.ones(64 * 1024 * 1024 // 4)  # 64 MiB: each write takes a while
    for step in range(1, 10_000):
        store.save({"format": FORMAT, "model": {"w": big * step}, "optimizer": {}, "scheduler": {},
                    "scaler": {}, "rng": {}, "progress": {"step": step}, "run": {}}, step)
    """
)


def _kill_during_a_write(folder: Path) -> bool:
    """Start the writer, SIGKILL it while a checkpoint is half written; True if the kill hit a write."""
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(folder)])
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # one checkpoint complete, the next one being written
            done = list(folder.glob("step-*.pt")) if folder.is_dir() else []
            partial = list(folder.glob(".step-*.tmp")) if folder.is_dir() else []
            if done and partial and partial[0].stat().st_size > 0:
                break
            time.sleep(0.01)
        else:
            pytest.fail("the writer never got to a second checkpoint")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    return bool(list(folder.glob(".step-*.tmp")))


def test_sigkill_during_a_checkpoint_write_leaves_good_checkpoints(tmp_path: Path) -> None:
    folder = tmp_path / "ck"
    # the kill lands between two writes only if the write finished in the few ms after we looked
    assert any(_kill_during_a_write(folder) for _ in range(3)), "no kill interrupted a write"
    store = CheckpointStore(folder)
    for path in store.paths():  # every complete-looking checkpoint is really complete
        state = load_checkpoint(path)
        assert float(state["model"]["w"][0]) == float(state["progress"]["step"])
    store.clean_temporaries()
    assert not list(folder.glob(".step-*.tmp"))
    state, _ = store.load_latest()  # type: ignore[misc]
    assert state["progress"]["step"] >= 1
