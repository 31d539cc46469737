"""The stages ``validate`` runs, one function each, in pipeline order.

1. ``open_all``: open every runner (each closed by the caller's ``ExitStack``), lineage first;
   ``parity_inputs``: the inputs, moved onto the pixel grid when an artifact bakes preprocessing.
2. the eager reference (``validation.reference``) and ``rounding``, its float64 twin on demand.
3. ``reference_latency``: eager latency at each batch size, the speed-up's denominator.
4. ``run_artifact``: one artifact run at each batch size and compared, its latency and gates.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from converters.compare import (
    PRESETS,
    ClassSlice,
    Failure,
    Tolerance,
    compare_outputs,
    parity_result,
    resolve_preset,
    with_overrides,
)
from converters.runners.base import Runner
from converters.runners.registry import open_runner
from toolkit.models.model_dir import LoadedModel
from toolkit.progress import Progress
from toolkit.records import Preprocessing
from validation.gates import gates
from validation.inputs import ParityInputs, default_inputs, load_inputs
from validation.latency import LatencyStats, cold_start, measure
from validation.lineage import check_lineage
from validation.parity import run_batched
from validation.result import ArtifactResult
from validation.settings import ValidateSettings

Artifact = str | os.PathLike[str] | Runner

#: the checked settings of one run: ``validation.settings.ValidateSettings`` (this name kept)
Settings = ValidateSettings


# --- stage 1: runners, lineage, inputs -------------------------------------------------------------


def open_all(
    loaded: LoadedModel,
    artifacts: Sequence[Artifact],
    settings: Settings,
    threads: int,
    stack: contextlib.ExitStack,
) -> list[tuple[Artifact, Runner]]:
    """Check each artifact's lineage, then open its runner (an ``.onnx`` file one per runtime
    asked for); every runner is closed by ``stack``. Returns (artifact, runner) per report row.

    Args:
        loaded: the model directory, loaded.
        artifacts: the artifacts to open.
        settings: the run's settings (device, runtimes, providers, cross-check).
        threads: intra-op threads.
        stack: closes every runner.
    """
    runners: list[tuple[Artifact, Runner]] = []
    for artifact in artifacts:
        if not isinstance(artifact, Runner) and not str(artifact).startswith("eager:") and Path(artifact).is_file():
            check_lineage(loaded.config, Path(artifact), cross_check=settings.cross_check)
        for runtime in _runtimes_of(artifact, settings):
            runner = open_runner(
                artifact,
                device=settings.device,
                threads=threads,
                module=loaded.module,
                prep=loaded.config.preprocessing,
                ort_provider=settings.ort_provider if runtime != "openvino" else None,
                runtime=runtime,
                ov_precision=settings.ov_precision if settings.ov_precision != "f32" else None,
            )
            runners.append((artifact, stack.enter_context(runner)))
    return runners


def rows(artifacts: Sequence[Artifact], settings: Settings) -> int:
    """How many report rows ``artifacts`` make (an ``.onnx`` file one per runtime).

    Args:
        artifacts: the artifacts.
        settings: the run's settings (its runtimes).
    """
    return sum(len(_runtimes_of(a, settings)) for a in artifacts)


def _runtimes_of(artifact: Artifact, settings: Settings) -> tuple[str | None, ...]:
    """An ``.onnx`` file is opened once per runtime asked for (each a row of the report); any
    other artifact once, by its format's runtime."""
    from converters.artifact import find_format

    if isinstance(artifact, Runner) or str(artifact).startswith("eager:"):
        return (None,)
    fmt = find_format(artifact)
    return tuple(settings.runtimes) if fmt is not None and fmt.kind == "onnx" else (None,)


def parity_inputs(loaded: LoadedModel, runners: list[Runner], settings: Settings) -> ParityInputs:
    """The parity inputs the settings ask for (default: held-out images of the recorded data, else
    random), on the uint8 pixel grid when an artifact bakes preprocessing.

    Args:
        loaded: the model directory, loaded.
        runners: the opened runners.
        settings: the run's settings (data, samples, seed).
    """
    config = loaded.config
    if settings.data is None:  # held-out images of the recorded fine-tuning data, else random (said so)
        inputs = default_inputs(config, samples=settings.samples, seed=settings.seed)
    else:
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
    from converters.onnx.runner import on_pixel_grid

    baked = False
    for runner in runners:
        if hasattr(runner, "baked"):  # the runners of graphs (ONNX Runtime, OpenVINO)
            runner.load()
            baked = baked or bool(runner.baked)
    if not baked:
        return inputs
    grid = on_pixel_grid(inputs.images, prep)
    return dataclasses.replace(inputs, images=grid, source=f"{inputs.source} on the uint8 pixel grid")


def rounding_outputs(
    loaded: LoadedModel, inputs: ParityInputs, settings: Settings, used: list[Runner]
) -> Callable[[], dict[str, np.ndarray]]:
    """The eager float64 outputs on the parity inputs, computed on first use and kept: the fp32
    preset widens its bound by the model's own fp32 rounding only where the fixed bound fails.

    Args:
        loaded: the model directory, loaded.
        inputs: the parity inputs.
        settings: the run's settings (its device).
        used: the float64 runner is appended here (its time counts as model time).
    """
    memo: dict[str, dict[str, np.ndarray]] = {}

    def rounding() -> dict[str, np.ndarray]:
        if "fp64" not in memo:
            from converters.runners.eager import EagerRunner
            from validation.reference import CHUNK

            runner = EagerRunner(loaded.module, device=settings.device, precision="fp64", name="eager-fp64")
            used.append(runner)
            memo["fp64"] = run_batched(runner, inputs.images, CHUNK)
        return memo["fp64"]

    return rounding


# --- stage 3: eager latency ------------------------------------------------------------------------


def _latency_batch(images: np.ndarray, bs: int) -> np.ndarray:
    return np.ascontiguousarray(np.resize(images, (bs, *images.shape[1:])), dtype=np.float32)


def reference_latency(
    loaded: LoadedModel, inputs: ParityInputs, settings: Settings, used: list[Runner], bar: Progress
) -> dict[int, LatencyStats]:
    """Eager fp32 latency at each batch size: the speed-up's denominator.

    Args:
        loaded: the model directory, loaded.
        inputs: the parity inputs (each batch is made of them).
        settings: the run's settings (batch sizes, latency settings).
        used: the eager runner is appended here (its time counts as model time).
        bar: the progress, advanced after each batch size.
    """
    from converters.runners.eager import EagerRunner

    runner = EagerRunner(loaded.module, device=settings.device, precision="fp32", name="eager-fp32")
    used.append(runner)
    stats = {}
    for bs in settings.batch_sizes:
        stats[bs] = measure(runner, _latency_batch(inputs.images, bs), settings.latency_settings)
        bar.advance(f"eager latency batch {bs}")
    return stats


# --- stage 4: one artifact: run, compare, latency, gates ---------------------------------------------


@dataclasses.dataclass
class Run:
    """What every artifact of one ``validate`` run is judged against, gathered once.

    ``tolerances`` caches the preset per precision (the auto envelope is measured once);
    ``used`` collects every runner whose time counts as model time.
    """

    loaded: LoadedModel
    inputs: ParityInputs
    settings: Settings
    slices: list[ClassSlice]
    reference: dict[str, np.ndarray]
    rounding: Callable[[], dict[str, np.ndarray]]
    ref_latency: dict[int, LatencyStats]
    used: list[Runner]
    bar: Progress
    tolerances: dict[str, Tolerance] = dataclasses.field(default_factory=dict)


def run_artifact(artifact: Artifact, runner: Runner, run: Run) -> ArtifactResult:
    """One artifact: cold start, parity at each batch size, latency and its gates.

    Args:
        artifact: the artifact as given.
        runner: its opened runner.
        run: what every artifact is judged against.
    """
    settings, images, bar = run.settings, run.inputs.images, run.bar
    run.used.append(runner)
    path = None if isinstance(artifact, Runner) or str(artifact).startswith("eager:") else str(artifact)
    result = ArtifactResult(
        name=runner.name,
        path=path,
        kind=runner.kind,
        precision=runner.precision,
        device=settings.device,
        size_bytes=_size(path),
        preset=None,
        int8_search=_int8_search(path),
    )
    with bar.step(f"cold start {runner.name}"):
        result.cold_start = cold_start(runner, _latency_batch(images, runner.fixed_batch or settings.batch_sizes[0]))
    if settings.parity:
        with bar.step(f"parity {runner.name}"):
            _parity(result, runner, run)
    if settings.latency:
        with bar.step(f"latency {runner.name}"):
            for bs in settings.batch_sizes:
                stats = measure(runner, _latency_batch(images, bs), settings.latency_settings)
                result.latency[bs] = stats
                ref = run.ref_latency.get(bs)
                result.speedup[bs] = ref.p50_ms / stats.p50_ms if ref and stats.p50_ms > 0 else None
                bar.advance(f"latency {runner.name} batch {bs}")
        result.gate_failures = gates(result, run.ref_latency, settings.max_p99_ms, settings.min_speedup)
    return result


def _tolerance(runner: Runner, run: Run) -> tuple[str, Tolerance]:
    """The preset for this artifact's precision (the auto envelope measured once per precision)."""
    settings = run.settings
    key = resolve_preset(settings.preset, runner.precision)
    cache_key = f"{key}/{runner.precision}"
    if cache_key not in run.tolerances:
        if key == "auto":
            from validation.calibrate import calibrate

            run.tolerances[cache_key] = calibrate(
                run.loaded.module,
                run.inputs.images,
                run.slices,
                runner.precision,
                device=settings.device,
                batch_size=max(settings.batch_sizes),
                runners=run.used,
            )
        else:
            run.tolerances[cache_key] = PRESETS[key]
    return key, with_overrides(run.tolerances[cache_key], atol=settings.atol, rtol=settings.rtol)


def _parity(result: ArtifactResult, runner: Runner, run: Run) -> None:
    key, tol = _tolerance(runner, run)
    result.preset = key
    inputs, settings = run.inputs, run.settings
    batches = []
    for bs in settings.batch_sizes:
        produced = run_batched(runner, inputs.images, bs)
        batches.append(
            compare_outputs(
                run.reference,
                produced,
                run.slices,
                tol,
                batch_size=bs,
                class_names=run.loaded.config.class_names,
                seed=settings.seed,
                rounding=run.rounding,
            )
        )
        run.bar.advance(f"parity {runner.name} batch {bs}")
    result.parity = parity_result(tol, batches, input_nonfinite=inputs.nonfinite, input_source=inputs.source)
    if not result.parity.passed and settings.localise:
        result.parity.localisation = _localise(run.loaded, runner, inputs.images)
    if settings.require_real_data and inputs.random_only:
        result.parity.failures.insert(0, random_inputs_failure(inputs))


def random_inputs_failure(inputs: ParityInputs) -> Failure:
    """``require_real_data``: parity seen on random inputs only is a failure of the inputs.

    Args:
        inputs: the parity inputs (their ``note`` says why they are random).
    """
    why = f" ({inputs.note})" if inputs.note else ""
    return Failure(
        kind="inputs",
        metric="real_data",
        message=f"parity was checked on random inputs only{why}, and real images are required "
        "(require_real_data): random noise can pass where real images fail",
    )


def _localise(loaded: LoadedModel, runner: Runner, images: np.ndarray) -> dict[str, Any]:
    from converters.onnx.runner import OrtRunner

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


def head_latency_of(
    loaded: LoadedModel, inputs: ParityInputs, settings: Settings, used: list[Runner]
) -> dict[str, Any]:
    """The old and the new head's latency on their own, on the head's input for the first image.

    Args:
        loaded: the model directory, loaded.
        inputs: the parity inputs.
        settings: the run's settings (device, batch sizes, latency settings).
        used: the head runners are appended here (their time counts as model time).
    """
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
    from converters import artifact

    return artifact.size(Path(path)) if path else 0


def _int8_search(path: str | None) -> dict[str, Any] | None:
    """The accuracy-aware INT8 decision an ONNX artifact records in its metadata, if any."""
    from converters import artifact

    if path is None or getattr(artifact.find_format(path), "kind", None) != "onnx":
        return None
    search = ((artifact.recorded_model(Path(path)) or {}).get("quantization") or {}).get("search")
    return search if isinstance(search, dict) else None
