"""The check every engine gets before it is written: the engine against ONNX Runtime on its ONNX.

A built or refitted engine runs the default parity inputs (rehead's seeded random images at the
profile's opt size) at the batch sizes its profile holds, and is judged per class slice with the
tolerance preset of its precision: a refit is judged exactly like a fresh build, bias included
(TensorRT's known issue: a ``REFIT`` build may drop a GEMM bias, and the head is a GEMM with a
bias). ``refuse_mismatch`` is the failed verdict's error (``GateFailedError``, exit 1).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NoReturn

import numpy as np

from converters.compare import DEFAULT_BATCH_SIZES, ClassSlice, ParityResult, head_slices, random_images
from converters.tensorrt.profile import Profile
from converters.tensorrt.source import OnnxFacts
from toolkit.errors import GateFailedError
from toolkit.records import HeadSpec


def check_inputs(facts: OnnxFacts, profile: Profile, *, samples: int = 32, seed: int = 0) -> np.ndarray:
    """The default parity inputs for the engine: rehead's seeded random images at the profile's
    opt size (uint8 pixels for a graph with baked preprocessing).

    Args:
        facts: the ONNX the engine is built from.
        profile: the engine's profile (its opt shape sets the image size).
        samples: how many images (default 32).
        seed: the random seed (default 0).
    """
    import onnx

    shape = (samples, *profile.opt[1:])
    if facts.input_dtype == onnx.TensorProto.UINT8:
        return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)
    prep = facts.preprocessing
    if prep is not None and prep.input_shape(samples) == shape:
        return random_images(prep, samples, seed)
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def check_batch_sizes(profile: Profile) -> tuple[int, ...]:
    """``validate``'s default batch sizes that the profile holds, else its min and max.

    Args:
        profile: the engine's profile.
    """
    low, high = profile.min[0], profile.max[0]
    inside = tuple(b for b in DEFAULT_BATCH_SIZES if low <= b <= high)
    return inside or tuple(sorted({low, high}))


def slices_of(meta: Mapping[str, Any], num_classes: int) -> tuple[list[ClassSlice], tuple[str, ...] | None]:
    """Class slices (all, kept, new) and class names from the rehead record; ``all`` alone without one.

    Args:
        meta: rehead's record from the ONNX metadata (empty for another tool's ONNX).
        num_classes: the width of the model's output.
    """
    head = meta.get("head_spec")
    names = meta.get("class_names")
    if isinstance(head, Mapping) and isinstance(names, list) and len(names) == num_classes:
        spec = HeadSpec.from_json(head)
        return head_slices(num_classes, spec.kept_indices, spec.new_indices), tuple(str(n) for n in names)
    return head_slices(num_classes, (), ()), None


def onnx_reference(facts: OnnxFacts, images: np.ndarray) -> np.ndarray:
    """ONNX Runtime (CPU) on the ONNX file: what the engine must compute (first output, float32).

    Args:
        facts: the ONNX file.
        images: the inputs, run in chunks of 32 (or of the graph's fixed batch).
    """
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
    the preset of ``precision``, on the default parity inputs at the batch sizes the profile holds.

    Args:
        run: the engine: a batch in, its first output out.
        facts: the ONNX the engine was built or refitted from.
        profile: the engine's profile.
        precision: the engine's precision, which picks the tolerance preset.

    Returns:
        The verdict and the checks an ``ExportResult`` reports.
    """
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
    """The verdict as the sidecar stores it (``EngineRecord.parity``).

    Args:
        result: the engine's verdict (``judge_engine``).
    """
    first = result.failures[0] if result.failures else None
    return {
        "reference": "onnxruntime-cpu on the source ONNX",
        "preset": result.tolerance.preset,
        "passed": result.passed,
        "failures": len(result.failures),
        "first_failure": first.to_json() if first is not None else None,
    }


def refuse_mismatch(result: ParityResult, *, what: str) -> NoReturn:
    """Raise the failed verdict's ``GateFailedError`` (exit 1; nothing was written).

    Args:
        result: the failed verdict.
        what: the engine, as the message names it.
    """
    from converters.onnx.checks import summary

    raise GateFailedError(
        f"{what} does not match ONNX Runtime on its ONNX within the {result.tolerance.preset} preset: "
        f"{summary(result)}",
        hint="nothing was written; rebuild without refit flags, or pass allow_mismatch=True to keep it "
        "(the sidecar then records the failure)",
        param="allow_mismatch",
    )
