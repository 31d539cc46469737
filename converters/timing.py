"""Side-by-side timing: several callables alternated within each round, so that a slow spell of a
shared machine hits all of them alike (the order rotates every round).

Used by the accuracy-aware INT8 search (each variant against the next) and by the benchmarks;
``validation.latency`` is the measurement of record for one artifact at a time.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping


def interleaved_samples(
    calls: Mapping[str, Callable[[], object]], rounds: int, per_round: int, *, warmup: int = 2
) -> dict[str, list[list[float]]]:
    """Milliseconds of every call, per callable and per round: ``result[name][round]`` holds
    ``per_round`` timings.

    Args:
        calls: the callables to time, by name.
        rounds: how many rounds (the order rotates every round).
        per_round: timed calls of each callable per round.
        warmup: untimed calls of each callable first, outside the rounds (default 2).
    """
    names = list(calls)
    for fn in calls.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[list[float]]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            fn = calls[name]
            timings = []
            for _ in range(per_round):
                start = time.perf_counter()
                fn()
                timings.append((time.perf_counter() - start) * 1e3)
            samples[name].append(timings)
    return samples


def interleaved_ms(calls: Mapping[str, Callable[[], object]], rounds: int = 7, per_round: int = 5) -> dict[str, float]:
    """Median milliseconds per call of each callable, timed by ``interleaved_samples``.

    Args:
        calls: the callables to time, by name.
        rounds: how many rounds (default 7).
        per_round: timed calls of each callable per round (default 5).
    """
    samples = interleaved_samples(calls, rounds, per_round)
    return {n: float(statistics.median(t for part in rounds_ for t in part)) for n, rounds_ in samples.items()}
