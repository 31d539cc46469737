"""``assert_parity``: a parity check for users' own test suites (no latency, no progress output)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from converters.runners.base import Runner
from toolkit.models.model_dir import LoadedModel
from validation.result import ValidationReport


def assert_parity(
    model_dir: str | os.PathLike[str] | LoadedModel,
    artifact: str | os.PathLike[str] | Runner,
    *,
    data: str | os.PathLike[str] | np.ndarray = "random",
    samples: int = 16,
    batch_sizes: Sequence[int] = (1, 4),
    preset: str | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    device: str = "cpu",
    threads: int | None = None,
    localise: bool = True,
) -> ValidationReport:
    """Raise ``AssertionError`` listing every failing output/slice, one per line (with max|Δ|,
    cosine, top-1 agreement and the worst class), unless ``artifact`` matches the eager model of
    ``model_dir``; return the report.

    Errors in the inputs themselves (wrong shape, missing files) raise the usual ``ReheadError``
    subclasses.

    Args:
        model_dir: the model directory (or a ``LoadedModel``) the artifact was exported from.
        artifact: the artifact's path, ``eager:<precision>`` or a ``Runner``.
        data: the parity inputs, as in ``validate`` (default ``random``: 16 seeded random inputs).
        samples: how many inputs (default 16).
        batch_sizes: the batch sizes to run at (default 1 and 4).
        preset: the tolerance preset (default None: the one implied by the artifact's precision).
        atol: absolute tolerance overriding the preset's (default None).
        rtol: relative tolerance overriding the preset's (default None).
        device: ``cpu`` (the default), ``cuda`` or ``cuda:N``.
        threads: intra-op threads (default None: PyTorch's current setting).
        localise: on a failure of an fp32 ONNX artifact, find the first diverging tensor (default True).
    """
    __tracebackhide__ = True
    from validation.suite import validate

    report = validate(
        model_dir, [artifact], data=data, samples=samples, batch_sizes=batch_sizes, preset=preset, atol=atol,
        rtol=rtol, device=device, threads=threads, latency=False, head_latency=False, localise=localise,
        progress=False,
    )
    result = report.artifacts[0]
    parity = result.parity
    if parity is not None and result.parity_status == "fail":
        lines = "\n  ".join(f.message for f in parity.failures)
        where = ""
        if parity.localisation:
            loc = parity.localisation
            where = f"\n  localisation: {loc['status']}: {loc.get('reason', '')}"
        raise AssertionError(f"parity failed for {result.name}:\n  {lines}{where}")
    return report
