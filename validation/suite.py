"""``validate`` and ``bench``: parity and latency of every artifact against the eager model.

Every option of a run is one record, ``validation.settings.ValidateSettings``: the CLI builds it
and calls ``run``; ``validate(...)`` and ``bench(...)`` are the keyword-argument layer that builds it
for library users. The run reads as the pipeline does, one stage a function:

1. ``stages.open_all``: open every runner (closed on every path), lineage checked first.
2. ``validation.reference``: the eager fp32 outputs, once, in large batches, cached on disk.
3. ``stages.reference_latency``: eager latency at each batch size (the speed-up's denominator).
4. ``stages.run_artifact``: per artifact, run it at each batch size and compare
   (``converters.compare``), measure its latency and apply the gates (``validation.gates``).
5. ``_assemble``: the ``ValidationReport``, with where the time went (``report.timing``).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from converters.compare import head_slices
from converters.runners.base import Runner
from toolkit._args import positive_int
from toolkit._device import on_device
from toolkit.errors import InvalidArgumentError
from toolkit.models.model_dir import LoadedModel, load_model_dir
from toolkit.progress import Progress
from validation import _env, stages
from validation.inputs import ParityInputs, random_only_line
from validation.latency import LatencySettings, LatencyStats
from validation.reference import reference_outputs
from validation.result import ArtifactResult, ValidationReport
from validation.settings import MAX_BATCH_SIZE, ValidateSettings, check_batch_sizes
from validation.stages import Artifact

__all__ = ["MAX_BATCH_SIZE", "ValidateSettings", "bench", "check_batch_sizes", "fixed_threads", "run", "validate"]

#: every keyword argument's default is the record's
_DEFAULTS = ValidateSettings()
_LATENCY = _DEFAULTS.latency_settings


@contextlib.contextmanager
def fixed_threads(threads: int | None) -> Iterator[int]:
    """Fix PyTorch's intra-op threads for the duration (restored afterwards); yields the count.

    Args:
        threads: the intra-op threads; None: leave PyTorch's setting.
    """
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(positive_int(threads, "threads", example="threads=2"))
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def validate(
    model_dir: str | os.PathLike[str] | LoadedModel,
    artifacts: Sequence[Artifact],
    *,
    data: str | os.PathLike[str] | np.ndarray | None = _DEFAULTS.data,
    samples: int = _DEFAULTS.samples,
    batch_sizes: Sequence[int] = _DEFAULTS.batch_sizes,
    device: str = _DEFAULTS.device,
    preset: str | None = _DEFAULTS.preset,
    atol: float | None = _DEFAULTS.atol,
    rtol: float | None = _DEFAULTS.rtol,
    threads: int | None = _DEFAULTS.threads,
    seed: int = _DEFAULTS.seed,
    parity: bool = _DEFAULTS.parity,
    latency: bool = _DEFAULTS.latency,
    head_latency: bool = _DEFAULTS.head_latency,
    latency_settings: LatencySettings | None = None,
    localise: bool = _DEFAULTS.localise,
    max_p99_ms: float | None = _DEFAULTS.max_p99_ms,
    min_speedup: float | None = _DEFAULTS.min_speedup,
    cross_check: bool = _DEFAULTS.cross_check,
    reference_cache: str | os.PathLike[str] | None = _DEFAULTS.reference_cache,
    ort_provider: str | None = _DEFAULTS.ort_provider,
    require_real_data: bool = _DEFAULTS.require_real_data,
    runtimes: Sequence[str] = _DEFAULTS.runtimes,
    ov_precision: str = _DEFAULTS.ov_precision,
    progress: bool = False,
) -> ValidationReport:
    """Prove each artifact matches the eager fp32 model and measure how fast it runs.

    The keyword arguments build a ``ValidateSettings`` record (same names, same defaults) and ``run`` it.

    Args:
        model_dir: the model directory (or a ``LoadedModel``) the artifacts were exported from.
        artifacts: ``.onnx`` / ``.pt2`` paths, ``eager:fp16`` / ``eager:bf16``, or ``Runner`` objects.
        data: ``random`` (the same seeded images the export check uses) | ``digits`` | a folder | a ``.npz`` |
            an array; default None: held-out images (val/test split) of the fine-tuning data the model directory's
            lineage records, else ``random``, which every report then states in one line (``default_inputs``).
        samples: how many inputs (default 32), run at every batch size in ``batch_sizes``.
        batch_sizes: the batch sizes to run at (default 1, 8).
        device: ``cpu`` | ``cuda`` | ``cuda:N``.
        preset: ``fp32`` | ``fp16`` | ``bf16`` | ``int8`` | ``auto`` (default: from each artifact's precision).
        atol: absolute tolerance overriding the preset's (default None: the preset's).
        rtol: relative tolerance overriding the preset's (default None: the preset's).
        threads: PyTorch and ONNX Runtime intra-op threads (default: PyTorch's current setting, restored after).
        seed: draws the random inputs and subsets.
        parity: check parity (default True).
        latency: measure latency at each batch size, and its gates (default True).
        head_latency: also time the old head against the new head on their own (default True).
        latency_settings: warm-up, run count and noise bound of each latency measurement.
        localise: on a parity failure of an fp32 ONNX artifact, find the first diverging tensor.
        max_p99_ms: latency gate in milliseconds at every batch size.
        min_speedup: speed-up gate (× eager p50) at every batch size.
        cross_check: compare artifacts that record other weights than ``model_dir`` on purpose
            (default: refuse them with ``LineageError``).
        reference_cache: folder caching the eager reference (default: ``$REHEAD_CACHE_DIR`` or
            ``~/.cache/rehead``); None: no cache.
        ort_provider: ONNX Runtime's execution provider for ``.onnx`` artifacts on a CUDA device, ``cuda`` or
            ``tensorrt`` (needs onnxruntime-gpu; TensorRT engines cached under ``$REHEAD_CACHE_DIR/ort-trt`` or
            ``~/.cache/rehead/ort-trt``); default None: the device's default providers. ``InvalidArgumentError``
            on the CPU or for another name, ``HardwareUnavailableError`` when the provider is missing or would
            not be the one running the model. Other artifacts ignore it.
        require_real_data: fail parity (an ``inputs`` failure, exit 1) when it was checked on random inputs
            only (default False).
        runtimes: who runs ``.onnx`` artifacts, each a row: ``onnxruntime`` (default), ``openvino``.
        ov_precision: OpenVINO's inference precision, ``f32`` (default) | ``bf16`` | ``f16``.
        progress: print a progress bar on stderr (default False: silent).

    Returns the report; ``report.raise_for_status()`` turns failures into ``GateFailedError``.
    ``report.timing`` says where the time went, stage by stage, in seconds.
    """
    _require_artifacts(artifacts)
    settings = ValidateSettings(
        data=data,
        samples=samples,
        batch_sizes=batch_sizes,
        device=device,
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
        reference_cache=reference_cache,
        ort_provider=ort_provider,
        require_real_data=require_real_data,
        runtimes=runtimes,
        ov_precision=ov_precision,
    )
    return run(model_dir, artifacts, settings, progress=progress)


def bench(
    model_dir: str | os.PathLike[str] | LoadedModel,
    artifacts: Sequence[Artifact],
    *,
    batch_sizes: Sequence[int] = _DEFAULTS.batch_sizes,
    threads: int | None = _DEFAULTS.threads,
    duration_s: float = _LATENCY.min_duration_s,
    warmup_s: float = _LATENCY.warmup_s,
    min_runs: int = _LATENCY.min_runs,
    max_cv: float = _LATENCY.max_cv,
    device: str = _DEFAULTS.device,
    head_latency: bool = _DEFAULTS.head_latency,
    cross_check: bool = _DEFAULTS.cross_check,
    ort_provider: str | None = _DEFAULTS.ort_provider,
    runtimes: Sequence[str] = _DEFAULTS.runtimes,
    ov_precision: str = _DEFAULTS.ov_precision,
    progress: bool = False,
) -> ValidationReport:
    """Latency only (no parity): eager and every artifact at each batch size, plus the head.

    The keyword arguments build a ``ValidateSettings`` record (``ValidateSettings.as_bench``) and
    ``run`` it.

    Args:
        model_dir: the model directory (or a ``LoadedModel``) the artifacts were exported from.
        artifacts: as in ``validate``.
        batch_sizes: the batch sizes to time (default 1, 8).
        threads: intra-op threads, as in ``validate``.
        duration_s: seconds of timed runs per measurement (default 2.0).
        warmup_s: seconds of warm-up runs before timing (default 0.5).
        min_runs: the fewest timed runs of a measurement (default 20).
        max_cv: the largest coefficient of variation of a conclusive measurement (default 0.25).
        device: ``cpu`` | ``cuda`` | ``cuda:N``.
        head_latency: also time the old head against the new head on their own (default True).
        cross_check: as in ``validate``.
        ort_provider: ``cuda`` | ``tensorrt`` for ``.onnx`` artifacts on a CUDA device, as in
            ``validate``.
        runtimes: as in ``validate``.
        ov_precision: as in ``validate``.
        progress: print a progress bar on stderr (default False: silent).
    """
    latency = LatencySettings(warmup_s=warmup_s, min_runs=min_runs, min_duration_s=duration_s, max_cv=max_cv)
    settings = ValidateSettings(
        batch_sizes=batch_sizes,
        threads=threads,
        device=device,
        head_latency=head_latency,
        latency_settings=latency,
        cross_check=cross_check,
        ort_provider=ort_provider,
        runtimes=runtimes,
        ov_precision=ov_precision,
    ).as_bench()
    return run(model_dir, artifacts, settings, progress=progress)


def _require_artifacts(artifacts: Sequence[Artifact]) -> None:
    if not artifacts:
        raise InvalidArgumentError(
            "no artifacts to validate", hint="give at least one .onnx or .pt2 file", param="artifacts"
        )


def run(
    model_dir: str | os.PathLike[str] | LoadedModel,
    artifacts: Sequence[Artifact],
    settings: ValidateSettings,
    *,
    progress: bool = False,
) -> ValidationReport:
    """Validate (or, with ``settings.parity`` False, bench) ``artifacts`` as ``settings`` say.

    Args:
        model_dir: the model directory (or a ``LoadedModel``) the artifacts were exported from.
        artifacts: as in ``validate``.
        settings: every option of the run, checked here before any work (``ValidateSettings.checked``).
        progress: print a progress bar on stderr (default False: silent).

    Returns the report, as ``validate`` does; its ``settings`` is ``settings.to_json()``.
    """
    wall_start = time.perf_counter()
    _require_artifacts(artifacts)
    settings = settings.checked()
    load_start = time.perf_counter()
    loaded = model_dir if isinstance(model_dir, LoadedModel) else load_model_dir(model_dir)
    load_s = time.perf_counter() - load_start
    # cuda:N is made torch's current device for the whole run: CUDA events, streams, graphs and a
    # refit at load belong to the current device, not to the tensors' (toolkit._device)
    with (
        on_device(settings.device),
        fixed_threads(settings.threads) as n_threads,
        contextlib.ExitStack() as stack,
        Progress(
            "validating" if settings.parity else "benchmarking",
            total=_steps(stages.rows(artifacts, settings), settings),
            enabled=progress,
        ) as bar,
    ):
        settings = settings.replace(threads=n_threads)  # the report records the count that was used
        with bar.step("open"):
            opened = stages.open_all(loaded, artifacts, settings, n_threads, stack)
            inputs = stages.parity_inputs(loaded, [runner for _, runner in opened], settings)
        judge, cached = _reference(loaded, inputs, settings, bar)
        results = [stages.run_artifact(artifact, runner, judge) for artifact, runner in opened]
        head = None
        if settings.latency and settings.head_latency:
            with bar.step("head latency"):
                head = stages.head_latency_of(loaded, inputs, settings, judge.used)
        environment = _env.capture(threads=n_threads, device=settings.device)
    stage_times = {"stage: load model": load_s, **{f"stage: {name}": seconds for name, seconds in bar.timings.items()}}
    return _assemble(judge, cached, head, results, environment, stage_times, wall_start)


def _steps(artifacts: int, settings: ValidateSettings) -> int:
    """The progress bar's steps: per artifact, parity and latency at each batch size; the eager
    reference once and its latency at each batch size."""
    sizes = len(settings.batch_sizes)
    per_artifact = sizes * (int(settings.parity) + int(settings.latency))
    return artifacts * per_artifact + (1 if settings.parity else 0) + (sizes if settings.latency else 0)


# --- stages 2 and 3: what every artifact is judged against ---------------------------------------


def _reference(
    loaded: LoadedModel, inputs: ParityInputs, settings: ValidateSettings, bar: Progress
) -> tuple[stages.Run, bool]:
    """The eager reference outputs (parity) and latency (latency), gathered once into the
    ``stages.Run`` every artifact is judged against; True when the outputs came from the cache."""
    used: list[Runner] = []
    reference: dict[str, np.ndarray] = {}
    cached = False
    if settings.parity:
        with bar.step("eager reference"):
            reference, ref_runner, cached = reference_outputs(
                loaded.module, inputs.images, device=settings.device, cache_dir=settings.cache_dir
            )
            used.append(ref_runner)
        bar.advance("eager reference" + (" (cached)" if cached else ""))
    ref_latency: dict[int, LatencyStats] = {}
    if settings.latency:
        with bar.step("eager latency"):
            ref_latency = stages.reference_latency(loaded, inputs, settings, used, bar)
    head = loaded.config.head
    judge = stages.Run(
        loaded=loaded,
        inputs=inputs,
        settings=settings,
        slices=head_slices(loaded.config.num_classes, head.kept_indices, head.new_indices),
        reference=reference,
        rounding=stages.rounding_outputs(loaded, inputs, settings, used),
        ref_latency=ref_latency,
        used=used,
        bar=bar,
    )
    return judge, cached


# --- stage 5: the report -------------------------------------------------------------------------------


def _assemble(
    judge: stages.Run,
    cached: bool,
    head: dict[str, Any] | None,
    results: list[ArtifactResult],
    environment: dict[str, Any],
    stage_times: dict[str, float],
    wall_start: float,
) -> ValidationReport:
    loaded, settings, inputs = judge.loaded, judge.settings, judge.inputs
    config = loaded.config
    model_s = sum(r.model_time_s + (r.load_s or 0.0) for r in judge.used)
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
        settings=settings.to_json(),
        inputs={
            "source": inputs.source,
            "random_only": inputs.random_only,
            "note": inputs.note,
            "warning": random_only_line(inputs.note) if inputs.random_only and settings.parity else "",
            "count": inputs.count,
            "nonfinite": inputs.nonfinite,
            "reference_cached": cached,
        },
        reference_latency=judge.ref_latency,
        head_latency=head,
        artifacts=results,
        gates=settings.gates_json(),
        timing={"wall_s": wall_s, "model_s": model_s, "overhead_s": max(wall_s - model_s, 0.0), **stage_times},
    )
