"""``validate`` and ``bench``: parity and latency of every artifact against the eager model.

The run reads as the pipeline does, one stage a function:

1. ``stages.open_all``: open every runner (closed on every path), lineage checked first.
2. ``validation.reference``: the eager fp32 outputs, once, in large batches, cached on disk.
3. ``stages.reference_latency``: eager latency at each batch size (the speed-up's denominator).
4. ``stages.run_artifact``: per artifact, run it at each batch size and compare
   (``converters.compare``), measure its latency and apply the gates (``validation.gates``).
5. ``_assemble``: the ``ValidationReport``, with where the time went (``report.timing``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from converters.compare import (
    DEFAULT_BATCH_SIZES,
    DEFAULT_SAMPLES,
    DEFAULT_SEED,
    PRESETS,
    head_slices,
    resolve_preset,
    with_overrides,
)
from converters.onnx.ort import check_provider
from toolkit._args import check_device, positive_int, positive_ints
from toolkit._device import on_device
from toolkit.errors import InvalidArgumentError
from toolkit.models.model_dir import LoadedModel, load_model_dir
from toolkit.progress import Progress
from validation import _env, stages
from validation.inputs import ParityInputs, random_only_line
from validation.latency import LatencySettings, LatencyStats
from validation.reference import reference_outputs
from validation.result import ArtifactResult, ValidationReport
from converters.runners.base import Runner
from validation.stages import DEFAULT_CACHE, Artifact, Settings


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


#: the largest batch size validate and bench take (a larger one is no measurement anyone runs,
#: and past 2**63 it overflows the runtimes' shape types before memory is even asked for)
MAX_BATCH_SIZE = 65536


def check_batch_sizes(batch_sizes: Sequence[int]) -> list[int]:
    """Positive batch sizes up to ``MAX_BATCH_SIZE``, duplicates dropped, order kept."""
    sizes = positive_ints(batch_sizes, "batch_sizes", example="batch_sizes=(1, 8)")
    too_large = [s for s in sizes if s > MAX_BATCH_SIZE]
    if too_large:
        raise InvalidArgumentError(
            f"batch size {too_large[0]} is larger than {MAX_BATCH_SIZE}",
            hint="e.g. batch_sizes=(1, 8)",
            param="batch_sizes",
        )
    return sizes


def validate(
    model_dir: str | os.PathLike[str] | LoadedModel,
    artifacts: Sequence[Artifact],
    *,
    data: str | os.PathLike[str] | np.ndarray | None = None,
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
    ort_provider: str | None = None,
    require_real_data: bool = False,
    progress: bool = False,
) -> ValidationReport:
    """Prove each artifact matches the eager fp32 model and measure how fast it runs.

    Args:
        model_dir: the model directory (or a ``LoadedModel``) the artifacts were exported from.
        artifacts: ``.onnx`` / ``.pt2`` paths, ``eager:fp16`` / ``eager:bf16``, or ``Runner`` objects.
        data: ``random`` (the same seeded images the export check uses) | ``digits`` | a folder |
            a ``.npz`` | an array; default None: held-out images (val/test split) of the
            fine-tuning data the model directory's lineage records, else ``random``, which every
            report then states in one line (``validation.inputs.default_inputs``).
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
        ort_provider: ONNX Runtime's execution provider for ``.onnx`` artifacts on a CUDA
            device, ``cuda`` or ``tensorrt`` (needs onnxruntime-gpu; TensorRT engines cached under
            ``$REHEAD_CACHE_DIR/ort-trt`` or ``~/.cache/rehead/ort-trt``); default None: the
            device's default providers. ``InvalidArgumentError`` on the CPU or for another name,
            ``HardwareUnavailableError`` when the provider is missing or would not be the one
            running the model. Other artifacts ignore it.
        require_real_data: fail parity (an ``inputs`` failure, exit 1) when it was checked on
            random inputs only (default False).
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
        cache_dir=stages.cache_dir(reference_cache),
        ort_provider=check_provider(ort_provider, device),
        require_real_data=require_real_data,
    )
    if preset is not None:
        resolve_preset(preset, "fp32")
    with_overrides(PRESETS["fp32"], atol=atol, rtol=rtol)  # reject bad overrides before any work
    load_start = time.perf_counter()
    loaded = model_dir if isinstance(model_dir, LoadedModel) else load_model_dir(model_dir)
    load_s = time.perf_counter() - load_start
    sizes = settings.batch_sizes
    per_artifact = len(sizes) * (int(parity) + int(latency))
    total = len(artifacts) * per_artifact + (1 if parity else 0) + (len(sizes) if latency else 0)
    # cuda:N is made torch's current device for the whole run: CUDA events, streams, graphs and a
    # refit at load belong to the current device, not to the tensors' (toolkit._device)
    with (
        on_device(settings.device),
        fixed_threads(threads) as n_threads,
        contextlib.ExitStack() as stack,
        Progress("validating" if parity else "benchmarking", total=total, enabled=progress) as bar,
    ):
        with bar.step("open"):
            runners = stages.open_all(loaded, artifacts, settings, n_threads, stack)
            inputs = stages.parity_inputs(loaded, runners, settings)
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
                ref_latency = stages.reference_latency(loaded, inputs, settings, used, bar)
        run = stages.Run(
            loaded=loaded,
            inputs=inputs,
            settings=settings,
            slices=slices,
            reference=reference,
            rounding=stages.rounding_outputs(loaded, inputs, settings, used),
            ref_latency=ref_latency,
            used=used,
            bar=bar,
        )
        results = [
            stages.run_artifact(artifact, runner, run) for artifact, runner in zip(artifacts, runners, strict=True)
        ]
        head = None
        if latency and head_latency:
            with bar.step("head latency"):
                head = stages.head_latency_of(loaded, inputs, settings, used)
        environment = _env.capture(threads=n_threads, device=settings.device)
    stage_times = {"stage: load model": load_s, **{f"stage: {name}": seconds for name, seconds in bar.timings.items()}}
    return _assemble(
        loaded,
        settings,
        n_threads,
        inputs,
        cached,
        ref_latency,
        head,
        results,
        environment,
        used,
        stage_times,
        wall_start,
    )


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
            "ort_provider": settings.ort_provider,
            "reference": "eager fp32, TF32 off",
        },
        inputs={
            "source": inputs.source,
            "random_only": inputs.random_only,
            "note": inputs.note,
            "warning": random_only_line(inputs.note) if inputs.random_only and settings.parity else "",
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
    ort_provider: str | None = None,
    progress: bool = False,
) -> ValidationReport:
    """Latency only (no parity): eager and every artifact at each batch size, plus the head.
    ``duration_s``/``warmup_s`` in seconds per measurement; ``cross_check`` and ``ort_provider``
    (``cuda`` | ``tensorrt`` for ``.onnx`` artifacts on a CUDA device) as in ``validate``."""
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
        ort_provider=ort_provider,
        progress=progress,
        samples=max(sizes),
        data="random",  # latency only: the values do not matter, and no images need loading
    )
