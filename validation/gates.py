"""Latency gates: p99 and speed-up bounds at every batch size, as ``Failure`` records.

A gate that a noisy measurement cannot decide is a failure with ``conclusive`` False: never a pass.
"""

from __future__ import annotations

from converters.compare import Failure
from validation.latency import LatencyStats
from validation.result import ArtifactResult


def gates(
    result: ArtifactResult,
    reference: dict[int, LatencyStats],
    max_p99_ms: float | None,
    min_speedup: float | None,
) -> list[Failure]:
    """The latency gates at every batch size: failed (``conclusive``) or undecidable (not).

    Args:
        result: the artifact's result, its latency measured.
        reference: eager's latency per batch size (the speed-up's denominator).
        max_p99_ms: the p99 latency gate in milliseconds, or None.
        min_speedup: the speed-up gate (× eager p50), or None.
    """
    fails: list[Failure] = []
    for bs, stats in result.latency.items():
        if max_p99_ms is not None:
            p99 = Failure(
                kind="latency",
                metric="p99_ms",
                message="",
                artifact=result.name,
                batch_size=bs,
                value=stats.p99_ms,
                bound=max_p99_ms,
            )
            if not stats.conclusive:
                fails.append(
                    p99.replace(
                        conclusive=False,
                        message=f"latency gate p99 ≤ {max_p99_ms:g} ms at batch {bs} inconclusive: {stats.reason}",
                    )
                )
            elif stats.p99_ms > max_p99_ms:
                fails.append(
                    p99.replace(message=f"p99 latency {stats.p99_ms:.3f} ms > {max_p99_ms:g} ms at batch {bs}")
                )
        if min_speedup is not None:
            ref = reference.get(bs)
            speed = result.speedup.get(bs)
            gate = Failure(
                kind="speedup",
                metric="speedup",
                message="",
                artifact=result.name,
                batch_size=bs,
                value=speed,
                bound=min_speedup,
            )
            if not stats.conclusive or ref is None or not ref.conclusive or speed is None:
                why = stats.reason or (ref.reason if ref else "no eager latency")
                fails.append(
                    gate.replace(
                        conclusive=False, message=f"speed-up gate ≥ {min_speedup:g}× at batch {bs} inconclusive: {why}"
                    )
                )
            elif speed < min_speedup:
                fails.append(
                    gate.replace(
                        message=f"speed-up {speed:.2f}× < {min_speedup:g}× at batch {bs} "
                        f"(p50 {stats.p50_ms:.3f} ms vs eager {ref.p50_ms:.3f} ms)"
                    )
                )
    return fails
