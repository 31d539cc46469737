"""``ValidateSettings``: one record of a run's options, built by the CLI and by the keyword API,
checked before any work, serialised as the report's ``settings`` and read back."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Any

import pytest

from toolkit.cli import main
from toolkit.errors import InvalidArgumentError
from validation import latency, suite
from validation.settings import REFERENCE, LatencySettings, ValidateSettings


def test_keyword_defaults_are_the_records() -> None:
    record = ValidateSettings()
    for name, param in inspect.signature(suite.validate).parameters.items():
        if hasattr(record, name) and name != "latency_settings":
            assert param.default == getattr(record, name), name
    latency = inspect.signature(suite.bench).parameters
    assert latency["duration_s"].default == record.latency_settings.min_duration_s
    assert latency["max_cv"].default == record.latency_settings.max_cv


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"samples": 0}, "samples"),
        ({"batch_sizes": ()}, "batch_sizes"),
        ({"batch_sizes": (1, 70000)}, "batch_sizes"),
        ({"device": "tpu"}, "device"),
        ({"ort_provider": "cuda"}, "ort_provider"),
        ({"preset": "fp64"}, "preset"),
        ({"atol": -1.0}, "atol"),
    ],
)
def test_checked_names_the_bad_field(changes: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        ValidateSettings(**changes).checked()
    assert info.value.param == param


def test_checked_normalises_and_bench_is_latency_only() -> None:
    checked = ValidateSettings(batch_sizes=[4, 1, 4]).checked()
    assert checked.batch_sizes == (4, 1)
    bench = ValidateSettings(batch_sizes=[2, 16]).as_bench()
    assert (bench.parity, bench.latency, bench.samples, bench.data) == (False, True, 16, "random")
    assert ValidateSettings(reference_cache=None).cache_dir is None
    assert ValidateSettings(reference_cache="x/y").cache_dir == Path("x/y")


def test_report_settings_round_trip() -> None:
    record = ValidateSettings(
        batch_sizes=(1, 4), preset="fp16", atol=1e-3, threads=2, seed=7, cross_check=True,
        latency_settings=LatencySettings(warmup_s=0.1, min_duration_s=0.3, max_cv=1.0), max_p99_ms=5.0,
    )
    data = record.to_json()
    assert list(data) == [
        "batch_sizes", "device", "preset", "atol", "rtol", "threads", "seed", "latency", "parity", "cross_check",
        "ort_provider", "runtimes", "ov_precision", "reference",
    ]
    assert data["reference"] == REFERENCE and data["latency"]["max_cv"] == 1.0
    back = ValidateSettings.from_json(data, record.gates_json())
    assert back == record
    assert ValidateSettings.from_json({**data, "latency": None}).latency is False


def test_an_older_report_without_some_keys_still_reads() -> None:
    back = ValidateSettings.from_json({"batch_sizes": [8], "device": "cpu", "latency": None})
    assert back.batch_sizes == (8,) and back.ort_provider is None and not back.latency


def _captured(monkeypatch: pytest.MonkeyPatch, args: list[str]) -> ValidateSettings:
    """The record the CLI hands to ``validation.suite.run`` (stopped there with exit 2)."""
    seen: list[ValidateSettings] = []

    def fake_run(model_dir: Any, artifacts: Any, settings: ValidateSettings, *, progress: bool = False) -> Any:
        seen.append(settings)
        raise InvalidArgumentError("stopped by the test")

    monkeypatch.setattr(suite, "run", fake_run)
    assert main(args) == 2
    return seen[0]


def test_cli_validate_builds_the_record(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    record = _captured(monkeypatch, [
        "validate", str(tmp_path), "a.onnx", "--samples", "4", "--batch-sizes", "2,3", "--seed", "5",
        "--no-latency", "--max-cv", "3", "--min-speedup", "1.5", "--require-real-data",
    ])
    expected = ValidateSettings(
        samples=4, batch_sizes=[2, 3], seed=5, latency=False, latency_settings=LatencySettings(max_cv=3.0),
        min_speedup=1.5, require_real_data=True,
    )
    assert record == expected


def test_cli_without_flags_builds_the_records_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The CLI writes no default of its own: each option's default is the record's."""
    record = _captured(monkeypatch, ["validate", str(tmp_path), "a.onnx"])
    assert record.replace(batch_sizes=tuple(record.batch_sizes)) == ValidateSettings()
    bench = _captured(monkeypatch, ["bench", str(tmp_path), "a.onnx"])
    assert bench.replace(batch_sizes=tuple(bench.batch_sizes)) == ValidateSettings().as_bench()


def test_latency_settings_are_declared_with_the_run_options() -> None:
    """``validation.latency`` measures with the record declared in ``validation.settings`` (light)."""
    assert latency.LatencySettings is LatencySettings
    assert ValidateSettings().latency_settings == LatencySettings()


def test_cli_bench_builds_the_bench_record(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    record = _captured(monkeypatch, ["bench", str(tmp_path), "a.onnx", "--batch-sizes", "1,8", "--duration", "0.5"])
    expected = ValidateSettings(latency_settings=LatencySettings(min_duration_s=0.5)).as_bench()
    assert record == expected
    assert dataclasses.replace(record, parity=True) != expected
