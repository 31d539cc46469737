"""``refit_engine``: new weights into a refittable engine, without a rebuild, checked like a build.

Refused before TensorRT is touched (``check_refit_source``, exit 2) when the engine does not match
its sidecar, was not built refittable, or the new ONNX has another graph structure (its graph
signature differs: another architecture, head size, opset or export setting). The refitted
engine is judged against ONNX Runtime on the new ONNX exactly like a fresh build, bias included
(TensorRT's known issue: a ``REFIT`` build may drop a GEMM bias, and the head is a GEMM with a
bias), and published with a sidecar that records the engine it was refitted from.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

from converters.result import ExportResult
from converters.tensorrt._output import check_engine_path, engine_result, publish_engine, sha256_bytes, utc_now
from converters.tensorrt.options import DEFAULT_DEVICE
from converters.tensorrt.parity import judge_engine, parity_summary, refuse_mismatch
from converters.tensorrt.record import EngineRecord, check_compatible, sha256_of, verify_engine
from converters.tensorrt.runtime import require_runtime
from converters.tensorrt.session import EngineSession
from converters.tensorrt.signature import graph_signature
from converters.tensorrt.source import read_onnx
from toolkit.errors import ArtifactError, InvalidArgumentError
from toolkit.progress import Progress


def check_refit_source(record: EngineRecord, onnx: str | os.PathLike[str]) -> str:
    """Refuse (``ArtifactError``) refitting ``record``'s engine from ``onnx`` unless the engine is
    refittable and the ONNX graph has the structure of the one it was built from (needs no
    TensorRT). Returns the ONNX's graph signature.

    Args:
        record: the engine's sidecar.
        onnx: the ONNX file with the new weights.
    """
    if not record.refittable:
        raise ArtifactError(
            "the engine was not built refittable",
            hint="rebuild it with refittable=True to replace its weights later without a rebuild",
        )
    if record.weights_stripped and sha256_of(onnx) != record.onnx_sha256:
        raise ArtifactError(
            f"the engine is weight-stripped (built with REFIT_IDENTICAL) and takes only the weights of "
            f"'{record.onnx_name}'; TensorRT leaves refitting it with other weights undefined",
            hint="build a refittable engine (refittable=True) for new weights",
        )
    signature = graph_signature(Path(onnx))
    if signature != record.graph_signature:
        raise ArtifactError(
            f"'{Path(onnx).name}' is not the graph the engine was built from (graph signatures "
            f"{signature[:12]} and {record.graph_signature[:12]} differ: another architecture, head size, "
            "opset or export setting)",
            hint="refit takes new weights for the same graph; build a new engine with rehead export tensorrt",
        )
    return signature


def refit_engine(
    engine: str | os.PathLike[str],
    onnx: str | os.PathLike[str],
    path: str | os.PathLike[str],
    *,
    device: str = DEFAULT_DEVICE,
    allow_mismatch: bool = False,
    overwrite: bool = False,
    progress: bool = False,
) -> ExportResult:
    """Put the weights of ``onnx`` (a re-fine-tuned model, same architecture and head size) into
    the refittable ``engine`` and write the result to ``path``, without a rebuild.

    Refused before TensorRT is touched when the engine does not match its sidecar, is not
    refittable, or ``onnx`` has another graph structure. The refitted engine is judged against
    ONNX Runtime on ``onnx`` exactly like a fresh build, bias included; nothing is written when
    it fails (unless ``allow_mismatch``). Its build options are the engine's, from its sidecar.

    Args:
        engine: the refittable engine (built with ``refittable=True``), its sidecar beside it.
        onnx: the ONNX export with the new weights.
        path: the engine to write (``.engine``/``.plan``; not ``engine`` itself).
        device: the GPU that refits and checks it, ``cuda`` or ``cuda:N`` (default ``cuda``).
        allow_mismatch: write an engine that fails its check anyway; the sidecar records the
            verdict (default False).
        overwrite: replace an existing output engine (default False).
        progress: print the refit's steps (default False).
    """
    start = time.perf_counter()
    out = check_engine_path(path, overwrite)
    source = Path(engine)
    if out.resolve() == source.resolve():
        raise InvalidArgumentError("refit writes a new engine; path must differ from engine", param="path")
    old = verify_engine(source)
    facts = read_onnx(onnx)
    check_refit_source(old, facts.path)
    version, gpu = require_runtime(purpose="refitting a TensorRT engine", device=device)
    check_compatible(old, tensorrt_version=version, gpu=gpu)
    import torch

    from converters.tensorrt import _trt

    steps = Progress(f"refit {out.name}", enabled=progress)
    with steps, torch.cuda.device(torch.device(device)):
        with steps.step("refit"):
            plan = _trt.refit(source.read_bytes(), os.fspath(facts.path), host_code=old.version_compatible)
        with steps.step("check"), EngineSession(plan, device=device, host_code=old.version_compatible) as session:
            parity, checks = judge_engine(session.first_output, facts, old.profile, old.precision)
    if not parity.passed and not allow_mismatch:
        refuse_mismatch(parity, what=f"the engine refitted from '{facts.path.name}'")
    record = dataclasses.replace(
        old,
        engine_sha256=sha256_bytes(plan),
        engine_bytes=len(plan),
        onnx_name=facts.path.name,
        onnx_sha256=sha256_of(facts.path),
        weights_stripped=False,
        # a plan refitted from a stripped one keeps REFIT_IDENTICAL's promise: no further refits
        refittable=old.refittable and not old.weights_stripped,
        model=facts.model_record(),
        parity=parity_summary(parity),
        refitted_from=old.engine_sha256,
        built_at=utc_now(),
    )
    publish_engine(out, plan, record, overwrite=overwrite)
    return engine_result(out, record, facts, {**checks, "parity_passed": float(parity.passed)},
                         time.perf_counter() - start, [])
