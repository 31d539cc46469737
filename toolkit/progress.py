"""One progress helper for every stage: named, timed steps and a bar over a total.

``Progress`` draws a rich bar on a terminal and writes plain lines otherwise (at most one bar
line every ``interval_s`` seconds, plus the last). Disabled (the default), it prints nothing but
still records how long each named step took, so a library can report timings without talking.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any, TextIO

#: The Progress objects drawing a rich bar now (at most one).
_LIVE: list[Progress] = []


class Progress:
    """``with Progress("validating", total=12, enabled=True) as p: p.advance("m.onnx batch 8")``.

    Args:
        title: what the whole run is doing; prefixes every line.
        total: how many ``advance`` units make the run (None: no bar, only steps and messages).
        enabled: print anything at all (default False: silent, timings still recorded).
        stream: where to write (default ``sys.stderr``); a rich bar only when it is a terminal.
        interval_s: the least time, in seconds, between two plain bar lines (default 2).

    ``step(name)`` is a context manager that times a named step into ``timings[name]`` (seconds,
    summed over repeats). Text is printed as given: rich markup such as ``[phase]`` is escaped.
    """

    def __init__(
        self,
        title: str,
        *,
        total: int | None = None,
        enabled: bool = False,
        stream: TextIO | None = None,
        interval_s: float = 2.0,
    ) -> None:
        self.title = title
        self.total = total
        self.enabled = enabled
        self.stream = stream
        self.interval_s = interval_s
        self.done = 0
        self.timings: dict[str, float] = {}
        self._bar: Any = None
        self._task: Any = None
        self._last = -math.inf
        self._open = False

    # -- lifetime -------------------------------------------------------------------------------

    def __enter__(self) -> Progress:
        self._open = True
        self._start_bar()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Remove the bar (a rich bar is transient); lines already printed stay."""
        self._open = False
        if self._bar is not None:
            self._bar.stop()
            _LIVE.remove(self)
            self._bar = None
            self._task = None

    def _start_bar(self) -> None:
        # A rich bar needs a total, a terminal and no other bar already drawn (two live displays
        # on one terminal overwrite each other): a nested Progress prints lines above the outer bar.
        if self._bar is not None or not (self._open and self.enabled and self.total is not None):
            return
        if _LIVE or not self._is_terminal():
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        self._bar = RichProgress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(file=self._out()),
            transient=True,
        )
        self._bar.start()
        _LIVE.append(self)
        self._task = self._bar.add_task(self._describe(""), total=self.total, completed=self.done)

    # -- reporting ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def step(self, name: str, detail: str = "") -> Iterator[None]:
        """Time the block as step ``name``; when enabled, say when it starts and how long it took.

        Args:
            name: the step's name, its key in ``timings``.
            detail: said in parentheses after the name (default none).
        """
        text = f"{self.title}: {name}" + (f" ({detail})" if detail else "")
        start = time.perf_counter()
        if self.enabled:
            if self._bar is not None:
                self._bar.update(self._task, description=self._escape(text + " ..."))
            else:
                self._write(text + " ...")
        try:
            yield
        finally:
            seconds = time.perf_counter() - start
            self.timings[name] = self.timings.get(name, 0.0) + seconds
        if self.enabled:
            self.message(f"{text}: done in {seconds:.1f} s")
            if self._bar is not None:
                self._bar.update(self._task, description=self._describe(""))

    def advance(self, label: str = "", n: int = 1) -> None:
        """Move the bar on.

        Args:
            label: what was just done, or what runs next (default none).
            n: how many units to move (default 1).
        """
        self.done += n
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(self._task, advance=n, description=self._describe(label))
            return
        now = time.monotonic()
        finished = self.total is not None and self.done >= self.total
        if finished or now - self._last >= self.interval_s:
            self._last = now
            count = f"[{self.done}/{self.total}]" if self.total is not None else f"[{self.done}]"
            self._write(f"{count} {self._describe(label)}")

    def reset(self, title: str | None = None, *, total: int | None = None, done: int = 0) -> None:
        """Start a new round on the same bar (a new epoch): new title, total and count done.

        Args:
            title: the new title (default None: the title stays).
            total: the new total of ``advance`` units (default None: no total).
            done: how many units are already done (default 0).
        """
        if title is not None:
            self.title = title
        self.total = total
        self.done = done
        self._last = -math.inf
        if self._bar is not None:
            self._bar.reset(self._task, total=total, completed=done, description=self._describe(""))
        else:
            self._start_bar()

    def message(self, text: str) -> None:
        """Print one line as given (only when enabled); on a terminal it goes above the bar.

        Args:
            text: the line.
        """
        if self.enabled:
            self._write(text)

    # -- helpers --------------------------------------------------------------------------------

    def _out(self) -> TextIO:
        return self.stream if self.stream is not None else sys.stderr

    def _is_terminal(self) -> bool:
        isatty = getattr(self._out(), "isatty", None)
        return bool(isatty is not None and isatty())

    def _describe(self, label: str) -> str:
        text = f"{self.title}: {label}" if label else self.title
        return self._escape(text) if self._bar is not None else text

    @staticmethod
    def _escape(text: str) -> str:
        from rich.markup import escape

        return escape(text)

    def _write(self, text: str) -> None:
        if _LIVE and _LIVE[-1]._out() is self._out():
            _LIVE[-1]._bar.console.print(text, markup=False, highlight=False)  # above the outer bar
        else:
            print(text, file=self._out(), flush=True)
