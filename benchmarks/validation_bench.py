"""Benchmark of rehead's validation itself: overhead and repeatability.

1. Overhead: ``validate`` + reports on ``--samples`` inputs (default 256) for resnet18 at
   ``--size`` pixels (default 224) against an fp32 ONNX export; overhead = wall time minus the
   time spent inside model runs (eager, ONNX Runtime, loads). Target: under 20 % of wall time.
2. Repeatability: ``bench`` run twice with the same settings; the p50 latency of every runner
   and batch size must agree within 5 %.

Writes ``benchmarks/results/validation-<host-tag>-<date>.json`` with the machine description.
Usage: ``python benchmarks/validation_bench.py [--samples 256] [--size 224] [--threads 2] [--pt2]``
Exit status 1 when a target is missed (the JSON says which).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def build_model(root: Path, size: int) -> Path:
    from toolkit.extension import extend
    from toolkit.records import Preprocessing

    prep = Preprocessing(input_size=(size, size))
    digits = [str(d) for d in range(10)]
    base = extend(strategy="replace", arch="resnet18", num_classes=7, class_names=digits[:7], preprocessing=prep,
                  seed=0, output=root / "base")
    out = extend(strategy="pad-random", model_dir=base.path, num_classes=10, class_names=digits, seed=0,
                 output=root / "model")
    assert out.path is not None
    return out.path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per latency measurement")
    parser.add_argument("--pt2", action="store_true", help="also export and validate an AOTInductor .pt2")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    sizes = [int(s) for s in args.batch_sizes.split(",")]

    import matplotlib  # noqa: F401  imports warmed so that the overhead is validation's, not Python's
    import onnxruntime  # noqa: F401
    import torch

    from converters import export_onnx
    from validation import _env
    from validation.latency import LatencySettings
    from validation.report import write_reports
    from validation.suite import bench, validate

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="rehead-valbench-"))
    model_dir = build_model(work, args.size)
    onnx_path = work / "model.onnx"
    export_onnx(model_dir, onnx_path, progress=False)
    artifacts: list[Path] = [onnx_path]
    if args.pt2:
        from converters import export_pt2

        export_pt2(model_dir, work / "model.pt2", progress=False)
        artifacts.append(work / "model.pt2")

    settings = LatencySettings(warmup_s=0.5, min_runs=20, min_duration_s=args.duration, max_cv=0.25)
    start = time.perf_counter()
    report = validate(model_dir, artifacts, samples=args.samples, batch_sizes=sizes, threads=args.threads,
                      latency_settings=settings, progress=True)
    write_reports(report, report_dir=work / "report")
    wall = time.perf_counter() - start
    model_s = report.timing["model_s"]
    overhead = (wall - model_s) / wall

    runs = [bench(model_dir, artifacts, batch_sizes=sizes, threads=args.threads, duration_s=args.duration,
                  head_latency=False, progress=True) for _ in range(2)]
    agreement = []
    for name, first, second in [("eager-fp32", runs[0].reference_latency, runs[1].reference_latency)] + [
        (a.name, a.latency, b.latency) for a, b in zip(runs[0].artifacts, runs[1].artifacts, strict=True)
    ]:
        for bs in sizes:
            p1, p2 = first[bs].p50_ms, second[bs].p50_ms
            agreement.append({"runner": name, "batch_size": bs, "p50_ms": [p1, p2],
                              "relative_difference": abs(p1 - p2) / min(p1, p2),
                              "cv": [first[bs].cv, second[bs].cv]})
    worst = max(a["relative_difference"] for a in agreement)
    result = {
        "benchmark": "validation_bench",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": _env.capture(threads=args.threads),
        "settings": {"samples": args.samples, "size": args.size, "threads": args.threads, "batch_sizes": sizes,
                     "duration_s": args.duration, "artifacts": [p.name for p in artifacts]},
        "overhead": {"wall_s": wall, "model_s": model_s, "overhead_s": wall - model_s, "fraction": overhead,
                     "target": 0.20, "met": overhead < 0.20},
        "repeatability": {"runs": agreement, "worst_relative_difference": worst, "target": 0.05,
                          "met": worst <= 0.05},
        "validation": {"status": report.status,
                       "artifacts": [{"name": a.name, "parity": a.parity_status, "latency": a.latency_status,
                                      "p50_ms": {bs: s.p50_ms for bs, s in a.latency.items()},
                                      "speedup": a.speedup} for a in report.artifacts],
                       "eager_p50_ms": {bs: s.p50_ms for bs, s in report.reference_latency.items()}},
    }
    tag = platform.node().split(".")[0][:20] or "host"
    out = args.output or RESULTS / f"validation-{tag}-{datetime.date.today().isoformat()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"overhead {overhead:.1%} of {wall:.1f} s (target < 20%): {'met' if overhead < 0.2 else 'MISSED'}")
    print(f"repeatability: worst p50 difference {worst:.1%} (target ≤ 5%): {'met' if worst <= 0.05 else 'MISSED'}")
    print(f"wrote {out}")
    return 0 if overhead < 0.20 and worst <= 0.05 else 1


if __name__ == "__main__":
    sys.exit(main())
