"""What tritonserver prints to its console while ``rehead serve`` runs it: noise dropped, the rest passed on.

Triton's log goes to a file (``Server.log_file``); what reaches the console is what the binary
writes outside its logger, which PyTriton copies to this process's stdout line by line. On a host
that serves on the CPU two kinds of line there say nothing wrong:

- ``Error: Failed to initialize NVML`` (and, without a log file, the CUDA/DCGM warnings beside
  it): the GPU metrics and CUDA memory pools find no driver, which is expected without a GPU;
- ``Signal (2) received.`` / ``Signal (15) received.``: tritonserver saying it got the SIGINT that
  PyTriton stops it with, or the SIGINT/SIGTERM a terminal's Ctrl-C or ``timeout`` sends the whole
  process group; ``rehead serve`` says ``stopped`` itself.

Everything else (``error: creating server: ...``, a stub's crash, an unknown line) is passed on
unchanged, so that a real failure is never hidden. GPU lines are noise only when serving on the CPU.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable

#: noise wherever the model runs (whole lines): the stop signal acknowledged
_ALWAYS = (re.compile(r"Signal \(\d+\) received\."),)
#: noise when the model runs on the CPU (whole lines): no GPU driver for metrics, memory pools or DCGM
_CPU_ONLY = (
    re.compile(r"Error: Failed to initialize NVML"),
    re.compile(r"[WIE]\d{4} [\d:.]+ +\d+ \S+\] \"?(Unable to allocate pinned system memory|CUDA memory pool disabled"
               r"|CudaDriverHelper has not been initialized|DCGM unable to start).*"),
)


def is_noise(line: str, *, cpu: bool) -> bool:
    """Whether one console line of tritonserver is known noise.

    Args:
        line: the line, without its newline.
        cpu: the model runs on the CPU, so GPU-driver complaints are noise too.
    """
    text = line.strip()
    patterns = _ALWAYS + _CPU_ONLY if cpu else _ALWAYS
    return any(p.fullmatch(text) for p in patterns)


class ConsoleFilter:
    """Collects tritonserver's console output, which arrives in chunks that need not end at a line,
    and hands each complete line that is not noise to ``sink`` (with its newline). ``close`` hands
    on an unfinished last line. ``dropped`` counts the lines left out."""

    def __init__(self, sink: Callable[[str], None], *, cpu: bool) -> None:
        self.sink = sink
        self.cpu = cpu
        self.dropped = 0
        self._pending = ""
        self._lock = threading.Lock()

    def __call__(self, chunk: str | bytes) -> None:
        text = chunk.decode("utf-8", errors="replace") if isinstance(chunk, bytes) else chunk
        with self._lock:
            self._pending += text
            *lines, self._pending = self._pending.split("\n")
            for line in lines:
                self._emit(line + "\n")

    def close(self) -> None:
        with self._lock:
            rest, self._pending = self._pending, ""
            if rest:
                self._emit(rest + "\n")

    def _emit(self, line: str) -> None:
        if is_noise(line, cpu=self.cpu):
            self.dropped += 1
            return
        self.sink(line)


__all__ = ["ConsoleFilter", "is_noise"]
