"""``validate`` and ``bench``: parity and latency of every artifact against the eager model.

The run reads as the pipeline does, one stage a function:

1. ``_open``: check the settings, open every runner (closed on every path), check lineage.
2. ``_reference``: the eager fp32 outputs, once, in large batches, cached on disk.
3. ``_reference_latency``: eager latency at each batch size (the speed-up's denominator).
4. ``_artifact``: per artifact, run it at each batch size and compare (``converters.compare``),
   measure its latency and apply the gates.
5. ``_assemble``: the ``ValidationReport``, with where the time went (``report.timing``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from converters.compare import (
    DEFAULT_BATCH_SIZES,
    DEFAULT_SAMPLES,
    DEFAULT_SEED,
    PRESETS,
    ClassSlice,
    Failure,
    Tolerance,
    compare_outputs,
    head_slices,
    parity_result,
    resolve_preset,
    with_overrides,
)
from toolkit._args import check_device, positive_int, positive_ints
from toolkit.errors import InvalidArgumentError
from toolkit.model_dir import LoadedModel, load_model_dir
from toolkit.progress import Progress
from toolkit.records import Preprocessing
from validation import _env
from validation.inputs import ParityInputs, load_inputs
from validation.latency import LatencySettings, LatencyStats, cold_start, measure
from validation.lineage import check_lineage
from validation.parity import run_batched
from validation.reference import default_cache_dir, reference_outputs
from validation.result import ArtifactResult, ValidationReport
from validation.runners.base import Runner
from validation.runners.registry import open_runner

Artifact = str | os.PathLike[str] | Runner

#: ``reference_cache`` default: ``validation.reference.default_cache_dir()``
DEFAULT_CACHE = "default"


@dataclasses.dataclass(frozen=True)
class Settings:
    """The checked settings of one run (see ``validate`` for each field's meaning)."""

    data: str | os.PathLike[str] | np.ndarray
    samples: int
    batch_sizes: tuple[int, ...]
    device: str
    preset: str | None
    atol: float | None
    rtol: float | None
    threads: int | None
    seed: int
    parity: bool
    latency: bool
    head_latency: bool
    latency_settings: LatencySettings
    localise: bool
    max_p99_ms: float | None
    min_speedup: float | None
    cross_check: bool
    cache_dir: Path | None


@contextlib.contextmanager
def fixed_threads(threads: int | None) -> Iterator[int]:
    """Fix PyTorch's intra-op threads for the duration (restored afterwards); yields the count."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(positive_int(threads, "threads", example="threads=2"))
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def check_batch_sizes(batch_sizes: Sequence[int]) -> list[int]:
    """Positive batch sizes, duplicates dropped, order kept."""
    return positive_ints(batch_sizes, "batch_sizes", example="batch_sizes=(1, 8)")


def validate(
    model_dir: str | os.PathLike[str] | LoadedModel,
    artifacts: Sequence[Artifact],
    *,
    data: str | os.PathLike[str] | np.ndarray = "random",
    samples: int = DEFAULT_SAMPLES,
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    device: str = "cpu",
    preset: str | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    threads: int | None = None,
    seed: int = DEFAULT_SEED,
    parity: bool = True,
    latency: bool = True,
    head_latency: bool = True,
    latency_settings: LatencySettings | None = None,
    localise: bool = True,
    max_p99_ms: float | None = None,
    min_speedup: float | None = None,
    cross_check: bool = False,
    reference_cache: str | os.PathLike[str] | None = DEFAULT_CACHE,
    progress: bool = False,
) -> ValidationReport:
    """Prove each artifact matches the eager fp32 model and measure how fast it runs.

    Args:
        model_dir: the model directory (or a ``LoadedModel``) the artifacts were exported from.
        artifacts: ``.onnx`` / ``.pt2`` paths, ``eager:fp16`` / ``eager:bf16``, or ``Runner`` objects.
        data: ``random`` (default; the same seeded images the export check uses) | ``digits`` |
            a folder | a ``.npz`` | an array.
        samples: how many inputs (default 32), run at every batch size in ``batch_sizes``
            (default 1, 8).
        device: ``cpu`` | ``cuda`` | ``cuda:N``.
        preset: ``fp32`` | ``fp16`` | ``int8`` | ``auto`` (default: from each artifact's
            precision); ``atol``/``rtol`` override it.
        threads: PyTorch and ONNX Runtime intra-op threads (default: PyTorch's current setting,
            restored afterwards).
        seed: draws the random inputs and subsets.
        parity, latency, head_latency: which parts to run (default all).
        latency_settings: warm-up, run count and noise bound of each latency measurement.
        localise: on a parity failure of an fp32 ONNX artifact, find the first diverging tensor.
        max_p99_ms: latency gate in milliseconds at every batch size.
        min_speedup: speed-up gate (× eager p50) at every batch size.
        cross_check: compare artifacts that record other weights than ``model_dir`` on purpose
            (default: refuse them with ``LineageError``).
        reference_cache: folder caching the eager reference (default: ``$REHEAD_CACHE_DIR`` or
            ``~/.cache/rehead``); None: no cache.
        progress: print a progress bar on stderr (default False: silent).

    Returns the report; ``report.raise_for_status()`` turns failures into ``GateFailedError``.
    ``report.timing`` says where the time went, stage by stage, in seconds.
    """
    wall_start = time.perf_counter()
    if not artifacts:
        raise InvalidArgumentError(
            "no artifacts to validate", hint="give at least one .onnx or .pt2 file", param="artifacts"
        )
    settings = Settings(
        data=data,
        samples=positive_int(samples, "samples", example="samples=32"),
        batch_sizes=tuple(check_batch_sizes(batch_sizes)),
        device=check_device(device),
        preset=preset,
        atol=atol,
        rtol=rtol,
        threads=threads,
        seed=seed,
        parity=parity,
        latency=latency,
        head_latency=head_latency,
        latency_settings=latency_settings or LatencySettings(),
        localise=localise,
        max_p99_ms=max_p99_ms,
        min_speedup=min_speedup,
        cross_check=cross_check,
        cache_dir=_cache_dir(reference_cache),
    )
    if preset is not None:
        resolve_preset(preset, "fp32")
    with_overrides(PRESETS["fp32"], atol=atol, rtol=rtol)  # reject bad overrides before any work
    loaded = model_dir if isinstance(model_dir, LoadedModel) else load_model_dir(model_dir)
    sizes = settings.batch_sizes
    per_artifact = len(sizes) * (int(parity) + int(latency))
    total = len(artifacts) * per_artifact + (1 if parity else 0) + (len(sizes) if latency else 0)
    with (
        fixed_threads(threads) as n_threads,
        contextlib.ExitStack() as stack,
        Progress("validating", total=total, enabled=progress) as bar,
    ):
        with bar.step("open"):
            runners = _open(loaded, artifacts, settings, n_threads, stack)
            inputs = _inputs(loaded, runners, settings)
        slices = head_slices(loaded.config.num_classes, loaded.config.head.kept_indices, loaded.config.head.new_indices)
        used: list[Runner] = []
        reference: dict[str, np.ndarray] = {}
        cached = False
        if parity:
            with bar.step("eager reference"):
                reference, ref_runner, cached = reference_outputs(
                    loaded.module, inputs.images, device=settings.device, cache_dir=settings.cache_dir
                )
                used.append(ref_runner)
            bar.advance("eager reference" + (" (cached)" if cached else ""))
        ref_latency: dict[int, LatencyStats] = {}
        if latency:
            with bar.step("eager latency"):
                ref_latency = _reference_latency(loaded, inputs, settings, used, bar)
        tolerances: dict[str, Tolerance] = {}
        rounding = _rounding(loaded, inputs, settings, used)
        results = []
        for artifact, runner in zip(artifacts, runners, strict=True):
            results.append(
                _artifact(
                    artifact,
                    runner,
                    loaded,
                    inputs,
                    reference,
                    rounding,
                    ref_latency,
                    slices,
                    settings,
                    tolerances,
                    used,
                    bar,
                )
            )
        head = None
        if latency and head_latency:
            with bar.step("head latency"):
                head = _head_latency(loaded, inputs, settings, used)
        environment = _env.capture(threads=n_threads, device=settings.device)
    stages = {f"stage: {name}": seconds for name, seconds in bar.timings.items()}
    return _assemble(
        loaded, settings, n_threads, inputs, cached, ref_latency, head, results, environment, used, stages, wall_start
    )


# --- stage 1: settings, runners, lineage, inputs ---------------------------------------------------


def _cache_dir(reference_cache: str | os.PathLike[str] | None) -> Path | None:
    if reference_cache is None:
        return None
    if str(reference_cache) == DEFAULT_CACHE:
        return default_cache_dir()
    return Path(reference_cache)


def _open(
    loaded: LoadedModel,
    artifacts: Sequence[Artifact],
    settings: Settings,
    threads: int,
    stack: contextlib.ExitStack,
) -> list[Runner]:
    """Check each artifact's lineage, then open its runner; every runner is closed by ``stack``."""
    runners = []
    for artifact in artifacts:
        if not isinstance(artifact, Runner) and not str(artifact).startswith("eager:") and Path(artifact).is_file():
            check_lineage(loaded.config, Path(artifact), cross_check=settings.cross_check)
        runner = open_runner(
            artifact,
            device=settings.device,
            threads=threads,
            module=loaded.module,
            prep=loaded.config.preprocessing,
        )
        runners.append(stack.enter_context(runner))
    return runners


def _inputs(loaded: LoadedModel, runners: list[Runner], settings: Settings) -> ParityInputs:
    config = loaded.config
    inputs = load_inputs(
        settings.data,
        config.preprocessing,
        samples=settings.samples,
        seed=settings.seed,
        class_names=config.class_names,
    )
    return _pixel_grid_if_baked(inputs, runners, config.preprocessing)


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
    grid = on_pixel_grid(inputs.images, prep)
    return dataclasses.replace(inputs, images=grid, source=f"{inputs.source} on the uint8 pixel grid")


def _rounding(
    loaded: LoadedModel, inputs: ParityInputs, settings: Settings, used: list[Runner]
) -> Callable[[], dict[str, np.ndarray]]:
    """The eager float64 outputs on the parity inputs, computed on first use and kept: the fp32
    preset widens its bound by the model's own fp32 rounding only where the fixed bound fails."""
    memo: dict[str, dict[str, np.ndarray]] = {}

    def rounding() -> dict[str, np.ndarray]:
        if "fp64" not in memo:
            from validation.reference import CHUNK
            from validation.runners.eager import EagerRunner

            runner = EagerRunner(loaded.module, device=settings.device, precision="fp64", name="eager-fp64")
            used.append(runner)
            memo["fp64"] = run_batched(runner, inputs.images, CHUNK)
        return memo["fp64"]

    return rounding


# --- stage 3: eager latency ------------------------------------------------------------------------


def _latency_batch(images: np.ndarray, bs: int) -> np.ndarray:
    return np.ascontiguousarray(np.resize(images, (bs, *images.shape[1:])), dtype=np.float32)


def _reference_latency(
    loaded: LoadedModel, inputs: ParityInputs, settings: Settings, used: list[Runner], bar: Progress
) -> dict[int, LatencyStats]:
    from validation.runners.eager import EagerRunner

    runner = EagerRunner(loaded.module, device=settings.device, precision="fp32", name="eager-fp32")
    used.append(runner)
    stats = {}
    for bs in settings.batch_sizes:
        stats[bs] = measure(runner, _latency_batch(inputs.images, bs), settings.latency_settings)
        bar.advance(f"eager latency batch {bs}")
    return stats


# --- stage 4: one artifact: run, compare, latency, gates ---------------------------------------------


def _artifact(
    artifact: Artifact,
    runner: Runner,
    loaded: LoadedModel,
    inputs: ParityInputs,
    reference: dict[str, np.ndarray],
    rounding: Callable[[], dict[str, np.ndarray]],
    ref_latency: dict[int, LatencyStats],
    slices: list[ClassSlice],
    settings: Settings,
    tolerances: dict[str, Tolerance],
    used: list[Runner],
    bar: Progress,
) -> ArtifactResult:
    used.append(runner)
    path = None if isinstance(artifact, Runner) or str(artifact).startswith("eager:") else str(artifact)
    result = ArtifactResult(
        name=runner.name,
        path=path,
        kind=runner.kind,
        precision=runner.precision,
        device=settings.device,
        size_bytes=_size(path),
        preset=None,
    )
    with bar.step(f"cold start {runner.name}"):
        result.cold_start = cold_start(
            runner, _latency_batch(inputs.images, runner.fixed_batch or settings.batch_sizes[0])
        )
    if settings.parity:
        with bar.step(f"parity {runner.name}"):
            _parity(result, runner, loaded, inputs, reference, rounding, slices, settings, tolerances, used, bar)
    if settings.latency:
        with bar.step(f"latency {runner.name}"):
            for bs in settings.batch_sizes:
                stats = measure(runner, _latency_batch(inputs.images, bs), settings.latency_settings)
                result.latency[bs] = stats
                ref = ref_latency.get(bs)
                result.speedup[bs] = ref.p50_ms / stats.p50_ms if ref and stats.p50_ms > 0 else None
                bar.advance(f"latency {runner.name} batch {bs}")
        result.gate_failures = gates(result, ref_latency, settings.max_p99_ms, settings.min_speedup)
    return result


def _tolerance(
    runner: Runner,
    loaded: LoadedModel,
    inputs: ParityInputs,
    slices: list[ClassSlice],
    settings: Settings,
    tolerances: dict[str, Tolerance],
    used: list[Runner],
) -> tuple[str, Tolerance]:
    """The preset for this artifact's precision (the auto envelope measured once per precision)."""
    key = resolve_preset(settings.preset, runner.precision)
    cache_key = f"{key}/{runner.precision}"
    if cache_key not in tolerances:
        if key == "auto":
            from validation.calibrate import calibrate

            tolerances[cache_key] = calibrate(
                loaded.module,
                inputs.images,
                slices,
                runner.precision,
                device=settings.device,
                batch_size=max(settings.batch_sizes),
                runners=used,
            )
        else:
            tolerances[cache_key] = PRESETS[key]
    return key, with_overrides(tolerances[cache_key], atol=settings.atol, rtol=settings.rtol)


def _parity(
    result: ArtifactResult,
    runner: Runner,
    loaded: LoadedModel,
    inputs: ParityInputs,
    reference: dict[str, np.ndarray],
    rounding: Callable[[], dict[str, np.ndarray]],
    slices: list[ClassSlice],
    settings: Settings,
    tolerances: dict[str, Tolerance],
    used: list[Runner],
    bar: Progress,
) -> None:
    key, tol = _tolerance(runner, loaded, inputs, slices, settings, tolerances, used)
    result.preset = key
    batches = []
    for bs in settings.batch_sizes:
        produced = run_batched(runner, inputs.images, bs)
        batches.append(
            compare_outputs(
                reference,
                produced,
                slices,
                tol,
                batch_size=bs,
                class_names=loaded.config.class_names,
                seed=settings.seed,
                rounding=rounding,
            )
        )
        bar.advance(f"parity {runner.name} batch {bs}")
    result.parity = parity_result(tol, batches, input_nonfinite=inputs.nonfinite, input_source=inputs.source)
    if not result.parity.passed and settings.localise:
        result.parity.localisation = _localise(loaded, runner, inputs.images)


def gates(
    result: ArtifactResult,
    reference: dict[int, LatencyStats],
    max_p99_ms: float | None,
    min_speedup: float | None,
) -> list[Failure]:
    """The latency gates at every batch size: failed (``conclusive``) or undecidable (not)."""
    fails: list[Failure] = []
    for bs, stats in result.latency.items():
        if max_p99_ms is not None:
            if not stats.conclusive:
                fails.append(
                    Failure(
                        kind="latency",
                        metric="p99_ms",
                        batch_size=bs,
                        value=stats.p99_ms,
                        bound=max_p99_ms,
                        conclusive=False,
                        message=f"latency gate p99 ≤ {max_p99_ms:g} ms at batch {bs} inconclusive: {stats.reason}",
                    )
                )
            elif stats.p99_ms > max_p99_ms:
                fails.append(
                    Failure(
                        kind="latency",
                        metric="p99_ms",
                        batch_size=bs,
                        value=stats.p99_ms,
                        bound=max_p99_ms,
                        message=f"p99 latency {stats.p99_ms:.3f} ms > {max_p99_ms:g} ms at batch {bs}",
                    )
                )
        if min_speedup is not None:
            ref = reference.get(bs)
            speed = result.speedup.get(bs)
            if not stats.conclusive or ref is None or not ref.conclusive or speed is None:
                why = stats.reason or (ref.reason if ref else "no eager latency")
                fails.append(
                    Failure(
                        kind="speedup",
                        metric="speedup",
                        batch_size=bs,
                        value=speed,
                        bound=min_speedup,
                        conclusive=False,
                        message=f"speed-up gate ≥ {min_speedup:g}× at batch {bs} inconclusive: {why}",
                    )
                )
            elif speed < min_speedup:
                fails.append(
                    Failure(
                        kind="speedup",
                        metric="speedup",
                        batch_size=bs,
                        value=speed,
                        bound=min_speedup,
                        message=f"speed-up {speed:.2f}× < {min_speedup:g}× at batch {bs} "
                        f"(p50 {stats.p50_ms:.3f} ms vs eager {ref.p50_ms:.3f} ms)",
                    )
                )
    return [f.replace(artifact=result.name) for f in fails]


def _localise(loaded: LoadedModel, runner: Runner, images: np.ndarray) -> dict[str, Any]:
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

    return localise_onnx(loaded.module, runner.path, sample, threads=runner.threads)


def _head_latency(loaded: LoadedModel, inputs: ParityInputs, settings: Settings, used: list[Runner]) -> dict[str, Any]:
    from validation.head import capture_head_input, head_latency

    feature = capture_head_input(loaded.module, loaded.config.head, inputs.images[:1], settings.device)
    return head_latency(
        loaded.module,
        loaded.config.head,
        feature,
        list(settings.batch_sizes),
        device=settings.device,
        settings=settings.latency_settings,
        runners=used,
    )


def _size(path: str | None) -> int:
    from validation._artifact import artifact_size

    return artifact_size(Path(path)) if path else 0


# --- stage 5: the report -------------------------------------------------------------------------------


def _assemble(
    loaded: LoadedModel,
    settings: Settings,
    n_threads: int,
    inputs: ParityInputs,
    cached: bool,
    ref_latency: dict[int, LatencyStats],
    head: dict[str, Any] | None,
    results: list[ArtifactResult],
    environment: dict[str, Any],
    used: list[Runner],
    stages: dict[str, float],
    wall_start: float,
) -> ValidationReport:
    config = loaded.config
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
            "weights_sha256": config.weights_sha256,
        },
        environment=environment,
        settings={
            "batch_sizes": list(settings.batch_sizes),
            "device": settings.device,
            "preset": settings.preset,
            "atol": settings.atol,
            "rtol": settings.rtol,
            "threads": n_threads,
            "seed": settings.seed,
            "latency": dataclasses.asdict(settings.latency_settings) if settings.latency else None,
            "parity": settings.parity,
            "cross_check": settings.cross_check,
            "reference": "eager fp32, TF32 off",
        },
        inputs={
            "source": inputs.source,
            "count": inputs.count,
            "nonfinite": inputs.nonfinite,
            "reference_cached": cached,
        },
        reference_latency=ref_latency,
        head_latency=head,
        artifacts=results,
        gates={"max_p99_ms": settings.max_p99_ms, "min_speedup": settings.min_speedup},
        timing={"wall_s": wall_s, "model_s": model_s, "overhead_s": max(wall_s - model_s, 0.0), **stages},
    )


def bench(
    model_dir: str | os.PathLike[str] | LoadedModel,
    artifacts: Sequence[Artifact],
    *,
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    threads: int | None = None,
    duration_s: float = 2.0,
    warmup_s: float = 0.5,
    min_runs: int = 20,
    max_cv: float = 0.25,
    device: str = "cpu",
    head_latency: bool = True,
    cross_check: bool = False,
    progress: bool = False,
) -> ValidationReport:
    """Latency only (no parity): eager and every artifact at each batch size, plus the head.
    ``duration_s``/``warmup_s`` in seconds per measurement; ``cross_check`` as in ``validate``."""
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
        cross_check=cross_check,
        progress=progress,
        samples=max(sizes),
    )
