"""Which artifact of a bundle runs here, on which backend and device, and why the others did not.

The order is the ``Predictor``'s (its module docstring): a compatible TensorRT engine, then ONNX
with ONNX Runtime (CUDA when it can), where on an x86 CPU with OpenVINO the CPU runtimes of the
preferred precision are timed side by side and the fastest wins, then an OpenVINO IR alone,
then a ``.pt2`` package compiled for this kind of device. Passed artifacts come before forced
ones. File knowledge (kind -> backend) comes from the artifact registry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from toolkit._args import check_device
from toolkit._device import device_kind
from toolkit.deploy.manifest import BundleArtifact, Manifest
from toolkit.errors import ArtifactError, HardwareUnavailableError, InvalidArgumentError

BACKENDS = ("tensorrt", "onnxruntime", "openvino", "pt2")
#: side-by-side timing of the CPU runtimes at load: rounds x runs per round, batch 1
CHOICE_ROUNDS, CHOICE_RUNS = 5, 4


def _backend(kind: str) -> str:
    """The backend that runs an artifact of ``kind`` (the artifact registry says)."""
    from converters import artifact

    return artifact.by_kind(kind).backend


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _ort_cuda_available() -> bool:
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return "CUDAExecutionProvider" in ort.get_available_providers() and _cuda_available()


def _precision_rank(artifact: BundleArtifact, gpu: bool) -> int:
    order = ("fp16", "fp32", "int8") if gpu else ("fp32", "int8", "fp16")
    return order.index(artifact.precision) if artifact.precision in order else len(order)


def _tensorrt_usable(root: Path, artifact: BundleArtifact, device: str) -> str | None:
    """None when this engine can run here, else why not (TensorRT, GPU or the sidecar's build)."""
    from converters.tensorrt.record import check_compatible, read_record
    from converters.tensorrt.runtime import gpu_info, tensorrt_version

    version = tensorrt_version()
    if version is None:
        return "TensorRT is not installed"
    gpu = gpu_info(device if device.startswith("cuda") else "cuda")
    if gpu is None:
        return "no CUDA GPU is visible"
    try:
        check_compatible(read_record(root / artifact.file), tensorrt_version=version, gpu=gpu)
    except ArtifactError as exc:
        return exc.message
    return None


def choose_artifact(
    root: Path, manifest: Manifest, *, backend: str | None, device: str | None
) -> tuple[BundleArtifact, str, str, tuple[str, ...]]:
    """The artifact to run, its backend, the device, and why better ones were passed over.

    Args:
        root: the bundle's folder.
        manifest: the bundle's manifest.
        backend: the backend asked for (an alias such as ``ort`` or ``trt`` too), or None for the best.
        device: the device asked for, or None for the GPU when the backend can use one.
    """
    *choice, runner = choose(root, manifest, backend=backend, device=device, threads=None)
    if runner is not None:
        runner.close()
    return tuple(choice)  # type: ignore[return-value]


def choose(
    root: Path, manifest: Manifest, *, backend: str | None, device: str | None, threads: int | None
) -> tuple[BundleArtifact, str, str, tuple[str, ...], Any]:
    """``choose_artifact``, plus the winner's loaded runner when choosing opened it (else None).

    Args:
        root: the bundle's folder.
        manifest: the bundle's manifest.
        backend: the backend asked for, or None for the best.
        device: the device asked for, or None.
        threads: the threads the chosen runner will run with (the CPU runtimes are timed with them).
    """
    if backend is not None and backend not in BACKENDS:
        aliases = {"onnx": "onnxruntime", "ort": "onnxruntime", "trt": "tensorrt", "ov": "openvino"}
        if backend not in aliases:
            raise InvalidArgumentError(
                f"unknown backend {backend!r}", hint=f"choose one of {', '.join(BACKENDS)}", param="backend"
            )
        backend = aliases[backend]
    if device is not None:
        device = check_device(device)
    skipped: list[str] = []
    # passed artifacts first, then by backend preference
    ordered = sorted(manifest.artifacts, key=lambda a: (not a.passed, BACKENDS.index(_backend(a.kind))))
    # OpenVINO runs ONNX files too
    candidates = [
        a for a in ordered if backend in (None, _backend(a.kind)) or (backend == "openvino" and a.kind == "onnx")
    ]
    if not candidates:
        have = sorted({_backend(a.kind) for a in manifest.artifacts})
        raise InvalidArgumentError(
            f"the bundle holds no artifact for backend '{backend}'",
            hint=f"it holds {', '.join(have)}; choose one of those or leave the backend unset",
            param="backend",
        )
    for passed in (True, False):
        group = [a for a in candidates if a.passed == passed]
        engines = [a for a in group if a.kind == "tensorrt"]
        if engines and (device is None or device.startswith("cuda")):
            for engine in engines:
                why = _tensorrt_usable(root, engine, device or "cuda")
                if why is None:
                    return engine, "tensorrt", device or "cuda", tuple(skipped), None
                skipped.append(f"{engine.file}: {why}")
                if backend == "tensorrt":
                    raise HardwareUnavailableError(f"cannot run '{engine.file}' here: {why}", param="backend")
        elif engines:
            skipped.extend(f"{e.file}: TensorRT needs a CUDA device, not {device}" for e in engines)
        onnx = [a for a in group if a.kind == "onnx"]
        irs = [a for a in group if a.kind == "openvino"]
        on_gpu = (device.startswith("cuda") if device is not None else _ort_cuda_available()) and bool(onnx)
        if onnx or irs:
            if on_gpu or not _openvino_here():
                if onnx and backend != "openvino":
                    best = min(onnx, key=lambda a: _precision_rank(a, on_gpu))
                    return best, "onnxruntime", device or ("cuda" if on_gpu else "cpu"), tuple(skipped), None
                skipped.extend(f"{a.file}: OpenVINO is not installed (or this is no x86 CPU)" for a in irs)
            else:
                entry, chosen, why, runner = _cpu_choice(root, manifest, onnx, irs, backend, threads)
                return entry, chosen, "cpu", (*skipped, why), runner
        for package in (a for a in group if a.kind == "pt2"):
            from converters.pt2.export import package_device

            # a package runs only on the kind of device it was compiled for (AOTInductor does not check)
            compiled = package_device(root / package.file)
            if device is None and (compiled == "cpu" or _cuda_available()):
                return package, "pt2", compiled, tuple(skipped), None
            if device is not None and device_kind(device) == compiled:
                return package, "pt2", device, tuple(skipped), None
            skipped.append(f"{package.file}: compiled for {compiled}, not for {device or 'this machine (no CUDA GPU)'}")
    if backend == "tensorrt" and device is not None and not device.startswith("cuda"):
        raise InvalidArgumentError(
            f"TensorRT engines run on a CUDA GPU, not on '{device}'", hint="use device='cuda'", param="device"
        )
    raise HardwareUnavailableError(
        "no artifact of the bundle can run here: " + "; ".join(skipped),
        hint="package an ONNX artifact too, or run where the engine was built",
    )


def _openvino_here() -> bool:
    """OpenVINO is installed and this is an x86 CPU (the target its CPU plugin is tuned for)."""
    import importlib.util
    import platform

    return platform.machine().lower() in ("x86_64", "amd64") and importlib.util.find_spec("openvino") is not None


def _cpu_choice(
    root: Path,
    manifest: Manifest,
    onnx: list[BundleArtifact],
    irs: list[BundleArtifact],
    backend: str | None,
    threads: int | None,
) -> tuple[BundleArtifact, str, str, Any]:
    """The fastest CPU runtime for the preferred precision, timed here side by side; why; and the
    winner's loaded runner when they were timed (None for a single candidate)."""
    pool = onnx or irs
    best = min(pool, key=lambda a: _precision_rank(a, False))
    contenders: list[tuple[BundleArtifact, str]] = []
    if onnx:
        if backend in (None, "onnxruntime"):
            contenders.append((best, "onnxruntime"))
        if backend in (None, "openvino"):
            contenders.append((best, "openvino"))
    if backend in (None, "openvino"):
        contenders += [(a, "openvino") for a in irs if a.precision == best.precision]
    if len(contenders) == 1:
        entry, chosen = contenders[0]
        return entry, chosen, f"{_label(entry, chosen)}: the only {best.precision} candidate here", None
    times, runner = _time_contenders(root, manifest, contenders, threads)
    fastest = min(range(len(contenders)), key=times.__getitem__)
    entry, chosen = contenders[fastest]
    others = ", ".join(f"{_label(*c)} {times[i]:.2f} ms" for i, c in enumerate(contenders) if i != fastest)
    why = (
        f"{_label(entry, chosen)}: fastest here at batch 1 ({times[fastest]:.2f} ms against {others}; "
        f"{CHOICE_ROUNDS} interleaved rounds, {best.precision})"
    )
    return entry, chosen, why, runner


def _label(entry: BundleArtifact, backend: str) -> str:
    return f"{Path(entry.file).name} [{backend}]"


def _time_contenders(
    root: Path, manifest: Manifest, contenders: list[tuple[BundleArtifact, str]], threads: int | None
) -> tuple[list[float], Any]:
    """Median batch-1 milliseconds of each (artifact, runtime), timed in interleaved rounds with
    the threads the predictor will run with; and the fastest's runner, loaded (the rest are closed)."""
    import functools

    from converters.runners.registry import open_runner
    from converters.timing import interleaved_ms

    runners: list[Any] = []
    try:
        for entry, backend in contenders:
            runtime = "openvino" if backend == "openvino" and entry.kind == "onnx" else None
            runner = open_runner(root / entry.file, device="cpu", threads=threads, prep=manifest.prep, runtime=runtime)
            runners.append(runner)
            runner.load()
        # a fixed-batch artifact runs its own batch: compared per image
        batches = [r.fixed_batch or 1 for r in runners]
        calls = {
            str(i): functools.partial(r.run, np.zeros(manifest.prep.input_shape(n), dtype=np.float32))
            for i, (r, n) in enumerate(zip(runners, batches, strict=True))
        }
        timed = interleaved_ms(calls, rounds=CHOICE_ROUNDS, per_round=CHOICE_RUNS)
        times = [timed[str(i)] / batches[i] for i in range(len(runners))]
        winner = runners.pop(min(range(len(times)), key=times.__getitem__))
        return times, winner
    finally:
        for runner in runners:
            runner.close()
