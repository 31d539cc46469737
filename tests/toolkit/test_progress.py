"""The one progress helper: silent when disabled, plain lines off a terminal, steps always timed."""

from __future__ import annotations

import io
import time

import pytest

from toolkit.progress import Progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_disabled_prints_nothing_but_records_timings(capsys: pytest.CaptureFixture[str]) -> None:
    stream = io.StringIO()
    with Progress("export", total=3, stream=stream) as p:
        with p.step("check", "resnet18"):
            time.sleep(0.01)
        with p.step("check"):
            pass
        p.advance("one")
        p.message("hello")
    assert stream.getvalue() == ""
    assert capsys.readouterr() == ("", "")
    assert set(p.timings) == {"check"}
    assert p.timings["check"] >= 0.01
    assert p.done == 1


def test_plain_mode_prints_steps_messages_and_rate_limited_bar() -> None:
    stream = io.StringIO()
    with Progress("validating", total=4, enabled=True, stream=stream, interval_s=3600) as p:
        with p.step("reference", "[phase] 12 images"):
            pass
        for i in range(4):
            p.advance(f"m.onnx batch {i}")
        p.message("[head] kept as written")
    lines = stream.getvalue().splitlines()
    assert lines[0] == "validating: reference ([phase] 12 images) ..."
    assert lines[1].startswith("validating: reference ([phase] 12 images): done in ")
    # The first advance prints, the next two fall inside the interval, the last always prints.
    assert lines[2:4] == ["[1/4] validating: m.onnx batch 0", "[4/4] validating: m.onnx batch 3"]
    assert lines[4] == "[head] kept as written"
    assert p.timings["reference"] >= 0.0


def test_step_records_time_when_the_block_raises() -> None:
    p = Progress("export")
    with pytest.raises(RuntimeError), p.step("export"):
        raise RuntimeError("boom")
    assert "export" in p.timings


def test_terminal_mode_keeps_bracketed_text() -> None:
    stream = _Terminal()
    with Progress("fine-tuning", total=2, enabled=True, stream=stream) as p:
        p.advance("[head]")
        p.message("epoch 1/2 [head] loss 0.1")
        p.reset("epoch 2/2 [full]", total=2, done=1)
        p.advance()
    assert "epoch 1/2 [head] loss 0.1" in stream.getvalue()
    assert p.done == 2
