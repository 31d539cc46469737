"""``toolkit._atomic.publish``: an output and its companions staged together, published together,
companions first and the output last; on any failure nothing of the run is left."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from toolkit import _atomic
from toolkit.errors import DiskFullError, InternalError, OutputExistsError


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _stage_engine(stage: Path, tag: bytes) -> None:
    (stage / "m.engine").write_bytes(b"plan " + tag)
    (stage / "m.engine.json").write_bytes(b"sidecar " + tag)
    (stage / "m.engine.trtexec.sh").write_bytes(b"script " + tag)


def test_clean_publish_moves_the_output_and_its_companions(tmp_path: Path) -> None:
    out = tmp_path / "m.engine"
    with _atomic.publish(out, overwrite=False) as stage:
        assert stage.parent == tmp_path and stage.name.startswith(".m.engine.") and stage.name.endswith(".partial")
        _stage_engine(stage, b"1")
        (stage / "scratch").mkdir()  # sub-folders are scratch space: never published
        (stage / "scratch" / "work.bin").write_bytes(b"x")
    assert _tree(tmp_path) == {"m.engine": b"plan 1", "m.engine.json": b"sidecar 1", "m.engine.trtexec.sh": b"script 1"}
    assert not (tmp_path / "scratch").exists() and _leftovers(out) == []


def test_companions_are_in_place_before_the_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "m.onnx"
    seen: list[list[str]] = []
    real = _atomic._place_main

    def spy(staged: Path, target: Path, *, overwrite: bool) -> None:
        seen.append(sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")))
        real(staged, target, overwrite=overwrite)

    monkeypatch.setattr(_atomic, "_place_main", spy)
    with _atomic.publish(out, overwrite=False) as stage:
        (stage / "m.onnx").write_bytes(b"graph")
        (stage / "m.onnx.1-2.abcd.data").write_bytes(b"weights")
    assert seen == [["m.onnx.1-2.abcd.data"]]  # the data file was there, the model not yet
    assert _tree(tmp_path) == {"m.onnx": b"graph", "m.onnx.1-2.abcd.data": b"weights"}


def test_a_failure_in_the_block_writes_nothing_and_keeps_the_previous_artifact(tmp_path: Path) -> None:
    out = tmp_path / "m.engine"
    with _atomic.publish(out, overwrite=False) as stage:
        _stage_engine(stage, b"old")
    before = _tree(tmp_path)
    with pytest.raises(RuntimeError, match="build failed"), _atomic.publish(out, overwrite=True) as stage:
        _stage_engine(stage, b"new")
        raise RuntimeError("build failed")
    assert _tree(tmp_path) == before and _leftovers(out) == []
    fresh = tmp_path / "fresh" / "n.engine"
    with pytest.raises(RuntimeError), _atomic.publish(fresh, overwrite=False) as stage:
        (stage / "n.engine").write_bytes(b"half")
        raise RuntimeError("killed")
    assert list(fresh.parent.iterdir()) == []


def test_a_failure_while_publishing_takes_the_companions_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "m.engine"
    with _atomic.publish(out, overwrite=False) as stage:
        _stage_engine(stage, b"old")
    before = _tree(tmp_path)

    def fail(staged: Path, target: Path, *, overwrite: bool) -> None:
        raise OSError(errno.EIO, "input/output error")

    monkeypatch.setattr(_atomic, "_place_main", fail)
    with pytest.raises(OSError, match="input/output"), _atomic.publish(out, overwrite=True) as stage:
        _stage_engine(stage, b"new")
        (stage / "m.engine.extra").write_bytes(b"new companion")
    assert _tree(tmp_path) == before and _leftovers(out) == []  # replaced sidecars restored, new one removed


def test_no_clobber_without_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "m.engine"
    out.write_bytes(b"previous")
    ran = False
    with pytest.raises(OutputExistsError, match="already exists") as caught, _atomic.publish(out, overwrite=False):
        ran = True
    assert not ran and caught.value.param == "overwrite"  # refused before any work
    out.unlink()
    (tmp_path / "m.engine.json").write_bytes(b"someone's")
    with pytest.raises(OutputExistsError, match=r"m\.engine\.json"), _atomic.publish(out, overwrite=False) as stage:
        _stage_engine(stage, b"new")
    assert _tree(tmp_path) == {"m.engine.json": b"someone's"} and _leftovers(out) == []  # checked before any move
    with _atomic.publish(out, overwrite=True) as stage:
        _stage_engine(stage, b"new")
    assert _tree(tmp_path)["m.engine.json"] == b"sidecar new"


def test_an_output_that_appears_meanwhile_is_not_clobbered(tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    with pytest.raises(OutputExistsError, match="appeared"), _atomic.publish(out, overwrite=False) as stage:
        (stage / "m.onnx").write_bytes(b"mine")
        (stage / "m.onnx.1-2.abcd.data").write_bytes(b"my weights")
        out.write_bytes(b"another run's")
    assert _tree(tmp_path) == {"m.onnx": b"another run's"} and _leftovers(out) == []


def test_owned_names_are_replaced_or_removed_with_the_output(tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    (tmp_path / "m.onnx.int8.json").write_bytes(b"a gone model's decision")
    with _atomic.publish(out, overwrite=False, owned=["m.onnx.int8.json"]) as stage:
        (stage / "m.onnx").write_bytes(b"searched")
        (stage / "m.onnx.int8.json").write_bytes(b"decision")
    assert _tree(tmp_path) == {"m.onnx": b"searched", "m.onnx.int8.json": b"decision"}
    (tmp_path / "m.onnx.old.data").write_bytes(b"previous weights")
    with _atomic.publish(out, overwrite=True, owned=["m.onnx.int8.json", "m.onnx.old.data"]) as stage:
        (stage / "m.onnx").write_bytes(b"plain")
    assert _tree(tmp_path) == {"m.onnx": b"plain"}  # no decision, no previous data: not this output's


def test_nothing_staged_is_our_bug_and_publishes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "m.pt2"
    with pytest.raises(InternalError, match="nothing was staged"), _atomic.publish(out, overwrite=False) as stage:
        (stage / "m.pt2.json").write_bytes(b"a sidecar alone")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InternalError, match="plain file name"), _atomic.publish(out, owned=["../x"]):
        pass
    assert list(tmp_path.iterdir()) == []


def test_running_out_of_room_is_a_disk_full_error(tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    with pytest.raises(DiskFullError, match="nothing was published"), _atomic.publish(out, overwrite=False) as stage:
        (stage / "m.onnx").write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert list(tmp_path.iterdir()) == []
