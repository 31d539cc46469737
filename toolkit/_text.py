"""Short texts for messages: a long list shows its first items and a count, never all of them."""

from __future__ import annotations

from collections.abc import Iterable


def listing(items: Iterable[object], *, limit: int = 5, sep: str = ", ") -> str:
    """``a, b, c, ... (1000 in all)``: the first ``limit`` items, then how many there are.

    Args:
        items: the values, each written with ``str``.
        limit: how many items are written before the count (default 5).
        sep: the separator between items (default ``", "``).
    """
    values = [str(i) for i in items]
    if len(values) <= limit:
        return sep.join(values)
    return f"{sep.join(values[:limit])}{sep}... ({len(values)} in all)"
