"""The only module that calls TensorRT: parse, build, refit, deserialise, execute.

Written against the TensorRT 10 and 11 Python APIs: checked by mypy against NVIDIA's published
10.13 type stubs (``tensorrt-stubs``) with ``Any`` forbidden in this module (pyproject's mypy
override), and every ``trt.`` name and method it uses is looked up in the real 10.x and 11.x
bindings by ``tests/converters/tensorrt/test_bindings.py``. Builder flags are asked for by name, since
TensorRT 11 renumbers ``BuilderFlag`` and drops the weak-typing precision flags.
It is kept small and plain on purpose: everything that can be decided without
TensorRT (options, profiles, records, compatibility, parity) lives in the other modules of
``converters.tensorrt``, where it runs and is tested on a CPU. Import it only after
``converters.tensorrt.runtime.require_runtime`` said TensorRT and a GPU are present. Device memory and
streams are the caller's (torch CUDA tensors); this module sees their addresses as ints.
"""

from __future__ import annotations

import dataclasses
import os

import tensorrt as trt

from toolkit.errors import ArtifactError, ExportError

_SEVERITY = trt.ILogger.Severity


def _dims(dims: trt.Dims) -> tuple[int, ...]:
    return tuple(int(dims[i]) for i in range(len(dims)))


class CollectingLogger(trt.ILogger):
    """Keeps TensorRT's warnings and errors instead of printing them (library calls are quiet)."""

    def __init__(self) -> None:
        trt.ILogger.__init__(self)
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def log(self, severity: trt.ILogger.Severity, msg: str) -> None:
        """Keep an error or a warning; drop anything less severe.

        Args:
            severity: TensorRT's severity.
            msg: the message.
        """
        if severity in (_SEVERITY.INTERNAL_ERROR, _SEVERITY.ERROR):
            self.errors.append(msg)
        elif severity == _SEVERITY.WARNING:
            self.warnings.append(msg)

    def last_error(self) -> str:
        return self.errors[-1] if self.errors else "no message from TensorRT"

    def reset(self) -> CollectingLogger:
        self.errors.clear()
        self.warnings.clear()
        return self


#: TensorRT keeps the first logger it is given for the whole process (builders, runtimes and
#: refitters made later log to it), so rehead gives it one and clears it before each operation
_LOGGER = CollectingLogger()


def version() -> str:
    return str(trt.__version__)


def builder_flag_names() -> tuple[str, ...]:
    """``BuilderFlag``'s member names: what this TensorRT can be asked for (11 has no FP16/BF16/INT8)."""
    return tuple(trt.BuilderFlag.__members__)


@dataclasses.dataclass(frozen=True)
class BuildRequest:
    """Everything ``build`` needs, in TensorRT's terms (made by ``converters.tensorrt.build``)."""

    onnx_path: str
    input_name: str
    min_shape: tuple[int, ...]
    opt_shape: tuple[int, ...]
    max_shape: tuple[int, ...]
    flags: tuple[str, ...]
    strongly_typed: bool
    workspace_bytes: int | None
    opt_level: int
    hardware_compat: str
    timing_cache: bytes | None


@dataclasses.dataclass(frozen=True)
class Built:
    """A serialised engine, the timing cache after the build, and TensorRT's warnings."""

    plan: bytes
    timing_cache: bytes
    warnings: tuple[str, ...]


#: rehead's names -> ``HardwareCompatibilityLevel`` member names (SAME_COMPUTE_CAPABILITY: TensorRT >= 10.9)
_HARDWARE = {"none": "NONE", "ampere+": "AMPERE_PLUS", "same-compute-capability": "SAME_COMPUTE_CAPABILITY"}


def _hardware_level(name: str) -> trt.HardwareCompatibilityLevel:
    level = trt.HardwareCompatibilityLevel.__members__.get(_HARDWARE[name])
    if level is None:
        raise ExportError(
            f"TensorRT {trt.__version__} has no hardware compatibility level '{name}'",
            hint="use TensorRT 10.9 or newer, or another hardware_compat",
            param="hardware_compat",
        )
    return level


def _flag(name: str) -> trt.BuilderFlag:
    # by name: TensorRT 11 renumbers the enum and drops the weak-typing precision flags
    flag = trt.BuilderFlag.__members__.get(name)
    if flag is None:
        raise ExportError(
            f"TensorRT {trt.__version__} has no builder flag {name}",
            hint="TensorRT 11 has no fp16/bf16/int8 flags: export an fp16 or QDQ ONNX (built strongly typed)",
        )
    return flag


def _parser_errors(parser: trt.OnnxParser) -> str:
    """Every parser error as ``node 'name' (Op): description``."""
    lines = []
    for index in range(parser.num_errors):
        error: trt.ParserError = parser.get_error(index)
        lines.append(f"node '{error.node_name()}' ({error.node_operator()}): {error.desc()}")
    return "; ".join(lines) or "the parser gave no reason"


def build(request: BuildRequest) -> Built:
    """Parse the ONNX file (external data read beside it), set the profile and flags, build.

    Args:
        request: what to build: the ONNX path, the profile, flags and limits.
    """
    logger = _LOGGER.reset()
    builder = trt.Builder(logger)
    network_flags = 0
    if request.strongly_typed:
        network_flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(network_flags)
    parser = trt.OnnxParser(network, logger)
    parsed = parser.parse_from_file(request.onnx_path)
    if not parsed or parser.num_errors > 0:
        raise ExportError(
            f"TensorRT's ONNX parser rejects '{os.path.basename(request.onnx_path)}': {_parser_errors(parser)}",
            hint="run 'rehead lint MODEL.onnx --target tensorrt' for the ops and patterns TensorRT cannot take",
        )
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape(
        request.input_name, trt.Dims(list(request.min_shape)), trt.Dims(list(request.opt_shape)),
        trt.Dims(list(request.max_shape)),
    )
    if config.add_optimization_profile(profile) < 0:
        raise ExportError(
            f"TensorRT rejects the optimisation profile {request.min_shape} / {request.opt_shape} / "
            f"{request.max_shape} for '{request.input_name}': {logger.last_error()}",
            hint="the profile must hold the ONNX input's fixed axes",
        )
    config.clear_flag(trt.BuilderFlag.TF32)  # set again below only when asked: fp32 means fp32
    for name in request.flags:
        config.set_flag(_flag(name))
    if request.workspace_bytes is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, request.workspace_bytes)
    config.builder_optimization_level = request.opt_level
    config.hardware_compatibility_level = _hardware_level(request.hardware_compat)
    cache = config.create_timing_cache(request.timing_cache or b"")
    if not config.set_timing_cache(cache, False):
        raise ExportError(
            "TensorRT refuses the timing cache (made by another TensorRT version or GPU)",
            hint="delete the timing cache file, or pass another timing_cache path",
            param="timing_cache",
        )
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise ExportError(
            f"TensorRT could not build the engine: {logger.last_error()}",
            hint="try a larger workspace_mib, a smaller max_batch, or see 'rehead lint --target tensorrt'",
        )
    saved = config.get_timing_cache().serialize()
    return Built(plan=bytes(plan), timing_cache=bytes(saved), warnings=tuple(logger.warnings))


def refit(plan: bytes, onnx_path: str, *, host_code: bool) -> bytes:
    """A plan with every weight replaced by the ONNX file's, serialised with its weights
    (a weight-stripped plan comes back whole).

    Args:
        plan: the serialised engine (built refittable).
        onnx_path: the ONNX file whose weights go in.
        host_code: allow the engine's host code (a version-compatible engine's lean runtime).
    """
    logger = _LOGGER.reset()
    runtime = trt.Runtime(logger)
    runtime.engine_host_code_allowed = host_code
    engine = runtime.deserialize_cuda_engine(plan)
    if engine is None:
        raise ArtifactError(f"TensorRT cannot deserialise the engine: {logger.last_error()}")
    if not engine.refittable:
        raise ArtifactError(
            "the engine is not refittable", hint="build it with refittable=True (or strip_weights=True)"
        )
    refitter = trt.Refitter(engine, logger)
    onnx_refitter = trt.OnnxParserRefitter(refitter, logger)
    if not onnx_refitter.refit_from_file(onnx_path):
        details = []
        for index in range(onnx_refitter.num_errors):
            error = onnx_refitter.get_error(index)
            details.append(f"node '{error.node_name()}' ({error.node_operator()}): {error.desc()}")
        raise ArtifactError(
            f"TensorRT cannot take the weights of '{os.path.basename(onnx_path)}': {'; '.join(details)}",
            hint="refit needs an ONNX export of the same architecture and head size",
        )
    missing = refitter.get_missing_weights()
    if missing:
        raise ArtifactError(f"the ONNX left {len(missing)} engine weights unset (first: '{missing[0]}')")
    if not refitter.refit_cuda_engine():
        raise ArtifactError(f"TensorRT's refit failed: {logger.last_error()}")
    # a weight-stripped plan comes back whole; a REFIT engine stays refittable as it was built.
    # (INCLUDE_REFIT, TensorRT >= 10.14, concerns stripped plans only, whose REFIT_IDENTICAL build
    # makes a later refit with other weights undefined: it is left unset on purpose.)
    serialization = engine.create_serialization_config()
    serialization.clear_flag(trt.SerializationFlag.EXCLUDE_WEIGHTS)
    return bytes(engine.serialize_with_config(serialization))


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """One IO tensor of an engine: name, whether it is an input, its dtype name, shape (-1 dynamic)."""

    name: str
    is_input: bool
    dtype: str
    shape: tuple[int, ...]


class Engine:
    """A deserialised engine with one execution context on profile 0."""

    def __init__(self, plan: bytes, *, host_code: bool) -> None:
        self._logger = _LOGGER.reset()
        self._runtime = trt.Runtime(self._logger)
        # version-compatible engines carry the lean runtime as host code; it runs only when allowed
        self._runtime.engine_host_code_allowed = host_code
        engine = self._runtime.deserialize_cuda_engine(plan)
        if engine is None:
            raise ArtifactError(f"TensorRT cannot deserialise the engine: {self._logger.last_error()}")
        self._engine = engine
        context = engine.create_execution_context()
        if context is None:
            raise ArtifactError(f"TensorRT cannot create an execution context: {self._logger.last_error()}")
        self._context = context

    def tensors(self) -> list[TensorSpec]:
        specs = []
        for index in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(index)
            specs.append(
                TensorSpec(
                    name=name,
                    is_input=self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT,
                    dtype=self._engine.get_tensor_dtype(name).name,
                    shape=_dims(self._engine.get_tensor_shape(name)),
                )
            )
        return specs

    def profile_shapes(self, name: str) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """The min, opt and max shapes of an input on profile 0.

        Args:
            name: the input tensor's name.
        """
        low, mid, high = self._engine.get_tensor_profile_shape(name, 0)
        return _dims(low), _dims(mid), _dims(high)

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> None:
        """Set an input's shape on the context; ``ArtifactError`` when TensorRT refuses it.

        Args:
            name: the input tensor's name.
            shape: its shape for the next run.
        """
        if not self._context.set_input_shape(name, trt.Dims(list(shape))):
            raise ArtifactError(f"TensorRT refuses input shape {shape} for '{name}': {self._logger.last_error()}")

    def output_shape(self, name: str) -> tuple[int, ...]:
        """An output's shape for the input shapes set.

        Args:
            name: the output tensor's name.
        """
        return _dims(self._context.get_tensor_shape(name))

    def set_address(self, name: str, address: int) -> None:
        """Bind a tensor to a device buffer; ``ArtifactError`` when TensorRT refuses it.

        Args:
            name: the tensor's name.
            address: the device buffer's address.
        """
        if not self._context.set_tensor_address(name, address):
            raise ArtifactError(f"TensorRT refuses the buffer for '{name}': {self._logger.last_error()}")

    def execute(self, stream: int) -> None:
        """Enqueue one run on ``stream`` (returns before the GPU finishes).

        Args:
            stream: the CUDA stream's handle.
        """
        if not self._context.execute_async_v3(stream):
            raise ArtifactError(f"TensorRT's execute_async_v3 failed: {self._logger.last_error()}")

    def close(self) -> None:
        del self._context
        del self._engine
