"""The machine description every benchmark result carries (CPU, cores, load, library versions)."""

from __future__ import annotations

import os
from typing import Any


def machine_description(*, threads: int | None = None, device: str = "cpu") -> dict[str, Any]:
    """validation's environment capture plus the load average at the time of the run."""
    from validation._env import capture

    env = capture(threads=threads, device=device)
    try:
        env["loadavg_1m_5m_15m"] = list(os.getloadavg())
    except OSError:
        env["loadavg_1m_5m_15m"] = None
    return env
