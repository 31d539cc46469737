"""``rehead validate`` and ``rehead bench``: the flags build one ``ValidateSettings`` record, which
``validation.suite.run`` reads (the library never sees Typer).

Each option takes its default from the record's field (``ValidateSettings``, and
``LatencySettings`` for the timing), so that ``--help`` shows it and no default is written twice;
``validation.settings`` is light (no NumPy, torch or ONNX Runtime), so importing it here keeps
``rehead --help`` fast (``tests/test_cli_startup.py``)."""

from __future__ import annotations

from pathlib import Path

import typer

from toolkit.cli._app import app
from toolkit.cli._parse import int_list
from validation.settings import LatencySettings, ValidateSettings

_ARTIFACTS_HELP = "Exported artifacts (.onnx, .xml, .pt2, .engine/.plan) or eager:fp16 / eager:bf16."
_RUNTIMES = ",".join(ValidateSettings.runtimes)
_RUNTIME_HELP = (
    "Who runs .onnx artifacts: onnxruntime | openvino, or both (onnxruntime,openvino: one row each, side by side)."
)
_OV_PRECISION_HELP = "OpenVINO's inference precision for .xml (and --runtime openvino): f32 | bf16 | f16."
_ORT_PROVIDER_HELP = (
    "ONNX Runtime execution provider for .onnx artifacts with --device cuda: cuda | tensorrt "
    "(needs onnxruntime-gpu; default: the device's default)."
)
#: the record's batch sizes as ``--batch-sizes`` spells them
_BATCH_SIZES = ",".join(str(size) for size in ValidateSettings.batch_sizes)


def _sizes(text: str) -> list[int]:
    sizes = int_list(text, flag="--batch-sizes")
    return sizes or [1]


def _console() -> object:
    """A rich console on stdout; 160 columns when not a terminal (CI logs), so rows do not wrap."""
    import sys

    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 160)


def _check_outputs(overwrite: bool, *paths: Path | None, device: str) -> None:
    """Refuse a bad device, then existing report outputs, before any work is done (no clobber
    without --overwrite)."""
    from toolkit import _atomic
    from toolkit._args import check_device

    check_device(device)
    for path in paths:
        if path is not None:
            _atomic.check_output(path, overwrite=overwrite)


def _print_timings(timing: dict[str, float]) -> None:
    """One line per entry of ``report.timing`` (stage -> seconds); nothing when it is empty."""
    if not timing:
        return
    width = max(len(key) for key in timing)
    typer.echo("timings (seconds):")
    for key, seconds in timing.items():
        typer.echo(f"  {key:<{width}}  {seconds:8.2f}")


@app.command()
def validate(
    model_dir: Path = typer.Argument(
        ..., metavar="MODEL_DIR", help="Model directory (model.safetensors + config.json)."
    ),
    artifacts: list[str] = typer.Argument(..., metavar="ARTIFACT", help=_ARTIFACTS_HELP),
    data: str | None = typer.Option(
        ValidateSettings.data,
        "--data",
        help="Inputs: random | digits | DIR | FILE.npz (default: held-out images of the data the model directory "
        "records it was fine-tuned on, else random, said in every report).",
    ),
    require_real_data: bool = typer.Option(
        False, "--require-real-data", help="Fail (exit 1) when parity was checked on random inputs only (for CI)."
    ),
    samples: int = typer.Option(ValidateSettings.samples, "--samples", help="Number of parity inputs."),
    batch_sizes: str = typer.Option(_BATCH_SIZES, "--batch-sizes", help="Batch sizes to check, e.g. 1,8."),
    device: str = typer.Option(ValidateSettings.device, "--device", help="cpu | cuda."),
    preset: str | None = typer.Option(
        ValidateSettings.preset, "--preset", help="fp32 | fp16 | bf16 | int8 | auto (default: from the precision)."
    ),
    atol: float | None = typer.Option(
        ValidateSettings.atol, "--atol", help="Absolute tolerance (overrides the preset)."
    ),
    rtol: float | None = typer.Option(
        ValidateSettings.rtol, "--rtol", help="Relative tolerance (overrides the preset)."
    ),
    threads: int | None = typer.Option(
        ValidateSettings.threads, "--threads", help="Intra-op threads (default: PyTorch's)."
    ),
    seed: int = typer.Option(ValidateSettings.seed, "--seed", help="Seed for random inputs and sample draws."),
    min_duration_s: float = typer.Option(
        LatencySettings.min_duration_s, "--duration", help="Seconds of timed runs per latency measurement."
    ),
    warmup_s: float = typer.Option(
        LatencySettings.warmup_s, "--warmup", help="Seconds of warm-up runs before timing."
    ),
    max_cv: float = typer.Option(
        LatencySettings.max_cv,
        "--max-cv",
        help="Largest coefficient of variation of a conclusive latency measurement.",
    ),
    no_latency: bool = typer.Option(False, "--no-latency", help="Check parity only."),
    report_dir: Path | None = typer.Option(None, "--report", help="Folder for report.html/.json, junit.xml."),
    json_path: Path | None = typer.Option(None, "--json", help="Write the JSON report here."),
    junit_path: Path | None = typer.Option(None, "--junit", help="Write a JUnit XML report here."),
    max_p99_ms: float | None = typer.Option(
        ValidateSettings.max_p99_ms, "--max-p99-ms", help="Gate: p99 latency at most X ms."
    ),
    min_speedup: float | None = typer.Option(
        ValidateSettings.min_speedup, "--min-speedup", help="Gate: at least Y times faster than eager (p50)."
    ),
    cross_check: bool = typer.Option(
        False, "--cross-check", help="Compare artifacts exported from another model directory on purpose."
    ),
    ort_provider: str | None = typer.Option(ValidateSettings.ort_provider, "--ort-provider", help=_ORT_PROVIDER_HELP),
    runtime: str = typer.Option(_RUNTIMES, "--runtime", help=_RUNTIME_HELP),
    ov_precision: str = typer.Option(ValidateSettings.ov_precision, "--ov-precision", help=_OV_PRECISION_HELP),
    timings: bool = typer.Option(False, "--timings", help="After the table, print where the time went (seconds)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing report outputs."),
) -> None:
    """Prove each ARTIFACT matches the eager model (kept and new classes checked on their own) and
    time it. Exit 1 when parity or a latency gate fails."""
    _check_outputs(overwrite, report_dir, json_path, junit_path, device=device)
    from toolkit.cli.export import _given, _off, _on
    from validation.report import write_reports
    from validation.report.console import print_summary
    from validation.suite import run

    settings = ValidateSettings(
        data=data,
        samples=samples,
        batch_sizes=_sizes(batch_sizes),
        device=device,
        preset=preset,
        atol=atol,
        rtol=rtol,
        threads=threads,
        seed=seed,
        latency_settings=LatencySettings(warmup_s=warmup_s, min_duration_s=min_duration_s, max_cv=max_cv),
        max_p99_ms=max_p99_ms,
        min_speedup=min_speedup,
        ort_provider=ort_provider,
        runtimes=tuple(runtime.split(",")),
        ov_precision=ov_precision,
        **_given(  # the on/off flags, only when given
            latency=_off(no_latency), cross_check=_on(cross_check), require_real_data=_on(require_real_data)
        ),
    )
    result = run(model_dir, artifacts, settings, progress=True)
    print_summary(result, _console())
    if timings:
        _print_timings(result.timing)
    written = write_reports(
        result, report_dir=report_dir, json_path=json_path, junit_path=junit_path, overwrite=overwrite
    )
    for kind, path in written.items():
        typer.echo(f"wrote {kind} report: {path}", err=True)
    result.raise_for_status(reports=written)


@app.command()
def bench(
    model_dir: Path = typer.Argument(
        ..., metavar="MODEL_DIR", help="Model directory (model.safetensors + config.json)."
    ),
    artifacts: list[str] = typer.Argument(..., metavar="ARTIFACT", help=_ARTIFACTS_HELP),
    batch_sizes: str = typer.Option(_BATCH_SIZES, "--batch-sizes", help="Batch sizes to time, e.g. 1,8."),
    threads: int | None = typer.Option(
        ValidateSettings.threads, "--threads", help="Intra-op threads (default: PyTorch's)."
    ),
    min_duration_s: float = typer.Option(
        LatencySettings.min_duration_s, "--duration", help="Seconds of timed runs per measurement."
    ),
    warmup_s: float = typer.Option(
        LatencySettings.warmup_s, "--warmup", help="Seconds of warm-up runs before timing."
    ),
    max_cv: float = typer.Option(
        LatencySettings.max_cv, "--max-cv", help="Largest coefficient of variation of a conclusive measurement."
    ),
    device: str = typer.Option(ValidateSettings.device, "--device", help="cpu | cuda."),
    json_path: Path | None = typer.Option(None, "--json", help="Write the JSON report here."),
    cross_check: bool = typer.Option(
        False, "--cross-check", help="Time artifacts exported from another model directory on purpose."
    ),
    ort_provider: str | None = typer.Option(ValidateSettings.ort_provider, "--ort-provider", help=_ORT_PROVIDER_HELP),
    runtime: str = typer.Option(_RUNTIMES, "--runtime", help=_RUNTIME_HELP),
    ov_precision: str = typer.Option(ValidateSettings.ov_precision, "--ov-precision", help=_OV_PRECISION_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --json file."),
) -> None:
    """Latency of eager PyTorch and every ARTIFACT (p50/p90/p95/p99, throughput, speed-up), and of
    the old head against the new head."""
    _check_outputs(overwrite, json_path, device=device)
    from toolkit.cli.export import _given, _on
    from validation.report import write_reports
    from validation.report.console import print_summary
    from validation.suite import run

    settings = ValidateSettings(
        batch_sizes=_sizes(batch_sizes),
        threads=threads,
        device=device,
        latency_settings=LatencySettings(warmup_s=warmup_s, min_duration_s=min_duration_s, max_cv=max_cv),
        ort_provider=ort_provider,
        runtimes=tuple(runtime.split(",")),
        ov_precision=ov_precision,
        **_given(cross_check=_on(cross_check)),
    ).as_bench()
    result = run(model_dir, artifacts, settings, progress=True)
    print_summary(result, _console())
    for kind, path in write_reports(result, json_path=json_path, overwrite=overwrite).items():
        typer.echo(f"wrote {kind} report: {path}", err=True)
