"""Progress over artifacts × batch sizes: a rich bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any


class Progress:
    """``with Progress(total, enabled=True) as p: p.advance("parity m.onnx batch 8")``.

    On a TTY stderr it draws a rich progress bar; otherwise it prints one line per step, at most
    every ``interval_s`` seconds (default 2) plus the last. ``enabled=False`` prints nothing.
    """

    def __init__(
        self, total: int, *, enabled: bool = True, title: str = "validating", interval_s: float = 2.0
    ) -> None:
        self.total = max(total, 1)
        self.enabled = enabled
        self.title = title
        self.interval_s = interval_s
        self.done = 0
        self._bar: Any = None
        self._task: Any = None
        self._last = 0.0

    def __enter__(self) -> Progress:
        if self.enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task(self.title, total=self.total)
        return self

    def step(self, label: str) -> None:
        """Announce what runs next (shown on the bar)."""
        if self._bar is not None:
            self._bar.update(self._task, description=f"{self.title}: {label}")

    def advance(self, label: str = "") -> None:
        self.done += 1
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(self._task, advance=1)
            return
        now = time.monotonic()
        if now - self._last >= self.interval_s or self.done >= self.total:
            self._last = now
            print(f"[{self.done}/{self.total}] {self.title}: {label}", file=sys.stderr, flush=True)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._bar is not None:
            self._bar.__exit__(exc_type, exc, tb)
