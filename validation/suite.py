"""``validate`` and ``bench``: parity and latency of every artifact against the eager model."""

from __future__ import annotations

import contextlib
import datetime
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from toolkit.errors import HardwareUnavailableError, InvalidArgumentError
from toolkit.model_dir import LoadedModel, load_model_dir
from toolkit.records import Preprocessing
from validation import _env
from validation._progress import Progress
from validation.calibrate import calibrate
from validation.inputs import ParityInputs, load_inputs
from validation.latency import LatencySettings, LatencyStats, cold_start, measure
from validation.metrics import head_slices
from validation.parity import ParityResult, compare, run_batched
from validation.result import ArtifactResult, ValidationReport
from validation.runners.base import Runner
from validation.runners.eager import EagerRunner
from validation.runners.registry import open_runner
from validation.tolerance import PRESETS, Tolerance, resolve_preset, with_overrides

Artifact = str | os.PathLike[str] | Runner


def check_device(device: str) -> str:
    """``cpu`` or ``cuda[:N]``; ``cuda`` without a usable GPU raises ``HardwareUnavailableError`` at once."""
    if device == "cpu":
        return device
    if not device.startswith("cuda"):
        raise InvalidArgumentError(f"unknown device '{device}'", hint="use --device cpu or --device cuda")
    if not torch.cuda.is_available():
        raise HardwareUnavailableError(f"--device {device} was asked for but no CUDA GPU is available")
    return device


def check_batch_sizes(batch_sizes: Sequence[int]) -> list[int]:
    sizes = list(batch_sizes)
    if not sizes:
        raise InvalidArgumentError("no batch sizes given", hint="e.g. --batch-sizes 1,8")
    for bs in sizes:
        if isinstance(bs, bool) or not isinstance(bs, int) or bs <= 0:
            raise InvalidArgumentError(
                f"batch size {bs!r} is not a positive integer", hint="e.g. --batch-sizes 1,8"
            )
    return list(dict.fromkeys(sizes))


@contextlib.contextmanager
def fixed_threads(threads: int | None) -> Iterator[int]:
    """Fix PyTorch's intra-op threads for the duration (restored afterwards); yields the count."""
    before = torch.get_num_threads()
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads <= 0:
            raise InvalidArgumentError(f"threads must be a positive integer, got {threads!r}")
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def _artifact_name(artifact: Artifact, runner: Runner) -> tuple[str, str | None]:
    if isinstance(artifact, Runner) or str(artifact).startswith("eager:"):
        return runner.name, None
    return runner.name, str(artifact)


def _latency_batch(images: np.ndarray, bs: int) -> np.ndarray:
    return np.ascontiguousarray(np.resize(images, (bs, *images.shape[1:])), dtype=np.float32)


def validate(
    model_dir: str | os.PathLike[str] | LoadedModel,
    artifacts: Sequence[Artifact],
    *,
    data: str | os.PathLike[str] | np.ndarray = "random",
    samples: int = 32,
    batch_sizes: Sequence[int] = (1, 8),
    device: str = "cpu",
    preset: str | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    threads: int | None = None,
    seed: int = 0,
    parity: bool = True,
    latency: bool = True,
    head_latency: bool = True,
    latency_settings: LatencySettings | None = None,
    localise: bool = True,
    max_p99_ms: float | None = None,
    min_speedup: float | None = None,
    progress: bool = True,
) -> ValidationReport:
    """Prove each artifact matches the eager fp32 model and measure how fast it runs.

    ``data``: ``random`` | ``digits`` | a folder | a ``.npz`` | an array (default ``random``);
    ``samples`` inputs (default 32) are run at every batch size in ``batch_sizes`` (default 1, 8).
    ``preset``: ``fp32`` | ``fp16`` | ``int8`` | ``auto`` (default: from each artifact's
    precision); ``atol``/``rtol`` override it. ``threads``: PyTorch and ONNX Runtime intra-op
    threads (default: PyTorch's current setting). ``max_p99_ms`` (milliseconds) and
    ``min_speedup`` (× eager p50) are latency gates checked at every batch size. Returns the
    report; call ``report.raise_for_status()`` to turn failures into ``GateFailedError``.
    """
    wall_start = time.perf_counter()
    device = check_device(device)
    sizes = check_batch_sizes(batch_sizes)
    if not artifacts:
        raise InvalidArgumentError("no artifacts to validate", hint="rehead validate MODEL_DIR model.onnx")
    if preset is not None:
        resolve_preset(preset, "fp32")
    settings = latency_settings or LatencySettings()
    loaded = model_dir if isinstance(model_dir, LoadedModel) else load_model_dir(model_dir)
    config = loaded.config
    with fixed_threads(threads) as n_threads:
        inputs = load_inputs(
            data, config.preprocessing, samples=samples, seed=seed, class_names=config.class_names
        )
        slices = head_slices(config.num_classes, config.head.kept_indices, config.head.new_indices)
        reference_runner = EagerRunner(loaded.module, device=device, precision="fp32", name="eager-fp32")
        used: list[Runner] = [reference_runner]
        runners = [
            open_runner(a, device=device, threads=n_threads, module=loaded.module, prep=config.preprocessing)
            for a in artifacts
        ]
        used.extend(runners)
        inputs = _pixel_grid_if_baked(inputs, runners, config.preprocessing)
        per_artifact = (len(sizes) if parity else 0) + (len(sizes) if latency else 0)
        total = len(runners) * per_artifact + (len(sizes) if parity else 0) + (len(sizes) if latency else 0)
        results: list[ArtifactResult] = []
        tolerances: dict[tuple[str, str], Tolerance] = {}
        with Progress(total, enabled=progress) as bar:
            references: dict[int, dict[str, np.ndarray]] = {}
            if parity:
                for bs in sizes:
                    bar.step(f"eager reference, batch {bs}")
                    references[bs] = run_batched(reference_runner, inputs.images, bs)
                    bar.advance(f"eager reference batch {bs}")
            reference_latency: dict[int, LatencyStats] = {}
            if latency:
                for bs in sizes:
                    bar.step(f"eager latency, batch {bs}")
                    reference_latency[bs] = measure(
                        reference_runner, _latency_batch(inputs.images, bs), settings
                    )
                    bar.advance(f"eager latency batch {bs}")
            for artifact, runner in zip(artifacts, runners, strict=True):
                name, path = _artifact_name(artifact, runner)
                result = ArtifactResult(
                    name=name,
                    path=path,
                    kind=runner.kind,
                    precision=runner.precision,
                    device=device,
                    size_bytes=_size(path),
                    preset=None,
                )
                result.cold_start = cold_start(
                    runner, _latency_batch(inputs.images, runner.fixed_batch or sizes[0])
                )
                if parity:
                    key = resolve_preset(preset, runner.precision)
                    if (key, runner.precision) not in tolerances:
                        if key == "auto":
                            tolerances[key, runner.precision] = calibrate(
                                loaded.module,
                                inputs.images,
                                slices,
                                runner.precision,
                                device=device,
                                batch_size=max(sizes),
                                runners=used,
                            )
                        else:
                            tolerances[key, runner.precision] = PRESETS[key]
                    tol = with_overrides(tolerances[key, runner.precision], atol=atol, rtol=rtol)
                    result.preset = key
                    batches = []
                    for bs in sizes:
                        bar.step(f"parity {name}, batch {bs}")
                        produced = run_batched(runner, inputs.images, bs)
                        batches.append(
                            compare(references[bs], produced, slices, tol, batch_size=bs, seed=seed)
                        )
                        bar.advance(f"parity {name} batch {bs}")
                    failures = [f for b in batches for f in b.failures]
                    if inputs.nonfinite:
                        failures.insert(
                            0, f"parity inputs hold {inputs.nonfinite} NaN/Inf values ({inputs.source})"
                        )
                    result.parity = ParityResult(tol, batches, failures, input_nonfinite=inputs.nonfinite)
                    if failures and localise:
                        result.parity.localisation = _localise(loaded, runner, inputs.images, n_threads)
                if latency:
                    for bs in sizes:
                        bar.step(f"latency {name}, batch {bs}")
                        stats = measure(runner, _latency_batch(inputs.images, bs), settings)
                        result.latency[bs] = stats
                        ref = reference_latency.get(bs)
                        result.speedup[bs] = ref.p50_ms / stats.p50_ms if ref and stats.p50_ms > 0 else None
                        bar.advance(f"latency {name} batch {bs}")
                    result.gate_failures = _gates(result, reference_latency, max_p99_ms, min_speedup)
                results.append(result)
        head = None
        if latency and head_latency:
            from validation.head import capture_head_input
            from validation.head import head_latency as measure_head

            feature = capture_head_input(loaded.module, config.head, inputs.images[:1], device)
            head = measure_head(
                loaded.module, config.head, feature, sizes, device=device, settings=settings, runners=used
            )
        environment = _env.capture(threads=n_threads, device=device)
    for runner in runners:
        runner.close()
    model_s = sum(r.model_time_s + (r.load_s or 0.0) for r in used)
    wall_s = time.perf_counter() - wall_start
    return ValidationReport(
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        model={
            "path": str(loaded.path),
            "arch": config.arch,
            "num_classes": config.num_classes,
            "class_names": list(config.class_names),
            "head": config.head.to_json(),
            "kept_indices": list(config.head.kept_indices),
            "new_indices": list(config.head.new_indices),
            "input_shape": list(config.preprocessing.input_shape(1)[1:]),
        },
        environment=environment,
        settings={
            "batch_sizes": sizes,
            "device": device,
            "preset": preset,
            "atol": atol,
            "rtol": rtol,
            "threads": n_threads,
            "seed": seed,
            "latency": _settings_json(settings) if latency else None,
            "parity": parity,
            "reference": "eager fp32, TF32 off",
        },
        inputs={"source": inputs.source, "count": inputs.count, "nonfinite": inputs.nonfinite},
        reference_latency=reference_latency,
        head_latency=head,
        artifacts=results,
        gates={"max_p99_ms": max_p99_ms, "min_speedup": min_speedup},
        timing={"wall_s": wall_s, "model_s": model_s, "overhead_s": max(wall_s - model_s, 0.0)},
    )


def _pixel_grid_if_baked(inputs: ParityInputs, runners: list[Runner], prep: Preprocessing) -> ParityInputs:
    """With a baked-preprocessing artifact among ``runners``, every runner (and the reference)
    gets inputs on the uint8 pixel grid, so that all of them see exactly the same images."""
    from validation.runners.onnxrt import OrtRunner, on_pixel_grid

    baked = False
    for runner in runners:
        if isinstance(runner, OrtRunner):
            runner.load()
            baked = baked or runner.baked
    if not baked:
        return inputs
    import dataclasses

    grid = on_pixel_grid(inputs.images, prep)
    return dataclasses.replace(inputs, images=grid, source=f"{inputs.source} on the uint8 pixel grid")


def _size(path: str | None) -> int:
    from validation._artifact import artifact_size

    return artifact_size(Path(path)) if path else 0


def _settings_json(settings: LatencySettings) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(settings)


def _localise(loaded: LoadedModel, runner: Runner, images: np.ndarray, threads: int) -> dict[str, Any]:
    from validation.runners.onnxrt import OrtRunner

    if not isinstance(runner, OrtRunner) or runner.precision != "fp32":
        return {
            "status": "could not localise",
            "reason": "localisation supports fp32 ONNX artifacts only",
            "trace": [],
        }
    bs = runner.fixed_batch or min(2, len(images))
    sample = np.ascontiguousarray(np.resize(images, (bs, *images.shape[1:])), dtype=np.float32)
    from validation.localise import localise_onnx

    return localise_onnx(loaded.module, runner.path, sample, threads=threads)


def _gates(
    result: ArtifactResult,
    reference: dict[int, LatencyStats],
    max_p99_ms: float | None,
    min_speedup: float | None,
) -> list[str]:
    fails: list[str] = []
    for bs, stats in result.latency.items():
        if max_p99_ms is not None:
            if not stats.conclusive:
                fails.append(
                    f"latency gate p99 ≤ {max_p99_ms:g} ms at batch {bs} inconclusive: {stats.reason}"
                )
            elif stats.p99_ms > max_p99_ms:
                fails.append(f"p99 latency {stats.p99_ms:.3f} ms > {max_p99_ms:g} ms at batch {bs}")
        if min_speedup is not None:
            ref = reference.get(bs)
            speed = result.speedup.get(bs)
            if not stats.conclusive or ref is None or not ref.conclusive or speed is None:
                why = stats.reason or (ref.reason if ref else "no eager latency")
                fails.append(f"speed-up gate ≥ {min_speedup:g}× at batch {bs} inconclusive: {why}")
            elif speed < min_speedup:
                fails.append(
                    f"speed-up {speed:.2f}× < {min_speedup:g}× at batch {bs} "
                    f"(p50 {stats.p50_ms:.3f} ms vs eager {ref.p50_ms:.3f} ms)"
                )
    return fails


def bench(
    model_dir: str | os.PathLike[str] | LoadedModel,
    artifacts: Sequence[Artifact],
    *,
    batch_sizes: Sequence[int] = (1, 8),
    threads: int | None = None,
    duration_s: float = 2.0,
    warmup_s: float = 0.5,
    min_runs: int = 20,
    max_cv: float = 0.25,
    device: str = "cpu",
    head_latency: bool = True,
    progress: bool = True,
) -> ValidationReport:
    """Latency only (no parity): eager and every artifact at each batch size, plus the head.
    ``duration_s``/``warmup_s`` in seconds per measurement."""
    settings = LatencySettings(warmup_s=warmup_s, min_runs=min_runs, min_duration_s=duration_s, max_cv=max_cv)
    sizes = check_batch_sizes(batch_sizes)
    return validate(
        model_dir,
        artifacts,
        batch_sizes=sizes,
        threads=threads,
        device=device,
        parity=False,
        latency=True,
        head_latency=head_latency,
        latency_settings=settings,
        progress=progress,
        samples=max(sizes),
    )
