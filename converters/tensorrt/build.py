"""TensorRT engines: ``export_tensorrt`` builds one from an ONNX file, ``refit_engine`` puts new weights
into a refittable one, ``EngineSession`` runs one on torch CUDA tensors.

Order of work, so that a bad request costs nothing: the options and the output path are checked,
the ONNX is read (structure only) and the profile resolved, then ``require_runtime`` refuses at
once (exit 3) when TensorRT or a CUDA GPU is missing, naming which. Only then is the engine
built (``converters.tensorrt._trt``, the one module that calls TensorRT), run on the default parity
inputs and judged against ONNX Runtime on the same ONNX with the preset of the engine's
precision, per class slice: a refit is judged exactly like a fresh build, bias included
(TensorRT's known issue: a ``REFIT`` build may drop a GEMM bias, and the head is a GEMM with a
bias). A failed verdict writes nothing (``GateFailedError``, exit 1) unless ``allow_mismatch``.
The engine, its sidecar ``<engine>.json`` (``engine_record.EngineRecord``) and the equivalent
trtexec command ``<engine>.trtexec.sh`` are then written atomically, engine first: a reader
that finds the old sidecar beside a new engine refuses it by hash.
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from converters.result import ExportResult, TensorInfo
from converters.compare import DEFAULT_BATCH_SIZES, ClassSlice, ParityResult, head_slices, random_images
from converters.tensorrt.record import (
    ENGINE_SUFFIXES,
    BuildOptions,
    EngineRecord,
    GpuInfo,
    Profile,
    TrtFeatures,
    check_compatible,
    graph_signature,
    resolve_profile,
    sha256_of,
    sidecar_path,
    size_pair,
    trtexec_command,
    trtexec_path,
    verify_engine,
)
from toolkit import _atomic
from toolkit.errors import (
    ArtifactError,
    GateFailedError,
    HardwareUnavailableError,
    InputShapeError,
    InvalidArgumentError,
    MissingDependencyError,
)
from toolkit.progress import Progress
from toolkit.records import HeadSpec, Preprocessing

INSTALL_HINT = (
    'pip install "rehead[gpu]" on a Linux machine with an NVIDIA GPU and driver (TensorRT\'s wheels '
    "fetch their libraries from pypi.nvidia.com at install time), or use NVIDIA's TensorRT container"
)
_TORCH_DTYPES = {
    "FLOAT": "float32",
    "HALF": "float16",
    "BF16": "bfloat16",
    "INT8": "int8",
    "UINT8": "uint8",
    "INT32": "int32",
    "INT64": "int64",
    "BOOL": "bool",
}


# --- is TensorRT here? ------------------------------------------------------------------------


def tensorrt_version() -> str | None:
    """The installed TensorRT's version, or None when it cannot be imported with its libraries.

    Type stubs alone (``tensorrt-stubs``) make ``import tensorrt`` succeed as an empty namespace
    package; the bindings wheel without NVIDIA's libraries fails to load: both give None here,
    and ``tensorrt_load_error`` tells an installed TensorRT that fails to load from an absent one.
    """
    return _load_tensorrt()[0]


def _load_tensorrt() -> tuple[str | None, str | None]:
    """(version, None) when TensorRT loads, else (None, why)."""
    try:
        module = importlib.import_module("tensorrt")
    except Exception as exc:  # ImportError, or OSError from a missing libnvinfer
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
    if not hasattr(module, "Builder"):
        return None, "'import tensorrt' finds no TensorRT runtime (type stubs alone?)"
    return str(getattr(module, "__version__", "unknown")), None


#: distributions that carry TensorRT's Python runtime (the stubs do not count)
_TRT_DISTRIBUTIONS = ("tensorrt", "tensorrt-cu12", "tensorrt-cu13", "tensorrt-cu12-bindings",
                      "tensorrt-cu13-bindings", "tensorrt-bindings")


def tensorrt_installed() -> tuple[str, ...]:
    """The TensorRT runtime distributions installed (``name==version``), loadable or not."""
    from importlib import metadata

    found = []
    for name in _TRT_DISTRIBUTIONS:
        try:
            found.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return tuple(found)


def tensorrt_load_error() -> str | None:
    """Why an installed TensorRT does not load (an ABI or CUDA mismatch, missing libraries), or None
    when it loads or is not installed at all: the two must not read the same."""
    version, why = _load_tensorrt()
    if version is not None or not tensorrt_installed():
        return None
    return why


def tensorrt_features() -> TrtFeatures:
    """What the installed TensorRT offers (weak typing or not), read from its enums; call after
    ``require_runtime``."""
    from converters.tensorrt import _trt

    return TrtFeatures.detect(_trt.version(), _trt.builder_flag_names())


def gpu_info(device: str = "cuda") -> GpuInfo | None:
    """Name and compute capability of the CUDA GPU ``device``, or None when there is none."""
    import torch

    if not torch.cuda.is_available():
        return None
    index = torch.device(device).index or 0
    major, minor = torch.cuda.get_device_capability(index)
    return GpuInfo(torch.cuda.get_device_name(index), (int(major), int(minor)))


def require_runtime(*, purpose: str, device: str = "cuda") -> tuple[str, GpuInfo]:
    """TensorRT's version and the GPU, or exit 3 at once naming what is missing (both when both are)."""
    version, gpu = tensorrt_version(), gpu_info(device)
    if version is not None and gpu is not None:
        return version, gpu
    if version is None:
        broken = tensorrt_load_error()
        if broken is not None:
            raise MissingDependencyError(
                f"TensorRT ({', '.join(tensorrt_installed())}) is installed but does not load: {broken}",
                hint="a CUDA or ABI mismatch, or its libraries missing: install the tensorrt-cuXX wheel of your "
                'CUDA major (pip install "rehead[gpu-cu12]" or "rehead[gpu-cu13]")',
            )
        missing = "TensorRT is not installed" + (" and no CUDA GPU is visible" if gpu is None else "")
        raise MissingDependencyError(f"{missing}: {purpose} needs both", hint=INSTALL_HINT)
    raise HardwareUnavailableError(
        f"no CUDA GPU is visible (TensorRT {version} is installed): {purpose} needs one",
        hint="run on a machine with an NVIDIA GPU and driver (nvidia-smi lists it)",
    )


# --- the ONNX side ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class OnnxFacts:
    """What the build needs to know of an ONNX file, read without its weights."""

    path: Path
    input_name: str
    input_dims: tuple[int | str | None, ...]
    input_dtype: int
    output_names: tuple[str, ...]
    meta: Mapping[str, Any]
    precision: str


def read_onnx(path: str | os.PathLike[str]) -> OnnxFacts:
    """The ONNX file's first input, outputs, rehead record (empty for another tool's) and precision."""
    import onnx

    from converters.onnx.external import check_external_data
    from converters.onnx.metadata import decode_metadata

    onnx_path = Path(path)
    if onnx_path.suffix.lower() != ".onnx":
        raise InvalidArgumentError(
            f"'{onnx_path.name}' is not an .onnx file", hint="build engines from rehead export onnx output"
        )
    check_external_data(onnx_path)
    try:
        model = onnx.load(os.fspath(onnx_path), load_external_data=False)
    except Exception as exc:  # DecodeError and friends: not an ONNX model
        raise ArtifactError(f"cannot read ONNX model '{onnx_path}': {type(exc).__name__}: {exc}") from exc
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise InvalidArgumentError(
            f"'{onnx_path.name}' has {len(inputs)} inputs; rehead builds engines for one image input",
            hint="export the model with rehead export onnx",
        )
    tensor = inputs[0].type.tensor_type
    dims = tuple(
        d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor.shape.dim
    )
    meta = decode_metadata({p.key: p.value for p in model.metadata_props})
    quantized = any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)
    fp16 = any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)
    precision = "int8" if quantized else ("fp16" if fp16 else "fp32")
    return OnnxFacts(
        path=onnx_path,
        input_name=inputs[0].name,
        input_dims=dims,
        input_dtype=int(tensor.elem_type),
        output_names=tuple(o.name for o in model.graph.output),
        meta=meta if "class_names" in meta else {},
        precision=precision,
    )


def _model_record(meta: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("arch", "class_names", "head_spec", "preprocessing", "weights_sha256", "precision", "input")
    return {k: meta[k] for k in keys if k in meta}


def _preprocessing(meta: Mapping[str, Any]) -> Preprocessing | None:
    data = meta.get("preprocessing")
    return Preprocessing.from_json(data) if isinstance(data, Mapping) else None


def check_inputs(facts: OnnxFacts, profile: Profile, *, samples: int = 32, seed: int = 0) -> np.ndarray:
    """The default parity inputs for the engine: rehead's seeded random images at the profile's
    opt size (uint8 pixels for a graph with baked preprocessing)."""
    import onnx

    shape = (samples, *profile.opt[1:])
    if facts.input_dtype == onnx.TensorProto.UINT8:
        return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)
    prep = _preprocessing(facts.meta)
    if prep is not None and prep.input_shape(samples) == shape:
        return random_images(prep, samples, seed)
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def check_batch_sizes(profile: Profile) -> tuple[int, ...]:
    """``validate``'s default batch sizes that the profile holds, else its min and max."""
    low, high = profile.min[0], profile.max[0]
    inside = tuple(b for b in DEFAULT_BATCH_SIZES if low <= b <= high)
    return inside or tuple(sorted({low, high}))


def slices_of(meta: Mapping[str, Any], num_classes: int) -> tuple[list[ClassSlice], tuple[str, ...] | None]:
    """Class slices (all, kept, new) and class names from the rehead record; ``all`` alone without one."""
    head = meta.get("head_spec")
    names = meta.get("class_names")
    if isinstance(head, Mapping) and isinstance(names, list) and len(names) == num_classes:
        spec = HeadSpec.from_json(head)
        return head_slices(num_classes, spec.kept_indices, spec.new_indices), tuple(str(n) for n in names)
    return head_slices(num_classes, (), ()), None


def onnx_reference(facts: OnnxFacts, images: np.ndarray) -> np.ndarray:
    """ONNX Runtime (CPU) on the ONNX file: what the engine must compute."""
    from converters.onnx.ort import open_session

    session = open_session(facts.path, name=facts.path.name)
    fixed = facts.input_dims[0]
    step = fixed if isinstance(fixed, int) and fixed > 0 else 32
    parts = []
    for start in range(0, len(images), step):
        chunk = images[start : start + step]
        real = len(chunk)
        if real < step and step != 32:  # a fixed-batch graph: pad with repeated samples, drop their outputs
            chunk = np.concatenate([chunk, np.resize(images, (step - real, *images.shape[1:]))])
        parts.append(np.asarray(session.run(None, {facts.input_name: chunk})[0], dtype=np.float32)[:real])
    return np.concatenate(parts)


def judge_engine(
    run: Callable[[np.ndarray], np.ndarray], facts: OnnxFacts, profile: Profile, precision: str
) -> tuple[ParityResult, dict[str, float]]:
    """``run`` (an engine's first output) against ONNX Runtime on its ONNX, per class slice, with
    the preset of ``precision``, on the default parity inputs at the batch sizes the profile holds."""
    from converters.onnx.checks import judge_run

    images = check_inputs(facts, profile)
    reference = onnx_reference(facts, images)
    slices, names = slices_of(facts.meta, reference.shape[1])
    return judge_run(
        run,
        reference,
        images,
        precision=precision,
        slices=slices,
        class_names=names,
        batch_sizes=check_batch_sizes(profile),
    )


def parity_summary(result: ParityResult) -> dict[str, Any]:
    """The verdict as the sidecar stores it."""
    first = result.failures[0] if result.failures else None
    return {
        "reference": "onnxruntime-cpu on the source ONNX",
        "preset": result.tolerance.preset,
        "passed": result.passed,
        "failures": len(result.failures),
        "first_failure": first.to_json() if first is not None else None,
    }


def _refuse_mismatch(result: ParityResult, *, what: str) -> None:
    from converters.onnx.checks import summary

    raise GateFailedError(
        f"{what} does not match ONNX Runtime on its ONNX within the {result.tolerance.preset} preset: "
        f"{summary(result)}",
        hint="nothing was written; rebuild without refit flags, or pass allow_mismatch=True to keep it "
        "(the sidecar then records the failure)",
        param="allow_mismatch",
    )


# --- running an engine ----------------------------------------------------------------------------


class EngineSession:
    """An engine on one GPU: inputs staged into its own device buffers (one set per input shape),
    runs enqueued on its own CUDA stream, optionally replayed from a captured CUDA graph.

    ``stage`` copies a host batch into the buffer for its shape and returns that shape (the
    handle ``enqueue`` takes); ``enqueue`` sets the input shape and tensor addresses, runs and
    returns the device outputs without waiting; ``run`` does both and copies the outputs to the
    host. A batch outside the profile is an ``InputShapeError`` naming the profile.
    """

    def __init__(
        self, plan: bytes, *, device: str = "cuda", host_code: bool = False, cuda_graph: bool = False
    ) -> None:
        import torch

        from converters.tensorrt import _trt

        self.device = torch.device(device)
        self._torch = torch
        with torch.cuda.device(self.device):
            self.engine = _trt.Engine(plan, host_code=host_code)
            self.stream = torch.cuda.Stream(self.device)
        specs = self.engine.tensors()
        inputs = [s for s in specs if s.is_input]
        if len(inputs) != 1:
            raise ArtifactError(f"the engine has {len(inputs)} inputs; rehead runs one-input classifiers")
        self.input = inputs[0]
        self.output_names = tuple(s.name for s in specs if not s.is_input)
        unknown = [f"{s.name} ({s.dtype})" for s in specs if s.dtype not in _TORCH_DTYPES]
        if unknown:
            raise ArtifactError(
                f"the engine has IO tensors of types rehead cannot hold: {', '.join(unknown)}",
                hint="export the model with float32, float16 or int8 inputs and outputs",
            )
        self._dtypes = {s.name: getattr(torch, _TORCH_DTYPES[s.dtype]) for s in specs}
        low, opt, high = self.engine.profile_shapes(self.input.name)
        self.profile = Profile(self.input.name, low, opt, high)
        self.cuda_graph = cuda_graph
        self._buffers: dict[tuple[int, ...], tuple[Any, dict[str, Any]]] = {}
        #: the CUDA graph of the last shape run (one execution context serves every shape, so a
        #: graph captured for one shape is stale once the context was set to another: recaptured)
        self._graph: tuple[tuple[int, ...], Any] | None = None

    def check_shape(self, shape: Sequence[int]) -> None:
        if not self.profile.contains(shape):
            raise InputShapeError(
                f"input shape {tuple(shape)} is outside the engine's profile ({self.profile.describe()})",
                hint="run a batch inside the profile, or rebuild with a wider min_batch/max_batch",
            )

    def stage(self, batch: np.ndarray) -> tuple[int, ...]:
        shape = tuple(int(d) for d in batch.shape)
        self.check_shape(shape)
        torch = self._torch
        with torch.cuda.device(self.device):
            return self._stage(batch, shape)

    def _stage(self, batch: np.ndarray, shape: tuple[int, ...]) -> tuple[int, ...]:
        torch = self._torch
        if shape not in self._buffers:
            self.engine.set_input_shape(self.input.name, shape)
            # allocated on the engine's stream: the caching allocator ties a block to the stream it was
            # made on, so buffers made on the default stream and used on ours could be reused too early
            with torch.cuda.stream(self.stream):
                x = torch.empty(shape, dtype=self._dtypes[self.input.name], device=self.device)
                outs = {
                    n: torch.empty(self.engine.output_shape(n), dtype=self._dtypes[n], device=self.device)
                    for n in self.output_names
                }
            self._buffers[shape] = (x, outs)
        x, _ = self._buffers[shape]
        host = torch.from_numpy(np.ascontiguousarray(batch))
        with torch.cuda.stream(self.stream):
            x.copy_(host.to(x.dtype), non_blocking=False)
        return shape

    def _bind(self, shape: tuple[int, ...]) -> dict[str, Any]:
        x, outs = self._buffers[shape]
        self.engine.set_input_shape(self.input.name, shape)
        self.engine.set_address(self.input.name, int(x.data_ptr()))
        for name, tensor in outs.items():
            self.engine.set_address(name, int(tensor.data_ptr()))
        return outs

    def enqueue(self, shape: tuple[int, ...]) -> dict[str, Any]:
        """Run on the staged input of ``shape``; returns device outputs (synchronise before reading)."""
        torch = self._torch
        with torch.cuda.device(self.device):
            if self._graph is not None and self._graph[0] == shape:
                with torch.cuda.stream(self.stream):
                    self._graph[1].replay()
                return self._buffers[shape][1]
            self._graph = None
            outs = self._bind(shape)
            self.engine.execute(self.stream.cuda_stream)
            if self.cuda_graph:
                # one plain run first flushes TensorRT's deferred shape work (as trtexec does), then
                # capture on our stream; replayed until another shape is run
                self.stream.synchronize()
                captured = torch.cuda.CUDAGraph()
                # thread_local, as trtexec captures: another thread's CUDA calls (a data loader, say)
                # do not invalidate this capture, while this thread's unsafe calls still fail it
                with torch.cuda.graph(captured, stream=self.stream, capture_error_mode="thread_local"):
                    self.engine.execute(self.stream.cuda_stream)
                self._graph = (shape, captured)
            return outs

    def synchronize(self) -> None:
        self.stream.synchronize()

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        outs = self.enqueue(self.stage(batch))
        self.stream.synchronize()
        return {n: t.float().cpu().numpy() for n, t in outs.items()}

    def first_output(self, batch: np.ndarray) -> np.ndarray:
        return self.run(batch)[self.output_names[0]]

    def close(self) -> None:
        self.stream.synchronize()  # nothing may still run on buffers about to be freed
        self._graph = None
        self._buffers.clear()
        self.engine.close()


def open_engine(path: str | os.PathLike[str], *, device: str = "cuda", cuda_graph: bool = False) -> tuple[
    EngineSession, EngineRecord, tuple[str, ...]
]:
    """Verify ``path`` against its sidecar (hash, TensorRT version, GPU) before deserialising it,
    refit a weight-stripped engine from the ONNX named in its sidecar (found beside it, hash
    checked), and open it. Returns the session, the record and compatibility notes."""
    engine_path = Path(path)
    record = verify_engine(engine_path)
    version, gpu = require_runtime(purpose=f"running '{engine_path.name}'", device=device)
    notes = check_compatible(record, tensorrt_version=version, gpu=gpu)
    plan = engine_path.read_bytes()
    if record.weights_stripped:
        onnx_path = engine_path.parent / record.onnx_name
        if not onnx_path.is_file() or sha256_of(onnx_path) != record.onnx_sha256:
            raise ArtifactError(
                f"'{engine_path.name}' is weight-stripped and its ONNX '{record.onnx_name}' is not beside it "
                "unchanged",
                hint="put the ONNX it was built from beside it, or refit it into a full engine with rehead refit",
            )
        from converters.tensorrt import _trt

        plan = _trt.refit(plan, os.fspath(onnx_path), host_code=record.version_compatible)
    session = EngineSession(plan, device=device, host_code=record.version_compatible, cuda_graph=cuda_graph)
    return session, record, notes


# --- build and refit ---------------------------------------------------------------------------------


def _check_engine_path(path: str | os.PathLike[str], overwrite: bool) -> Path:
    out = _atomic.check_output(path, overwrite=overwrite)
    if out.suffix.lower() not in ENGINE_SUFFIXES:
        raise InvalidArgumentError(
            f"output '{out}' must end in .engine or .plan", hint="e.g. path='model.engine'", param="path"
        )
    return out


def _publish(out: Path, plan: bytes, record: EngineRecord, *, overwrite: bool) -> None:
    """Engine first, then sidecar, then the trtexec line: each atomic."""
    _atomic.write_bytes(out, plan, overwrite=overwrite)
    _atomic.write_text(sidecar_path(out), record.dumps(), overwrite=True)
    script = "#!/bin/sh\n# the same build by hand, with TensorRT's trtexec\n" + record.trtexec + "\n"
    _atomic.write_text(trtexec_path(out), script)


def _result(out: Path, record: EngineRecord, facts: OnnxFacts, checks: Mapping[str, float], seconds: float,
            warnings: Sequence[str]) -> ExportResult:
    import onnx

    dims = tuple(d if isinstance(d, int) and d > 0 else str(d or "?") for d in facts.input_dims)
    dtype = onnx.helper.tensor_dtype_to_np_dtype(facts.input_dtype).name
    return ExportResult(
        path=out,
        format=f"tensorrt-{record.precision}",
        size_bytes=record.engine_bytes,
        opset=None,
        nodes_before=0,
        nodes_after=0,
        inputs=(TensorInfo(facts.input_name, dims, dtype),),
        outputs=tuple(TensorInfo(n, ("batch", len(facts.meta.get("class_names", [])) or "?"), "float32")
                      for n in facts.output_names),
        exporter=f"tensorrt {record.tensorrt_version}",
        seconds=seconds,
        warnings=tuple(warnings),
        checks=dict(checks),
    )


def export_tensorrt(
    onnx: str | os.PathLike[str],
    path: str | os.PathLike[str],
    *,
    min_batch: int = 1,
    opt_batch: int | None = None,
    max_batch: int | None = None,
    min_size: Sequence[int] | None = None,
    opt_size: Sequence[int] | None = None,
    max_size: Sequence[int] | None = None,
    fp16: bool = False,
    bf16: bool = False,
    tf32: bool = False,
    strongly_typed: bool = False,
    workspace_mib: int | None = None,
    opt_level: int = 3,
    timing_cache: str | os.PathLike[str] | None = None,
    hardware_compat: str = "none",
    version_compatible: bool = False,
    refittable: bool = False,
    strip_weights: bool = False,
    device: str = "cuda",
    allow_mismatch: bool = False,
    overwrite: bool = False,
    progress: bool = False,
) -> ExportResult:
    """Build a TensorRT engine at ``path`` (``.engine``/``.plan``) from the ONNX file ``onnx``.

    Options: see ``engine_record.BuildOptions``. The engine is checked against ONNX Runtime on
    the same ONNX (the default parity inputs, per class slice, the preset of its precision)
    before anything is written; ``allow_mismatch`` writes a failing engine anyway (the sidecar
    records the verdict). Writes ``path``, ``<path>.json`` and ``<path>.trtexec.sh``; saves the
    timing cache to ``timing_cache`` when given. Raises ``MissingDependencyError`` /
    ``HardwareUnavailableError`` (exit 3) without TensorRT or a GPU, after the arguments and the
    ONNX were checked and before anything is written.
    """
    start = time.perf_counter()
    out = _check_engine_path(path, overwrite)
    options = BuildOptions(
        min_batch=min_batch,
        opt_batch=opt_batch,
        max_batch=max_batch,
        min_size=size_pair(min_size, "min_size"),
        opt_size=size_pair(opt_size, "opt_size"),
        max_size=size_pair(max_size, "max_size"),
        fp16=fp16,
        bf16=bf16,
        tf32=tf32,
        strongly_typed=strongly_typed,
        workspace_mib=workspace_mib,
        opt_level=opt_level,
        timing_cache=os.fspath(timing_cache) if timing_cache is not None else None,
        hardware_compat=hardware_compat,
        version_compatible=version_compatible,
        refittable=refittable,
        strip_weights=strip_weights,
    )
    facts = read_onnx(onnx)
    prep = _preprocessing(facts.meta)
    size = prep.input_size if prep is not None else None
    profile = resolve_profile(facts.input_name, facts.input_dims, options, size)
    version, gpu = require_runtime(purpose="building a TensorRT engine", device=device)
    features = tensorrt_features()
    typing = options.typing(facts.precision, features)  # refuses --fp16 where weak typing is gone
    steps = Progress(f"tensorrt {out.name}", enabled=progress)
    from converters.tensorrt import _trt

    cache_in = Path(options.timing_cache) if options.timing_cache else None
    request = _trt.BuildRequest(
        onnx_path=os.fspath(facts.path),
        input_name=profile.input,
        min_shape=profile.min,
        opt_shape=profile.opt,
        max_shape=profile.max,
        flags=typing.flags,
        strongly_typed=typing.strongly_typed,
        workspace_bytes=workspace_mib * 2**20 if workspace_mib is not None else None,
        opt_level=opt_level,
        hardware_compat=hardware_compat,
        timing_cache=cache_in.read_bytes() if cache_in is not None and cache_in.is_file() else None,
    )
    import torch

    with steps, torch.cuda.device(torch.device(device)):
        with steps.step("build"):
            steps.message(f"building {out.name} from {facts.path.name} ({profile.describe()})")
            built = _trt.build(request)
        build_s = steps.timings["build"]
        precision = typing.precision
        plan = built.plan
        # a stripped plan holds no weights: it is checked as it will run, refitted from its own ONNX
        plan_to_check = _trt.refit(plan, os.fspath(facts.path), host_code=version_compatible) if strip_weights else plan
        with steps.step("check"):
            session = EngineSession(plan_to_check, device=device, host_code=version_compatible)
            try:
                parity, checks = judge_engine(session.first_output, facts, profile, precision)
            finally:
                session.close()
    if cache_in is not None:  # the tactics timed are worth keeping whatever the verdict
        _atomic.write_bytes(cache_in, built.timing_cache, overwrite=True)
    if not parity.passed and not allow_mismatch:
        _refuse_mismatch(parity, what=f"the engine built from '{facts.path.name}'")
    record = EngineRecord(
        engine_sha256=_sha256_bytes(plan),
        engine_bytes=len(plan),
        onnx_name=facts.path.name,
        onnx_sha256=sha256_of(facts.path),
        graph_signature=graph_signature(facts.path),
        tensorrt_version=version,
        gpu=gpu,
        profile=profile,
        precision=precision,
        builder_flags=typing.flags,
        strongly_typed=typing.strongly_typed,
        hardware_compat=hardware_compat,
        version_compatible=version_compatible,
        refittable=refittable or strip_weights,
        weights_stripped=strip_weights,
        opt_level=opt_level,
        workspace_mib=workspace_mib,
        build_seconds=round(build_s, 3),
        built_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        trtexec=trtexec_command(facts.path, out, options, profile, onnx_precision=facts.precision, features=features),
        model=_model_record(facts.meta),
        parity=parity_summary(parity),
    )
    _publish(out, plan, record, overwrite=overwrite)
    warnings = [*typing.notes, *[f"TensorRT: {w}" for w in dict.fromkeys(built.warnings)][:5]]
    if not parity.passed:
        warnings.append(f"engine kept despite a parity failure: {record.parity['first_failure']}")
    return _result(out, record, facts, {**checks, "parity_passed": float(parity.passed)},
                   time.perf_counter() - start, warnings)


def _sha256_bytes(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def check_refit_source(record: EngineRecord, onnx: str | os.PathLike[str]) -> str:
    """Refuse (``ArtifactError``) refitting ``record``'s engine from ``onnx`` unless the engine is
    refittable and the ONNX graph has the structure of the one it was built from (needs no
    TensorRT). Returns the ONNX's graph signature."""
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
    device: str = "cuda",
    allow_mismatch: bool = False,
    overwrite: bool = False,
    progress: bool = False,
) -> ExportResult:
    """Put the weights of ``onnx`` (a re-fine-tuned model, same architecture and head size) into
    the refittable ``engine`` and write the result to ``path``, without a rebuild.

    Refused before TensorRT is touched when the engine does not match its sidecar, is not
    refittable, or ``onnx`` has another graph structure. The refitted engine is judged against
    ONNX Runtime on ``onnx`` exactly like a fresh build, bias included; nothing is written when
    it fails (unless ``allow_mismatch``).
    """
    start = time.perf_counter()
    out = _check_engine_path(path, overwrite)
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
        with steps.step("check"):
            session = EngineSession(plan, device=device, host_code=old.version_compatible)
            try:
                parity, checks = judge_engine(session.first_output, facts, old.profile, old.precision)
            finally:
                session.close()
    if not parity.passed and not allow_mismatch:
        _refuse_mismatch(parity, what=f"the engine refitted from '{facts.path.name}'")
    record = dataclasses.replace(
        old,
        engine_sha256=_sha256_bytes(plan),
        engine_bytes=len(plan),
        onnx_name=facts.path.name,
        onnx_sha256=sha256_of(facts.path),
        weights_stripped=False,
        # a plan refitted from a stripped one keeps REFIT_IDENTICAL's promise: no further refits
        refittable=old.refittable and not old.weights_stripped,
        model=_model_record(facts.meta),
        parity=parity_summary(parity),
        refitted_from=old.engine_sha256,
        built_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )
    _publish(out, plan, record, overwrite=overwrite)
    return _result(out, record, facts, {**checks, "parity_passed": float(parity.passed)},
                   time.perf_counter() - start, [])
