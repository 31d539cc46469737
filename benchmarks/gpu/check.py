"""The GPU half, on its first run: one script for a bare GPU machine, under 8 minutes.

Run it first whenever a GPU machine is available (issue 24), from the repository root:

    python3 benchmarks/gpu/check.py --out "$OUT"        # on the GPU machine
    python3 benchmarks/gpu/check.py --dry-run           # anywhere (CI): is the plan consistent?

The GPU machine this project is lent (an H200) has Python 3.12 with torch+CUDA,
onnxruntime (CPU), onnx, onnxscript, safetensors, timm, typer, rich, pytest and the rest of
``GPU_IMAGE`` below, no TensorRT, no onnxruntime-gpu and no network. The script installs rehead
from the working tree without its dependencies (``pip install --no-deps --no-index -e .``, plus
the wheels ``wheels.txt`` lists, carried in ``.whl/``), then, each step with its own time budget
(``plan``):

1. the ``gpu``-marked tests with ``REHEAD_REQUIRE_GPU=1`` (a skip is a failure), minus those this
   machine cannot run (``NOT_RUN``: TensorRT, onnxruntime-gpu, two GPUs), reported as not run with
   the reason;
2. resnet18, mobilenet_v3_small and convnext_tiny at 224 (random backbones: no downloads): a
   ``.pt2`` compiled for CUDA, ``rehead validate`` (parity of eager fp16/bf16 and the pt2 against
   eager fp32) and ``rehead bench --device cuda`` (batch 1, 8, 64, CUDA-event timing, head-only
   latency); CUDA graphs are offered by the TensorRT runner only, so not here;
3. one short AMP fine-tune (fp16 + grad scaler) on the bundled digits.

It writes ``gpu-check.json`` (every step's command, exit code, seconds and output tail, the test
counts, each model's parity and latency) and ``gpu-check.log`` under ``--out``. Commit the JSON as
``benchmarks/results/gpu-check-<device>.json`` and fix what it shows broken.

``--dry-run`` runs nothing on a GPU: it checks that the wheel list covers what rehead needs beyond
the machine's image and fits the carry limit, that every rehead command of the plan parses
(Typer's own parser, not just ``--help``), that every test file and not-run test exists, and that
the budgets sum under 8 minutes. tests/test_gpu_check.py runs it in CI.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import datetime
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
WHEEL_LIST = Path(__file__).with_name("wheels.txt")
WHEEL_DIR = ROOT / ".whl"
#: the whole run, seconds (the device tool allows 10 minutes a command; 2 are kept for the start)
BUDGET_S = 480
#: what may travel to the machine, working tree included (the device tool's limit)
CARRY_LIMIT = 64 * 2**20
#: of which the wheels may take this much
WHEEL_LIMIT = 16 * 2**20
MODELS = ("resnet18", "mobilenet_v3_small", "convnext_tiny")
BATCHES = "1,8,64"

#: Python packages of the GPU machine's image (/work/.library/device/KINDS.md, read 2026-11-17), by
#: the names pyproject.toml uses. Anything rehead or the gpu tests need that is not here must be in
#: wheels.txt.
GPU_IMAGE = frozenset((
    "torch", "torchvision", "numpy", "safetensors", "onnx", "onnxscript", "onnx-ir", "typer", "rich",
    "scikit-learn", "pillow", "onnxruntime", "matplotlib", "pytest", "pytest-timeout", "hypothesis", "timm",
    "setuptools", "packaging", "protobuf", "huggingface-hub",
))  # fmt: skip
#: what the plan needs: rehead's own dependencies, and those of the gpu tests
NEEDED = (
    "torch", "torchvision", "numpy", "safetensors", "onnx", "onnxscript", "typer", "rich",
    "scikit-learn", "pillow", "onnxruntime", "pytest", "pytest-timeout", "hypothesis", "timm", "setuptools",
)  # fmt: skip

#: the test files holding gpu-marked tests
GPU_TEST_FILES = (
    "tests/toolkit/test_device.py",
    "tests/finetune/test_trainer.py",
    "tests/finetune/test_distributed.py",
    "tests/converters/onnx/test_ort_providers.py",
    "tests/converters/tensorrt/test_gpu.py",
    "tests/reliability/test_faults.py",
    "tests/reliability/test_more_inputs.py",
)
#: gpu tests this machine may not be able to run: node id -> (what it needs, the probe's name)
NOT_RUN: dict[str, tuple[str, str]] = {
    "tests/converters/tensorrt/test_gpu.py": ("needs TensorRT (not on the GPU machine)", "tensorrt"),
    "tests/reliability/test_faults.py::test_row24_sigkill_during_refit": ("needs TensorRT", "tensorrt"),
    "tests/reliability/test_more_inputs.py::test_row17_beyond_a_tensorrt_profile_is_a_clear_error": (
        "needs TensorRT",
        "tensorrt",
    ),
    "tests/converters/onnx/test_ort_providers.py::test_validate_on_the_cuda_ep": (
        "needs onnxruntime-gpu (the CUDA execution provider)",
        "ort-cuda",
    ),
    "tests/converters/onnx/test_ort_providers.py::test_a_cuda_session_runs_on_cuda_without_fallback_or_tf32": (
        "needs onnxruntime-gpu (the CUDA execution provider)",
        "ort-cuda",
    ),
    "tests/finetune/test_distributed.py::test_nccl_run_on_gpus[2]": ("needs two CUDA GPUs", "two-gpus"),
}


def _probe(name: str) -> bool:
    """Whether this machine has what a NOT_RUN test needs."""
    if name == "tensorrt":
        return importlib.util.find_spec("tensorrt") is not None
    if name == "ort-cuda":
        try:
            import onnxruntime as ort
        except ImportError:
            return False
        return "CUDAExecutionProvider" in ort.get_available_providers()
    if name == "two-gpus":
        import torch

        return bool(torch.cuda.device_count() >= 2)
    raise ValueError(name)


@dataclasses.dataclass(frozen=True)
class Step:
    """One step of the plan: its commands run side by side, together within ``budget_s`` seconds.
    ``needs``: files that must exist first (an earlier step's outputs), else it is not run."""

    name: str
    budget_s: int
    commands: tuple[tuple[str, ...], ...]
    needs: tuple[Path, ...] = ()
    env: tuple[tuple[str, str], ...] = ()


def rehead(*args: str | Path) -> tuple[str, ...]:
    return (sys.executable, "-m", "toolkit.cli", *map(str, args))


def wheels() -> list[tuple[str, int]]:
    """``wheels.txt``: one ``<wheel file name> <bytes>`` a line; ``#`` starts a comment."""
    found = []
    for line in WHEEL_LIST.read_text().splitlines():
        text = line.split("#", 1)[0].strip()
        if text:
            name, size = text.split()
            found.append((name, int(size)))
    return found


def plan(work: Path, out: Path, deselect: tuple[str, ...] = ()) -> list[Step]:
    """The steps, in order, with their budgets (seconds)."""
    install = (sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-build-isolation")
    carried = tuple(str(WHEEL_DIR / name) for name, _ in wheels())
    names = work / "digits.txt"
    pytest = (
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu", "--timeout", "150",
        f"--junitxml={out / 'gpu-tests.xml'}", *GPU_TEST_FILES, *(f"--deselect={node}" for node in deselect),
    )  # fmt: skip
    models = [rehead("extend", "--arch", m, "--random-init", "-n", "1003", "-o", work / m) for m in MODELS]
    models.append(
        rehead("extend", "--arch", "resnet18", "--random-init", "--strategy", "replace", "-n", "10",
               "--class-names", names, "-o", work / "digits")
    )  # fmt: skip
    pt2 = [rehead("export", "pt2", work / m, "-o", work / f"{m}.pt2", "--device", "cuda") for m in MODELS]

    def artifacts(m: str) -> tuple[str | Path, ...]:
        return (work / m, "eager:fp16", "eager:bf16", work / f"{m}.pt2")

    validate = [
        rehead("validate", *artifacts(m), "--device", "cuda", "--batch-sizes", BATCHES, "--samples", "64",
               "--no-latency", "--json", work / f"{m}-validate.json")
        for m in MODELS
    ]  # fmt: skip
    bench = [
        rehead("bench", *artifacts(m), "--device", "cuda", "--batch-sizes", BATCHES, "--duration", "0.3",
               "--warmup", "0.2", "--json", work / f"{m}-bench.json")
        for m in MODELS
    ]  # fmt: skip
    finetune = rehead(
        "finetune", work / "digits", "--data", "digits", "--epochs", "1", "--freeze-epochs", "0",
        "--batch-size", "64", "--device", "cuda", "--amp", "--no-plot", "-o", work / "digits-tuned",
    )  # fmt: skip
    return [
        Step("install", 20, ((*install, *carried, "-e", str(ROOT)),) if carried else ((*install, "-e", str(ROOT)),)),
        Step("models", 30, tuple(models)),
        Step("gpu-tests", 120, (pytest,), env=(("REHEAD_REQUIRE_GPU", "1"),)),
        Step("export-pt2", 120, tuple(pt2), needs=tuple(work / m / "config.json" for m in MODELS)),
        Step("validate", 45, tuple(validate), needs=tuple(work / f"{m}.pt2" for m in MODELS)),
        Step("bench", 75, tuple(bench), needs=tuple(work / f"{m}.pt2" for m in MODELS)),
        Step("finetune-amp", 45, (finetune,), needs=(work / "digits" / "config.json",)),
    ]


# --- the dry run: is the plan consistent? -------------------------------------------------------------------


def _parses(argv: tuple[str, ...]) -> str | None:
    """None when Typer's parser accepts the rehead command ``argv`` (types, required arguments and
    options checked; nothing invoked), else the parser's message."""
    import typer

    import toolkit.cli  # noqa: F401  the command modules register their commands on import
    from toolkit.cli._app import app

    # duck-typed: Typer 0.29 vendors its own click (typer._click), older Typers use click itself
    command: Any = typer.main.get_command(app)
    args = list(argv[3:])
    while hasattr(command, "list_commands"):
        name, args = args[0], args[1:]
        sub = command.get_command(command.context_class(command), name)
        if sub is None:
            return f"no command '{name}'"
        command = sub
    try:
        command.make_context(command.name or "", list(args))
    except Exception as exc:  # click's UsageError/BadParameter, whichever click Typer uses
        if not hasattr(exc, "format_message"):
            raise
        return str(exc.format_message())
    return None


def _test_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}


def dry_run(work: Path, out: Path) -> list[str]:
    """Every inconsistency of the plan, the wheel list and the time budget (empty: consistent)."""
    problems: list[str] = []
    listed = wheels()
    total = sum(size for _, size in listed)
    if total > WHEEL_LIMIT:
        problems.append(f"wheels.txt: {total / 2**20:.1f} MiB of wheels > {WHEEL_LIMIT / 2**20:.0f} MiB")
    for name, size in listed:
        if not name.endswith(".whl") or not ("-py3-none-any" in name or ("cp312" in name and "x86_64" in name)):
            problems.append(f"wheels.txt: '{name}' is not a wheel for CPython 3.12 on x86-64")
        if WHEEL_DIR.is_dir():  # where they were downloaded (before a run); CI has none
            have = WHEEL_DIR / name
            if not have.is_file() or have.stat().st_size != size:
                problems.append(f"wheels.txt: .whl/{name} is missing or not {size} bytes")
    carried = {name.split("-", 1)[0].lower().replace("_", "-") for name, _ in listed}
    for need in NEEDED:
        if need not in GPU_IMAGE and need not in carried:
            problems.append(f"'{need}' is neither on the GPU machine's image nor in wheels.txt")
    steps = plan(work, out, deselect=tuple(NOT_RUN))
    spent = sum(step.budget_s for step in steps)
    if spent > BUDGET_S:
        problems.append(f"the time plan sums to {spent} s > {BUDGET_S} s")
    for step in steps:
        for argv in step.commands:
            if argv[1:3] == ("-m", "toolkit.cli"):
                why = _parses(argv)
                if why:
                    problems.append(f"{step.name}: 'rehead {' '.join(argv[3:])}' does not parse: {why}")
    for rel in GPU_TEST_FILES:
        if not (ROOT / rel).is_file():
            problems.append(f"test file {rel} does not exist")
    for node in NOT_RUN:
        rel, _, name = node.partition("::")
        if not (ROOT / rel).is_file():
            problems.append(f"not-run test {node}: no file {rel}")
        elif name and name.split("[", 1)[0] not in _test_names(ROOT / rel):
            problems.append(f"not-run test {node}: no test {name} in {rel}")
    return problems


# --- the run ---------------------------------------------------------------------------------------------


def _run_step(step: Step, log: Any, deadline: float) -> dict[str, Any]:
    record: dict[str, Any] = {"name": step.name, "budget_s": step.budget_s, "commands": []}
    missing = [str(p) for p in step.needs if not p.exists()]
    if missing:
        record.update(status="not run", reason=f"missing {', '.join(missing[:3])} (an earlier step failed)")
        return record
    left = deadline - time.monotonic()
    if left < step.budget_s * 0.5:
        record.update(status="not run", reason=f"out of time ({left:.0f} s left of the {BUDGET_S} s plan)")
        return record
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **dict(step.env)}
    start = time.monotonic()
    procs = []
    for argv in step.commands:
        log.write(f"\n== {step.name}: {' '.join(argv)}\n")
        log.flush()
        procs.append((argv, subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                             stderr=subprocess.STDOUT, text=True)))  # fmt: skip
    for argv, proc in procs:
        try:
            output, _ = proc.communicate(timeout=max(1.0, start + min(step.budget_s, left) - time.monotonic()))
            rc: int | str = proc.returncode
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
            rc = "timeout"
        log.write(f"-- {' '.join(argv[3:6])}... exit {rc}\n{output}")
        record["commands"].append({"argv": list(argv), "rc": rc, "tail": output[-2000:]})
    record["seconds"] = round(time.monotonic() - start, 1)
    record["status"] = "ok" if all(c["rc"] == 0 for c in record["commands"]) else "failed"
    return record


def _tests(xml: Path) -> dict[str, Any]:
    import xml.etree.ElementTree as ET

    if not xml.is_file():
        return {"status": "no junit xml"}
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    failed = []
    for case in ET.parse(xml).getroot().iter("testcase"):
        node = f"{case.get('classname')}::{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            counts["failed"] += 1
            failed.append(node)
        elif case.find("skipped") is not None:
            counts["skipped"] += 1
        else:
            counts["passed"] += 1
    return {**counts, "failures": failed}


def _slim(report: dict[str, Any]) -> dict[str, Any]:
    """The numbers worth committing from a validate or bench JSON report."""

    def latency(stats: dict[str, Any]) -> dict[str, Any]:
        keys = ("p50_ms", "p99_ms", "cv", "runs", "status", "timer")
        return {bs: {k: s.get(k) for k in keys} for bs, s in stats.items()}

    return {
        "headline": report.get("headline"),
        "inputs": report.get("inputs"),
        "environment": {k: report.get("environment", {}).get(k) for k in ("gpu", "torch", "cuda", "device")},
        "reference_latency": latency(report.get("reference", {}).get("latency", {}) or {}),
        "artifacts": [
            {
                "name": a.get("name"),
                "kind": a.get("kind"),
                "precision": a.get("precision"),
                "parity_status": a.get("parity_status"),
                "failures": [f.get("message") for f in (a.get("parity") or {}).get("failures", [])][:3],
                "latency": latency(a.get("latency", {})),
                "speedup": a.get("speedup"),
            }
            for a in report.get("artifacts", [])
        ],
        "head_latency": report.get("head_latency"),
    }


def run(work: Path, out: Path) -> dict[str, Any]:
    import torch

    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    (work / "digits.txt").write_text("\n".join(str(d) for d in range(10)) + "\n")
    not_run = {node: why for node, (why, probe) in NOT_RUN.items() if not _probe(probe)}
    os.environ.setdefault("REHEAD_CACHE_DIR", str(work / "cache"))
    started = time.monotonic()
    deadline = started + BUDGET_S
    result: dict[str, Any] = {
        "schema": 1,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "budget_s": BUDGET_S,
        "steps": [],
    }
    with (out / "gpu-check.log").open("w") as log:
        for step in plan(work, out, deselect=tuple(not_run)):
            record = _run_step(step, log, deadline)
            result["steps"].append(record)
            print(f"{step.name}: {record['status']} {record.get('seconds', '')}", flush=True)
    result["tests"] = {**_tests(out / "gpu-tests.xml"), "not_run": [{"id": n, "reason": r} for n, r in not_run.items()]}
    result["not_offered"] = ["CUDA graphs: only the TensorRT runner offers them, and TensorRT is not here"]
    models: dict[str, Any] = {}
    for m in MODELS:
        for kind in ("validate", "bench"):
            path = work / f"{m}-{kind}.json"
            if path.is_file():
                models.setdefault(m, {})[kind] = _slim(json.loads(path.read_text()))
    result["models"] = models
    result["wall_s"] = round(time.monotonic() - started, 1)
    (out / "gpu-check.json").write_text(json.dumps(result, indent=1, default=str))
    return result


def main(argv: list[str] | None = None, *, on_problem: Callable[[str], None] = print) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="check the plan on any machine; run nothing")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "build/gpu-check")))
    parser.add_argument("--work", type=Path, default=Path("/tmp/rehead-gpu-check"))
    args = parser.parse_args(argv)
    if args.dry_run:
        problems = dry_run(args.work, args.out)
        for problem in problems:
            on_problem(f"gpu check: {problem}")
        steps = plan(args.work, args.out)
        print(f"gpu check plan: {len(steps)} steps, {sum(s.budget_s for s in steps)} s of {BUDGET_S} s; "
              f"{len(wheels())} wheels; {'INCONSISTENT' if problems else 'consistent'}")  # fmt: skip
        return 1 if problems else 0
    result = run(args.work, args.out)
    failed = [s["name"] for s in result["steps"] if s["status"] != "ok"]
    print(f"gpu check: {len(failed)} step(s) not ok: {', '.join(failed) or 'none'}; see {args.out / 'gpu-check.json'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
