"""``export_tensorrt``: a TensorRT engine built from an ONNX file, checked, and written with its sidecar.

Order of work, so that a bad request costs nothing: the options (``BuildOptions``, checked when
made) and the output path are checked, the ONNX is read (structure only) and the profile
resolved, then ``require_runtime`` refuses at once (exit 3) when TensorRT or a CUDA GPU is
missing, naming which. Only then is the engine built (``converters.tensorrt._trt``, the one module
that calls TensorRT), run on the default parity inputs and judged against ONNX Runtime on the
same ONNX with the preset of the engine's precision, per class slice (``parity``). A failed
verdict writes nothing (``GateFailedError``, exit 1) unless ``allow_mismatch``. The engine, its
sidecar ``<engine>.json`` (``record.EngineRecord``) and the equivalent trtexec command
``<engine>.trtexec.sh`` are then published together (``_output.publish_engine``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from converters.compare import ParityResult
from converters.result import ExportResult
from converters.tensorrt._output import check_engine_path, engine_result, publish_engine, sha256_bytes, utc_now
from converters.tensorrt.options import DEFAULT_DEVICE, BuildOptions, TrtFeatures, Typing
from converters.tensorrt.parity import judge_engine, parity_summary, refuse_mismatch
from converters.tensorrt.profile import Profile, resolve_profile
from converters.tensorrt.record import EngineRecord, GpuInfo, sha256_of
from converters.tensorrt.runtime import require_runtime, tensorrt_features
from converters.tensorrt.session import EngineSession
from converters.tensorrt.signature import graph_signature
from converters.tensorrt.source import OnnxFacts, read_onnx
from converters.tensorrt.trtexec import trtexec_command
from toolkit import _atomic
from toolkit.progress import Progress

if TYPE_CHECKING:
    from converters.tensorrt import _trt


def export_tensorrt(
    onnx: str | os.PathLike[str],
    path: str | os.PathLike[str],
    options: BuildOptions | None = None,
    *,
    device: str = DEFAULT_DEVICE,
    allow_mismatch: bool = False,
    overwrite: bool = False,
    progress: bool = False,
) -> ExportResult:
    """Build a TensorRT engine at ``path`` from the ONNX file ``onnx``, check it, and write it.

    The engine is checked against ONNX Runtime on the same ONNX (the default parity inputs, per
    class slice, the preset of its precision) before anything is written. Writes ``path``,
    ``<path>.json`` and ``<path>.trtexec.sh`` together; saves the timing cache to
    ``options.timing_cache`` when given, whatever the verdict. Raises ``MissingDependencyError`` /
    ``HardwareUnavailableError`` (exit 3) without TensorRT or a GPU, after the arguments and the
    ONNX were checked and before anything is written; ``GateFailedError`` (exit 1) when the engine
    fails its check.

    Args:
        onnx: the ONNX file (``rehead export onnx`` output; one image input).
        path: the engine to write, ending in ``.engine`` or ``.plan``.
        options: how to build it (None, the default: ``BuildOptions()``).
        device: the GPU that builds and checks it, ``cuda`` or ``cuda:N`` (default ``cuda``).
        allow_mismatch: write an engine that fails its check anyway; the sidecar records the
            verdict (default False).
        overwrite: replace an existing engine (default False).
        progress: print the build's steps (default False).
    """
    start = time.perf_counter()
    out = check_engine_path(path, overwrite)
    options = options if options is not None else BuildOptions()
    facts = read_onnx(onnx)
    prep = facts.preprocessing
    size = prep.input_size if prep is not None else None
    profile = resolve_profile(facts.input_name, facts.input_dims, options, size)
    version, gpu = require_runtime(purpose="building a TensorRT engine", device=device)
    features = tensorrt_features()
    typing = options.typing(facts.precision, features)  # refuses --fp16 where weak typing is gone
    steps = Progress(f"tensorrt {out.name}", enabled=progress)
    built, parity, checks = _build_and_check(steps, out, facts, options, profile, typing, device=device)
    if options.timing_cache:  # the tactics timed are worth keeping whatever the verdict
        _atomic.write_bytes(options.timing_cache, built.timing_cache, overwrite=True)
    if not parity.passed and not allow_mismatch:
        refuse_mismatch(parity, what=f"the engine built from '{facts.path.name}'")
    record = _engine_record(
        built.plan,
        out,
        facts,
        options,
        profile,
        typing,
        features,
        tensorrt_version=version,
        gpu=gpu,
        build_seconds=steps.timings["build"],
        parity=parity,
    )
    publish_engine(out, built.plan, record, overwrite=overwrite)
    warnings = [*typing.notes, *[f"TensorRT: {w}" for w in dict.fromkeys(built.warnings)][:5]]
    if not parity.passed:
        warnings.append(f"engine kept despite a parity failure: {record.parity['first_failure']}")
    return engine_result(out, record, facts, {**checks, "parity_passed": float(parity.passed)},
                         time.perf_counter() - start, warnings)


def _build_request(facts: OnnxFacts, options: BuildOptions, profile: Profile, typing: Typing) -> _trt.BuildRequest:
    """The build in TensorRT's terms; the timing cache read from its file when there is one."""
    from converters.tensorrt import _trt

    cache = Path(options.timing_cache) if options.timing_cache else None
    return _trt.BuildRequest(
        onnx_path=os.fspath(facts.path),
        input_name=profile.input,
        min_shape=profile.min,
        opt_shape=profile.opt,
        max_shape=profile.max,
        flags=typing.flags,
        strongly_typed=typing.strongly_typed,
        workspace_bytes=options.workspace_mib * 2**20 if options.workspace_mib is not None else None,
        opt_level=options.opt_level,
        hardware_compat=options.hardware_compat,
        timing_cache=cache.read_bytes() if cache is not None and cache.is_file() else None,
    )


def _build_and_check(
    steps: Progress,
    out: Path,
    facts: OnnxFacts,
    options: BuildOptions,
    profile: Profile,
    typing: Typing,
    *,
    device: str,
) -> tuple[_trt.Built, ParityResult, dict[str, float]]:
    """Build the engine on ``device`` (timed as the ``build`` step), then judge it (``check``)."""
    import torch

    from converters.tensorrt import _trt

    request = _build_request(facts, options, profile, typing)
    with steps, torch.cuda.device(torch.device(device)):
        with steps.step("build"):
            steps.message(f"building {out.name} from {facts.path.name} ({profile.describe()})")
            built = _trt.build(request)
        # a stripped plan holds no weights: it is checked as it will run, refitted from its own ONNX
        host_code = options.version_compatible
        plan = built.plan
        if options.strip_weights:
            plan = _trt.refit(plan, os.fspath(facts.path), host_code=host_code)
        with steps.step("check"), EngineSession(plan, device=device, host_code=host_code) as session:
            parity, checks = judge_engine(session.first_output, facts, profile, typing.precision)
    return built, parity, checks


def _engine_record(
    plan: bytes,
    out: Path,
    facts: OnnxFacts,
    options: BuildOptions,
    profile: Profile,
    typing: Typing,
    features: TrtFeatures,
    *,
    tensorrt_version: str,
    gpu: GpuInfo,
    build_seconds: float,
    parity: ParityResult,
) -> EngineRecord:
    """The sidecar of a freshly built engine."""
    return EngineRecord(
        engine_sha256=sha256_bytes(plan),
        engine_bytes=len(plan),
        onnx_name=facts.path.name,
        onnx_sha256=sha256_of(facts.path),
        graph_signature=graph_signature(facts.path),
        tensorrt_version=tensorrt_version,
        gpu=gpu,
        profile=profile,
        precision=typing.precision,
        builder_flags=typing.flags,
        strongly_typed=typing.strongly_typed,
        hardware_compat=options.hardware_compat,
        version_compatible=options.version_compatible,
        refittable=options.refittable or options.strip_weights,
        weights_stripped=options.strip_weights,
        opt_level=options.opt_level,
        workspace_mib=options.workspace_mib,
        build_seconds=round(build_seconds, 3),
        built_at=utc_now(),
        trtexec=trtexec_command(facts.path, out, options, profile, onnx_precision=facts.precision, features=features),
        model=facts.model_record(),
        parity=parity_summary(parity),
    )
