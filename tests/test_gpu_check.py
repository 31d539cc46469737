"""benchmarks/gpu/check.py --dry-run: the GPU first-run script's plan, wheel list and time budget
are consistent (checked on CPU in CI; the run itself needs the GPU machine)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu" / "check.py"


@pytest.fixture(scope="module")
def check() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def test_dry_run_finds_the_plan_consistent() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--dry-run"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "consistent" in done.stdout and "INCONSISTENT" not in done.stdout


def test_the_plan_covers_what_the_issue_asks(check: ModuleType, tmp_path: Path) -> None:
    steps = {s.name: s for s in check.plan(tmp_path, tmp_path)}
    assert sum(s.budget_s for s in steps.values()) <= 480
    lines = {name: [" ".join(map(str, argv)) for argv in s.commands] for name, s in steps.items()}
    for model in ("resnet18", "mobilenet_v3_small", "convnext_tiny"):
        assert any(f"export pt2 {tmp_path / model} " in c and "--device cuda" in c for c in lines["export-pt2"])
        for kind in ("validate", "bench"):
            assert any(f"{kind} {tmp_path / model} eager:fp16 eager:bf16" in c and "--batch-sizes 1,8,64" in c
                       and "--device cuda" in c for c in lines[kind])  # fmt: skip
    assert "--amp" in lines["finetune-amp"][0] and "--device cuda" in lines["finetune-amp"][0]
    assert dict(steps["gpu-tests"].env) == {"REHEAD_REQUIRE_GPU": "1"} and "-m gpu" in lines["gpu-tests"][0]


def test_dry_run_reports_each_inconsistency(check: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert check.dry_run(tmp_path, tmp_path) == []
    monkeypatch.setattr(check, "BUDGET_S", 300)
    assert any("time plan sums to 455 s > 300 s" in p for p in check.dry_run(tmp_path, tmp_path))
    monkeypatch.setattr(check, "BUDGET_S", 480)
    assert check._parses(check.rehead("bench", "m", "eager:fp16", "--bogus")) == "No such option: --bogus"
    assert "Invalid value for '--duration'" in (check._parses(check.rehead("bench", "m", "x", "--duration", "s")) or "")
    monkeypatch.setitem(check.NOT_RUN, "tests/toolkit/test_device.py::test_gone", ("needs nothing", "tensorrt"))
    monkeypatch.setattr(check, "GPU_IMAGE", check.GPU_IMAGE - {"timm"})
    problems = check.dry_run(tmp_path, tmp_path)
    assert any("no test test_gone" in p for p in problems)
    assert any("'timm' is neither on the GPU machine's image nor in wheels.txt" in p for p in problems)
    wheel_list = tmp_path / "wheels.txt"
    wheel_list.write_text("timm-1.0.0-py3-none-any.whl 2500000\nbig-1.0-cp311-cp311-win_amd64.whl 20000000\n")
    monkeypatch.setattr(check, "WHEEL_LIST", wheel_list)
    monkeypatch.setattr(check, "WHEEL_DIR", tmp_path / "absent")
    problems = check.dry_run(tmp_path, tmp_path)
    assert not any("timm" in p for p in problems)
    assert any("'big-1.0-cp311-cp311-win_amd64.whl' is not a wheel for CPython 3.12" in p for p in problems)
    assert any("MiB of wheels > 16 MiB" in p for p in problems)
