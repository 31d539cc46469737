"""Progress of a fine-tuning run: a rich bar per epoch in a terminal, plain lines otherwise.

The trainer talks to a ``Reporter``; ``auto_reporter()`` picks ``RichReporter`` when stderr is
a terminal and ``PlainReporter`` (one line every ``interval`` seconds and one per epoch) when
it is not; ``NullReporter`` stays silent.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any, Protocol, TextIO


class Reporter(Protocol):
    def start_epoch(self, epoch: int, epochs: int, phase: str, steps: int, done: int) -> None: ...

    def step(self, done: int, loss: float, top1: float, images_per_s: float) -> None: ...

    def end_epoch(self, record: Mapping[str, Any]) -> None: ...

    def message(self, text: str) -> None: ...

    def close(self) -> None: ...


def epoch_line(record: Mapping[str, Any]) -> str:
    """One line summarising an epoch record of the metrics history."""
    val = record.get("val_top1")
    return (
        f"epoch {record['epoch'] + 1}/{record['epochs']} [{record['phase']}] "
        f"loss {record['train_loss']:.4f} top-1 {record['train_top1']:.3f} | "
        f"val loss {record['val_loss']:.4f} val top-1 {val:.3f} | "
        f"{record['images_per_s']:.0f} img/s, {record['seconds']:.1f} s"
    )


class NullReporter:
    def start_epoch(self, epoch: int, epochs: int, phase: str, steps: int, done: int) -> None:
        pass

    def step(self, done: int, loss: float, top1: float, images_per_s: float) -> None:
        pass

    def end_epoch(self, record: Mapping[str, Any]) -> None:
        pass

    def message(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


class PlainReporter:
    """Plain lines on ``stream`` (default stderr): progress every ``interval`` seconds, each epoch."""

    def __init__(self, stream: TextIO | None = None, *, interval: float = 10.0) -> None:
        self.stream = stream or sys.stderr
        self.interval = interval
        self._last = 0.0
        self._label = ""
        self._steps = 0

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def start_epoch(self, epoch: int, epochs: int, phase: str, steps: int, done: int) -> None:
        self._label = f"epoch {epoch + 1}/{epochs} [{phase}]"
        self._steps = steps
        self._last = time.monotonic()

    def step(self, done: int, loss: float, top1: float, images_per_s: float) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._print(
                f"{self._label} step {done}/{self._steps}: loss {loss:.4f} top-1 {top1:.3f} "
                f"{images_per_s:.0f} img/s"
            )

    def end_epoch(self, record: Mapping[str, Any]) -> None:
        self._print(epoch_line(record))

    def message(self, text: str) -> None:
        self._print(text)

    def close(self) -> None:
        pass


class RichReporter:
    """A rich progress bar per epoch on stderr, with loss, top-1 and images/s."""

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.console = console or Console(stderr=True)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "loss {task.fields[loss]:.4f} top-1 {task.fields[top1]:.3f} {task.fields[ips]:.0f} img/s"
            ),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self.progress.start()
        self.task: Any = None

    def start_epoch(self, epoch: int, epochs: int, phase: str, steps: int, done: int) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
        from rich.markup import escape

        self.task = self.progress.add_task(
            escape(f"epoch {epoch + 1}/{epochs} [{phase}]"), total=steps, completed=done, loss=0.0, top1=0.0, ips=0.0
        )

    def step(self, done: int, loss: float, top1: float, images_per_s: float) -> None:
        self.progress.update(self.task, completed=done, loss=loss, top1=top1, ips=images_per_s)

    def end_epoch(self, record: Mapping[str, Any]) -> None:
        self.progress.console.print(epoch_line(record), markup=False, highlight=False)

    def message(self, text: str) -> None:
        self.progress.console.print(text, markup=False, highlight=False)

    def close(self) -> None:
        self.progress.stop()


def auto_reporter() -> Reporter:
    """``RichReporter`` when stderr is a terminal, ``PlainReporter`` otherwise."""
    isatty = getattr(sys.stderr, "isatty", None)
    if isatty is not None and isatty():
        return RichReporter()
    return PlainReporter()
