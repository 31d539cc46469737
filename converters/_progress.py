"""Progress for the steps of an export: a rich spinner on a terminal, plain lines otherwise."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator


class Steps:
    """Report named steps (``export``, ``check``, ``optimise``, ``quantise``) as they run.

    With ``enabled`` False nothing is printed. On a TTY each step shows a rich status spinner;
    otherwise one line per step start and end goes to stderr, with its duration in seconds.
    """

    def __init__(self, enabled: bool = True, *, label: str = "export") -> None:
        self.enabled = enabled
        self.label = label
        self.timings: dict[str, float] = {}

    @contextlib.contextmanager
    def step(self, name: str, detail: str = "") -> Iterator[None]:
        start = time.perf_counter()
        text = f"{self.label}: {name}" + (f" ({detail})" if detail else "")
        if not self.enabled:
            yield
        elif sys.stderr.isatty():
            from rich.console import Console

            with Console(stderr=True).status(text + " ..."):
                yield
        else:
            print(text + " ...", file=sys.stderr, flush=True)
            yield
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start
        if self.enabled:
            print(f"{text}: done in {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
