"""Number formatting shared by the console, JUnit and HTML reports."""

from __future__ import annotations

import math


def num(value: float | None, digits: int = 3) -> str:
    """Compact scientific or fixed notation; ``—`` for None, ``nan``/``inf`` spelled out."""
    if value is None:
        return "—"
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if value == 0:
        return "0"
    if abs(value) >= 1e4 or abs(value) < 1e-2:
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}g}"


def ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def size(n: int) -> str:
    if n <= 0:
        return "—"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def pct(value: float | None) -> str:
    return "—" if value is None or math.isnan(value) else f"{100 * value:.1f}%"
