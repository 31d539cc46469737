"""Number formatting shared by the console, JUnit and HTML reports.

Sizes are always MiB (2^20 bytes), the unit named in every column header that shows one.
"""

from __future__ import annotations

import math

MIB = 1 << 20


def num(value: float | None, digits: int = 3) -> str:
    """Compact scientific or fixed notation; ``—`` for None, ``nan``/``inf`` spelled out.

    Args:
        value: the number, or None.
        digits: significant digits (default 3).
    """
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
    """Milliseconds with 3 decimals; ``—`` for None.

    Args:
        value: the milliseconds, or None.
    """
    return "—" if value is None else f"{value:.3f}"


def mib(n: int) -> str:
    """``n`` bytes in MiB without the unit (the column header names it); ``—`` when unknown.

    Args:
        n: the size in bytes.
    """
    if n <= 0:
        return "—"
    value = n / MIB
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def pct(value: float | None) -> str:
    """A fraction as a percentage with 1 decimal: ``96.9%``; ``—`` for None or NaN.

    Args:
        value: the fraction, or None.
    """
    return "—" if value is None or math.isnan(value) else f"{100 * value:.1f}%"


def times(value: float | None) -> str:
    """A ratio such as a speed-up: ``19.58×``; ``—`` when there is none.

    Args:
        value: the ratio, or None.
    """
    return "—" if value is None or math.isnan(value) else f"{value:.2f}×"
