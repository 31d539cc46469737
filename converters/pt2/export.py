"""``export_pt2``: ``torch.export`` with a dynamic batch, compiled and packaged by AOTInductor.

The ``.pt2`` package runs without the model's Python code (``torch._inductor.aoti_load_package``)
and carries the same ``rehead.*`` metadata as the ONNX export (``read_pt2_metadata``), plus
``rehead.device``: the device kind it was compiled for (``cpu`` or ``cuda``). AOTInductor does not
check its inputs' device, so a package is run only where it was compiled (``check_package_device``);
a package without that record (rehead before it was written) is a CPU package.
Compiling takes about a minute for resnet18 on CPU.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import re
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from converters._source import eval_mode, resolve_source
from converters.check_inputs import default_check_inputs
from converters.compare import DEFAULT_BATCH_SIZES
from converters.onnx import checks as _checks
from converters.onnx.metadata import build_metadata, decode_metadata, require_metadata
from converters.onnx.torch_export import BATCH_DIM, INPUT_NAME, MAX_BATCH, OUTPUT_NAME, reason
from converters.pt2.options import Pt2ExportOptions
from converters.result import ExportResult, TensorInfo
from toolkit import _atomic
from toolkit._args import check_device
from toolkit._device import device_index, device_kind, on_device, strict_fp32
from toolkit.errors import ArtifactError, ExportError, InvalidArgumentError
from toolkit.models.model_dir import LoadedModel
from toolkit.progress import Progress
from toolkit.records import ModelConfig

# torch.utils.cpp_extension, which AOTInductor imports to compile and to load packages, logs
# "No CUDA runtime is found, using CUDA_HOME=..." when a CUDA build of torch runs on a machine
# without a GPU: noise for a CPU package, printed once per process in every pt2 step.
_CUDA_HOME_NOTICE = re.compile(r"No CUDA runtime is found, using CUDA_HOME=")


#: the metadata key recording the device kind a package was compiled for (``cpu`` | ``cuda``)
DEVICE_KEY = "rehead.device"


class _DropCudaHomeNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        """False (drop) for the CUDA_HOME notice; every other record passes.

        Args:
            record: the log record.
        """
        return not _CUDA_HOME_NOTICE.match(record.getMessage())


@contextlib.contextmanager
def _without_cuda_home_notice() -> Iterator[None]:
    """Drop exactly that notice while inside; every other record passes, and the filter is removed after."""
    logger = logging.getLogger("torch.utils.cpp_extension")
    drop = _DropCudaHomeNotice()
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


def export_pt2(
    source: str | os.PathLike[str] | LoadedModel,
    path: str | os.PathLike[str],
    *,
    options: Pt2ExportOptions | None = None,
    overwrite: bool = False,
    progress: bool = False,
    **settings: Any,
) -> ExportResult:
    """Export a model directory (or ``LoadedModel``) to an AOTInductor ``.pt2`` package at ``path``.

    Input ``images`` float32 NCHW, batch axis dynamic (1-4096) unless ``dynamic_batch`` is False;
    output ``logits``. The device the package is compiled for is recorded as ``rehead.device``
    (``cpu``/``cuda``): it runs only there. The package is loaded and judged against eager (fp32
    preset, TF32 off, the inputs and batch sizes ``rehead validate`` uses by default) before it
    is published (``toolkit._atomic.publish``).

    Args:
        source: a model directory or a ``LoadedModel``.
        path: the ``.pt2`` file to write.
        options: what to make (``Pt2ExportOptions``: dynamic batch, device); default: its defaults.
        overwrite: replace an existing ``path`` (default False).
        progress: print each step and its time on stderr (default False).
        **settings: fields of ``Pt2ExportOptions`` (``device="cuda"``), applied over ``options``.

    Raises:
        OutputExistsError: ``path`` exists and not ``overwrite``.
        InvalidArgumentError: ``path`` does not end in ``.pt2``, or an unknown device.
        HardwareUnavailableError: a CUDA device on a machine without one (exit 3), at once.
        ExportError: ``torch.export`` cannot trace the model.
    """
    start = time.perf_counter()
    options = (options or Pt2ExportOptions()).replace(**settings)
    dynamic_batch = options.dynamic_batch
    out = _atomic.check_output(path, overwrite=overwrite)
    if out.suffix != ".pt2":
        raise InvalidArgumentError(f"output '{out}' must end in .pt2", hint="e.g. path='model.pt2'", param="path")
    device = check_device(options.device)
    loaded = resolve_source(source)
    module, config = loaded.module, loaded.config
    prep = config.preprocessing
    steps = Progress(f"export {out.name}", enabled=progress)
    # the same inputs and batch sizes as ``rehead validate`` by default (converters.check_inputs)
    images = default_check_inputs(config).images
    shapes = ({0: torch.export.Dim(BATCH_DIM, min=1, max=MAX_BATCH)},) if dynamic_batch else None
    # a CUDA package is traced and compiled from a copy on that device (the caller's module stays put)
    target = module if device == "cpu" else copy.deepcopy(module).to(device)
    with eval_mode(target), _without_cuda_home_notice(), on_device(device), strict_fp32():
        with steps.step("export", "torch.export"):
            try:
                example = torch.from_numpy(images[: 2 if dynamic_batch else 1]).to(device)
                program = torch.export.export(target, (example,), dynamic_shapes=shapes)
            except Exception as exc:  # torch.export raises UserError, Unsupported, RuntimeError...
                raise ExportError(
                    f"torch.export failed: {reason(exc)}",
                    hint="make the model traceable (no data-dependent control flow)",
                ) from exc
        nodes = len(program.graph.nodes)
        spec = {
            "name": INPUT_NAME,
            "layout": "NCHW",
            "dtype": "float32",
            "baked_preprocessing": False,
            "size": list(prep.input_size),
            "channels": prep.channels,
            "dynamic_batch": dynamic_batch,
        }
        metadata = {**build_metadata(config, precision="fp32", input_spec=spec), DEVICE_KEY: device_kind(device)}
        with _atomic.publish(out, overwrite=overwrite) as stage:
            staged = stage / out.name
            with steps.step("compile", "AOTInductor, about a minute for resnet18"):
                torch._inductor.aoti_compile_and_package(
                    program,
                    package_path=os.fspath(staged),
                    inductor_configs={"aot_inductor.metadata": metadata},
                )
            with steps.step("check", "package vs eager"):
                batches = DEFAULT_BATCH_SIZES if dynamic_batch else (1,)
                checks = _compare(staged, module, images, config, batches, device)
    batch: int | str = BATCH_DIM if dynamic_batch else 1
    return ExportResult(
        path=out,
        format="pt2",
        size_bytes=out.stat().st_size,
        opset=None,
        nodes_before=nodes,
        nodes_after=nodes,
        inputs=(TensorInfo(INPUT_NAME, (batch, *prep.input_shape(1)[1:]), "float32"),),
        outputs=(TensorInfo(OUTPUT_NAME, (batch, config.num_classes), "float32"),),
        exporter="aoti",
        seconds=time.perf_counter() - start,
        warnings=(),
        checks=checks,
    )


def load_pt2(path: str | os.PathLike[str], *, device: str | None = None) -> Any:
    """Load a ``.pt2`` package (a callable taking ``images`` on its device); ``ArtifactError`` if
    unreadable.

    Args:
        path: the ``.pt2`` package.
        device: of the kind it was compiled for (``check_package_device``); a CUDA package is loaded
            onto that device's index (default None: the one recorded).
    """
    device = check_package_device(path, device or package_device(path))
    index = device_index(device)
    try:
        with _without_cuda_home_notice():
            return torch._inductor.aoti_load_package(os.fspath(path), device_index=-1 if index is None else index)
    except (RuntimeError, OSError, ValueError) as exc:
        raise ArtifactError(
            f"cannot load pt2 package '{path}': {str(exc).splitlines()[0][:200]}",
            hint="re-export it (export_pt2) with this machine's torch",
        ) from exc


def _raw_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The package's metadata as AOTInductor stores it beside the compiled model
    (``*.wrapper_metadata.json`` in the archive), read without loading native code; a package
    without that file is loaded to ask it."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith(".wrapper_metadata.json")]
            if names:
                raw = json.loads(archive.read(sorted(names)[0]))
                if isinstance(raw, dict):
                    return {str(k): str(v) for k, v in raw.items()}
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ArtifactError(
            f"cannot read pt2 package '{path}': {type(exc).__name__}: {exc}",
            hint="re-export it (export_pt2)",
        ) from exc
    with _without_cuda_home_notice():
        loaded = torch._inductor.aoti_load_package(os.fspath(path))
    return dict(loaded.get_metadata())


def read_pt2_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``rehead.*`` metadata of a ``.pt2`` package, decoded like ``read_onnx_metadata``
    (``device``: ``cpu`` or ``cuda``, the kind it was compiled for, ``cpu`` when not recorded);
    ``MetadataMissingError`` when the package carries none (compiled by another tool).

    Args:
        path: the ``.pt2`` package.
    """
    raw = _raw_metadata(path)
    meta = require_metadata(decode_metadata({k: v for k, v in raw.items() if k.startswith("rehead.")}), path)
    meta.setdefault("device", "cpu")
    return meta


def package_device(path: str | os.PathLike[str]) -> str:
    """``cpu`` or ``cuda``: what the package was compiled for (``rehead.device``); ``cpu`` for a
    package that does not record it (rehead before the record, or another tool).

    Args:
        path: the ``.pt2`` package.
    """
    return str(_raw_metadata(path).get(DEVICE_KEY, "cpu"))


def check_package_device(path: str | os.PathLike[str], device: str) -> str:
    """``device`` if the package was compiled for its kind; ``InvalidArgumentError`` (exit 2)
    otherwise, before anything is loaded or run: AOTInductor does not check its inputs' device, and
    a CPU package fed CUDA tensors (or the reverse) can crash the process.

    Args:
        path: the ``.pt2`` package.
        device: the device to run it on (``cpu``, ``cuda`` or ``cuda:N``).
    """
    compiled = package_device(path)
    if compiled != device_kind(device):
        name = Path(path).name
        raise InvalidArgumentError(
            f"'{name}' was compiled for {compiled}, not for device '{device}'; nothing was run",
            hint=f"run it with device='{compiled}', or compile one for {device_kind(device)} "
            f"(export_pt2(..., device='{device_kind(device)}'))",
            param="device",
        )
    return device


def _compare(
    package: Path,
    module: torch.nn.Module,
    images: np.ndarray,
    config: ModelConfig,
    batches: tuple[int, ...],
    device: str,
) -> dict[str, float]:
    """The package, run on ``device``, against eager on the CPU with the fp32 preset
    (``converters.onnx.checks.check_parity``)."""
    package_fn = load_pt2(package, device=device)

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = package_fn(torch.from_numpy(x).to(device))
        out = out[0] if isinstance(out, (list, tuple)) else out
        return np.asarray(out.float().cpu().numpy(), dtype=np.float32)

    reference = _checks.eager_outputs(module, images)
    parity, checks = _checks.check_parity(
        run, reference, images, config, precision="fp32", batch_sizes=batches, net=module
    )
    _checks.require_parity(parity, what="the pt2 package")
    return checks
