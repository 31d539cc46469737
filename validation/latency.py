"""Latency: warm-up by time, then timed runs until both a minimum count and a minimum duration.

Each timed run covers ``Runner.infer`` only (inputs already staged). CPU and synchronous
backends are timed with ``time.perf_counter``; asynchronous CUDA runners with CUDA events
and a synchronisation after every run; ONNX Runtime on CUDA with ``time.perf_counter`` around a
synchronous run on device buffers (IO binding). Each measurement records which (``timer``,
described by ``TIMERS``), and the reports say it. A run whose coefficient of variation (std / mean)
exceeds ``max_cv`` is ``inconclusive``: it never counts as a pass.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np

from converters.runners.base import Runner
from validation.settings import LatencySettings as LatencySettings  # declared with the run's options

#: ``LatencyStats.timer`` -> what it means, as the reports say it
TIMERS = {
    "perf_counter": "host clock around a synchronous call, inputs and outputs on the host",
    "perf_counter+iobinding": "host clock around a synchronous run on device buffers (IO binding)",
    "cuda-events": "CUDA events on the runner's stream, device buffers",
}


@dataclasses.dataclass(frozen=True)
class LatencyStats:
    """Milliseconds per batch of ``batch_size``; ``throughput`` in samples per second.

    ``status``: ``ok`` or ``inconclusive`` (then ``reason`` says why); ``timer``: how the runs
    were timed (a key of ``TIMERS``); ``samples_ms`` holds every timed run for the report's
    distribution plots.
    """

    batch_size: int
    runs: int
    duration_s: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    cv: float
    min_ms: float
    max_ms: float
    throughput: float
    status: str
    reason: str
    timer: str
    samples_ms: tuple[float, ...] = ()

    @property
    def conclusive(self) -> bool:
        return self.status == "ok"

    def to_json(self, *, samples: bool = False) -> dict[str, Any]:
        """The record as JSON.

        Args:
            samples: include every timed run (``samples_ms``); default False: None in its place.
        """
        data = dataclasses.asdict(self)
        data["samples_ms"] = list(self.samples_ms) if samples else None
        return data


def summarize(
    times_ms: list[float], *, batch_size: int, duration_s: float, max_cv: float, timer: str
) -> LatencyStats:
    """The statistics of one measurement; inconclusive when its coefficient of variation exceeds ``max_cv``.

    Args:
        times_ms: the timed runs, in milliseconds.
        batch_size: the batch size timed.
        duration_s: the seconds the timed runs took.
        max_cv: the largest coefficient of variation of a conclusive measurement.
        timer: how the runs were timed (a key of ``TIMERS``).
    """
    arr = np.asarray(times_ms, dtype=np.float64)
    mean = float(arr.mean())
    std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    cv = std / mean if mean > 0 else float("inf")
    p50, p90, p95, p99 = (float(v) for v in np.percentile(arr, [50, 90, 95, 99]))
    inconclusive = cv > max_cv
    reason = (
        f"coefficient of variation {cv:.2f} > {max_cv:.2f} (std {std:.3f} ms over mean {mean:.3f} ms): "
        "the machine was too noisy to trust these numbers"
        if inconclusive
        else ""
    )
    return LatencyStats(
        batch_size=batch_size,
        runs=int(arr.size),
        duration_s=duration_s,
        p50_ms=p50,
        p90_ms=p90,
        p95_ms=p95,
        p99_ms=p99,
        mean_ms=mean,
        std_ms=std,
        cv=cv,
        min_ms=float(arr.min()),
        max_ms=float(arr.max()),
        throughput=batch_size * 1000.0 / mean if mean > 0 else 0.0,
        status="inconclusive" if inconclusive else "ok",
        reason=reason,
        timer=timer,
        samples_ms=tuple(round(t, 6) for t in times_ms),
    )


def measure(runner: Runner, batch: np.ndarray, settings: LatencySettings = LatencySettings()) -> LatencyStats:
    """Time ``runner.infer`` on ``batch`` (outputs not fetched); adds the loop's wall time to
    ``runner.model_time_s``.

    Args:
        runner: the runner to time.
        batch: the batch, prepared once.
        settings: warm-up, run counts, duration and noise bound (default ``LatencySettings()``).
    """
    runner.load()
    prepared = runner.prepare(batch)
    use_events = runner.asynchronous and runner.device.startswith("cuda")
    loop_start = time.perf_counter()
    try:
        warm_end = loop_start + settings.warmup_s
        while True:
            runner.infer(prepared)
            runner.synchronize()
            if time.perf_counter() >= warm_end:
                break
        times: list[float] = []
        start = time.perf_counter()
        if use_events:
            import torch

            begin_evt = torch.cuda.Event(enable_timing=True)
            end_evt = torch.cuda.Event(enable_timing=True)
        while True:
            if use_events:
                # on the stream the runner enqueues on (TensorRT uses its own): events on another
                # stream would time nothing
                begin_evt.record(runner.cuda_stream)
                runner.infer(prepared)
                end_evt.record(runner.cuda_stream)
                end_evt.synchronize()
                times.append(float(begin_evt.elapsed_time(end_evt)))
            else:
                t0 = time.perf_counter()
                runner.infer(prepared)
                runner.synchronize()
                times.append((time.perf_counter() - t0) * 1000.0)
            elapsed = time.perf_counter() - start
            if len(times) >= settings.max_runs or (
                len(times) >= settings.min_runs and elapsed >= settings.min_duration_s
            ):
                break
    finally:
        runner.model_time_s += time.perf_counter() - loop_start
    return summarize(
        times,
        batch_size=int(batch.shape[0]),
        duration_s=elapsed,
        max_cv=settings.max_cv,
        timer="cuda-events" if use_events else runner.host_timer,
    )


def cold_start(runner: Runner, batch: np.ndarray) -> dict[str, float]:
    """Load + first run of a fresh runner, in milliseconds: ``load_ms``, ``first_run_ms`` and
    ``total_ms`` = load_ms + first_run_ms.

    ``load_ms`` is the runner's own first load (``Runner.load`` returns it however often it is
    called): a runner that an earlier step already loaded still reports what loading cost, so the
    total is their sum, never the wall time of this call.

    Args:
        runner: a fresh runner.
        batch: the batch of the first run.
    """
    load_s = runner.load()
    t1 = time.perf_counter()
    runner.run(batch)
    first = time.perf_counter() - t1
    return {
        "load_ms": load_s * 1000.0,
        "first_run_ms": first * 1000.0,
        "total_ms": (load_s + first) * 1000.0,
    }
