"""Latency: statistics, stopping rules, and noise reported as inconclusive (never a pass)."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from converters.onnx.runner import OrtRunner
from converters.runners.base import Runner
from converters.runners.eager import EagerRunner
from toolkit.errors import GateFailedError, InvalidArgumentError
from validation.latency import LatencySettings, measure, summarize
from validation.suite import validate


def test_summarize_percentiles_and_cv() -> None:
    times = [float(t) for t in range(1, 101)]  # 1..100 ms
    s = summarize(times, batch_size=4, duration_s=1.0, max_cv=1.0, timer="perf_counter")
    assert s.p50_ms == pytest.approx(50.5)
    assert s.p99_ms == pytest.approx(99.01)
    assert s.mean_ms == pytest.approx(50.5)
    assert s.cv == pytest.approx(np.std(times, ddof=1) / 50.5)
    assert s.throughput == pytest.approx(4 * 1000 / 50.5)
    assert s.conclusive
    noisy = summarize(times, batch_size=4, duration_s=1.0, max_cv=0.1, timer="perf_counter")
    assert noisy.status == "inconclusive" and "coefficient of variation 0.57 > 0.10" in noisy.reason


def test_measure_stops_after_min_runs_and_min_duration() -> None:
    runner = EagerRunner(torch.nn.Linear(16, 4).eval())
    batch = np.zeros((2, 16), dtype=np.float32)
    stats = measure(runner, batch, LatencySettings(warmup_s=0.02, min_runs=7, min_duration_s=0.15, max_cv=100))
    assert stats.runs >= 7 and stats.duration_s >= 0.15
    assert len(stats.samples_ms) == stats.runs
    assert stats.min_ms <= stats.p50_ms <= stats.p99_ms <= stats.max_ms
    assert runner.model_time_s >= 0.15


def test_settings_reject_nonsense() -> None:
    with pytest.raises(InvalidArgumentError):
        LatencySettings(min_runs=0)
    with pytest.raises(InvalidArgumentError):
        LatencySettings(max_cv=0)


class NoisyRunner(Runner):
    """A real runner wrapped so that each run also sleeps a random 0-8 ms: a noisy machine."""

    def __init__(self, inner: Runner, seed: int = 0) -> None:
        super().__init__()
        self.inner = inner
        self.name = f"noisy({inner.name})"
        self.kind = inner.kind
        self.precision = inner.precision
        self.rng = random.Random(seed)

    def _load(self) -> None:
        self.inner.load()
        self.fixed_batch = self.inner.fixed_batch

    def prepare(self, batch: np.ndarray) -> Any:
        return self.inner.prepare(batch)

    def infer(self, prepared: Any) -> Any:
        time.sleep(self.rng.choice([0.0, 0.0, 0.0, 0.008]) + self.rng.uniform(0, 0.002))
        return self.inner.infer(prepared)

    def fetch(self, raw: Any) -> dict[str, np.ndarray]:
        return self.inner.fetch(raw)


def test_noisy_latency_is_inconclusive_never_a_pass(digits_model_dir: Path, onnx_fp32: Path) -> None:
    noisy = NoisyRunner(OrtRunner(onnx_fp32, threads=1))
    settings = LatencySettings(warmup_s=0.05, min_runs=30, min_duration_s=0.2, max_cv=0.25)
    stats = measure(noisy, np.zeros((1, 3, 32, 32), dtype=np.float32), settings)
    assert stats.status == "inconclusive", stats
    assert stats.cv > 0.25

    report = validate(
        digits_model_dir, [NoisyRunner(OrtRunner(onnx_fp32, threads=1))], samples=4, batch_sizes=(1,),
        latency_settings=settings, head_latency=False, max_p99_ms=10_000.0, progress=False,
    )
    art = report.artifacts[0]
    assert art.parity_status == "pass"  # the wrapper changes timing, not values
    assert art.latency_status == "inconclusive" and art.status == "inconclusive"
    assert report.status != "pass"
    assert art.gate_failures and all(not f.conclusive for f in art.gate_failures)
    assert any(f.kind == "latency" and f.metric == "p99_ms" and f.batch_size == 1 for f in art.gate_failures)
    assert art.latency_reason(1)  # why, in words
    with pytest.raises(GateFailedError, match="inconclusive"):
        report.raise_for_status()


def test_latency_gates(digits_model_dir: Path, onnx_fp32: Path) -> None:
    settings = LatencySettings(warmup_s=0.05, min_runs=5, min_duration_s=0.2, max_cv=100.0)
    report = validate(
        digits_model_dir, [onnx_fp32], samples=4, batch_sizes=(1,), latency_settings=settings,
        max_p99_ms=1e-6, min_speedup=1e6, progress=False,
    )
    art = report.artifacts[0]
    assert art.status == "fail" and art.latency_status == "fail"
    assert any(
        f.kind == "latency" and f.metric == "p99_ms" and f.conclusive and f.bound == 1e-6
        and f.value is not None and f.value > 1e-6
        for f in art.gate_failures
    )
    assert any(
        f.kind == "speedup" and f.conclusive and f.bound == 1e6 and f.value is not None and f.value < 1e6
        for f in art.gate_failures
    )
    assert all(f.batch_size == 1 and f.artifact == art.name for f in art.gate_failures)
    assert art.speedup[1] is not None and art.speedup[1] > 0
    assert art.cold_start is not None and art.cold_start["load_ms"] > 0
    head = report.head_latency
    assert head is not None and head["module"] == "fc"
    assert head["shapes"]["old_head"] == "linear 512x7"
    assert head["batches"][0]["new_head"]["runs"] >= 5
    assert report.timing["model_s"] > 0 and report.timing["wall_s"] >= report.timing["model_s"]


# --- which clock timed each runner: recorded per measurement and said in every report ----------------


def test_cpu_runs_record_host_timing_and_every_report_says_so(
    digits_model_dir: Path, onnx_fp32: Path, tmp_path: Path
) -> None:
    from validation.latency import TIMERS
    from validation.report import write_reports
    from validation.report.console import print_summary

    fast = LatencySettings(warmup_s=0.0, min_runs=3, min_duration_s=0.0, max_cv=100)
    report = validate(
        digits_model_dir, [onnx_fp32], parity=False, batch_sizes=(1,), samples=2, latency_settings=fast,
        head_latency=False, progress=False,
    )
    timers = {s.timer for s in report.reference_latency.values()} | {
        s.timer for a in report.artifacts for s in a.latency.values()
    }
    assert timers == {"perf_counter"}
    host = TIMERS["perf_counter"]
    assert "host clock" in host
    assert report.to_json()["artifacts"][0]["latency"]["1"]["timer"] == "perf_counter"
    write_reports(report, report_dir=tmp_path / "r")
    assert host in (tmp_path / "r" / "report.html").read_text()
    assert host in (tmp_path / "r" / "junit.xml").read_text()
    from rich.console import Console

    console = Console(record=True, width=300)
    print_summary(report, console)
    assert f"latency timed by: {host} (eager-fp32, {onnx_fp32.name})" in console.export_text()


def test_ort_on_cuda_is_timed_on_device_buffers() -> None:
    # constructing a runner touches no GPU: the clock it will be timed with is known up front
    assert OrtRunner("model.onnx", device="cuda").host_timer == "perf_counter+iobinding"
    assert OrtRunner("model.onnx", device="cuda:1").host_timer == "perf_counter+iobinding"
    assert OrtRunner("model.onnx", device="cpu").host_timer == "perf_counter"
