"""Fine-tuning on a CPU: training throughput and the wall time of the demo flow, as JSON.

Two measurements, one run, one machine:

1. throughput: training steps per second of resnet18 at 32x32 on digits (batch 64, AdamW,
   ``--threads`` threads, default 2), fp32 and bf16 autocast measured in alternating rounds so
   both see the same background load; median and coefficient of variation over rounds.
2. the demo flow, timed end to end: pretrain resnet18 (random weights) on digits 0-6, extend
   the head to 10 classes (``--strategy``, default pad-random), fine-tune with the default
   two-phase settings; test top-1 of each stage and the wall time of each.

The result goes to ``benchmarks/results/finetune-<UTC time>.json`` with the machine
description (CPU model, cores, load average before and after, torch version).

    python benchmarks/finetune_bench.py                 # both (about 1-3 minutes on 2 idle cores)
    python benchmarks/finetune_bench.py --skip-demo     # throughput only
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent
DIGITS = [str(d) for d in range(10)]


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cores_usable": affinity,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def throughput(threads: int, rounds: int, steps: int, batch: int) -> dict[str, Any]:
    """Images per second of training steps, fp32 vs bf16 autocast, interleaved rounds."""
    import torchvision
    from torch.nn import functional as F

    from toolkit.data import digits_tensors
    from toolkit.records import Preprocessing

    torch.set_num_threads(threads)
    x_all, y_all = digits_tensors("train", Preprocessing(input_size=(32, 32)))
    x, y = x_all[:batch].contiguous(), y_all[:batch].contiguous()
    variants = {"fp32": False, "bf16_autocast": True}
    models = {}
    for name in variants:
        torch.manual_seed(0)
        model = torchvision.models.resnet18(num_classes=10)
        models[name] = (model, torch.optim.AdamW(model.parameters(), lr=1e-3))
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for rnd in range(rounds + 1):  # round 0 warms up oneDNN
        for name, amp in variants.items():
            model, opt = models[name]
            model.train()
            start = time.perf_counter()
            for _ in range(steps):
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                    logits = model(x)
                loss = F.cross_entropy(logits.float(), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            if rnd:
                rates[name].append(steps * batch / (time.perf_counter() - start))
    out: dict[str, Any] = {"threads": threads, "batch_size": batch, "steps_per_round": steps, "rounds": rounds}
    for name, values in rates.items():
        mean = statistics.fmean(values)
        out[name] = {
            "images_per_s_median": statistics.median(values),
            "images_per_s_max": max(values),
            "cv": statistics.pstdev(values) / mean if mean else None,
        }
    out["bf16_speedup"] = out["bf16_autocast"]["images_per_s_median"] / out["fp32"]["images_per_s_median"]
    return out


def demo(threads: int, strategy: str, pretrain_epochs: int, finetune_epochs: int | None) -> dict[str, Any]:
    """Pretrain on digits 0-6, extend to 10, fine-tune two-phase: wall time and test top-1 of each."""
    from toolkit.extension import extend
    from toolkit.finetune import PRETRAIN_CONFIG, FinetuneConfig, finetune, pretrain

    with tempfile.TemporaryDirectory(prefix="rehead-ftbench-") as tmp:
        started = time.perf_counter()
        pre_cfg = PRETRAIN_CONFIG.replace(threads=threads, epochs=pretrain_epochs, plot=False)
        base = pretrain("resnet18", "digits", DIGITS[:7], pre_cfg, output=Path(tmp) / "base", progress=False)
        t_pre = time.perf_counter() - started
        t0 = time.perf_counter()
        ext = extend(
            strategy=strategy, model_dir=base.path, num_classes=10, class_names=DIGITS, output=Path(tmp) / "ext"
        )
        t_ext = time.perf_counter() - t0
        ft_cfg = FinetuneConfig(threads=threads)
        if finetune_epochs is not None:
            ft_cfg = ft_cfg.replace(epochs=finetune_epochs)
        t0 = time.perf_counter()
        assert ext.path is not None
        result = finetune(ext.path, "digits", ft_cfg, output=Path(tmp) / "ft", progress=False)
        t_ft = time.perf_counter() - t0
        total = time.perf_counter() - started
    return {
        "strategy": strategy,
        "pretrain": {"config": pre_cfg.to_json(), "seconds": t_pre, "test_top1_digits_0_6": base.test_top1},
        "extend_seconds": t_ext,
        "finetune": {
            "config": ft_cfg.to_json(),
            "seconds": t_ft,
            "test_top1": result.test_top1,
            "val_top1": result.val_top1,
            "epochs_run": len(result.history),
            "images_per_s_per_epoch": [h["images_per_s"] for h in result.history],
        },
        "total_seconds": total,
        "finetune_under_3_min": t_ft < 180,
        "flow_under_3_min": total < 180,
        "test_top1_at_least_95": (result.test_top1 or 0.0) >= 0.95,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--rounds", type=int, default=5, help="throughput rounds per variant (default 5)")
    parser.add_argument("--steps", type=int, default=5, help="training steps per round (default 5)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per step (default 64)")
    parser.add_argument("--strategy", default="pad-random", help="head extension of the demo flow")
    parser.add_argument("--pretrain-epochs", type=int, default=5, help="pretraining epochs on digits 0-6")
    parser.add_argument("--finetune-epochs", type=int, default=None, help="default: FinetuneConfig's")
    parser.add_argument("--skip-demo", action="store_true", help="measure throughput only")
    parser.add_argument("--output-dir", type=Path, default=ROOT / "results", help="where the JSON goes")
    args = parser.parse_args(argv)

    from toolkit import _atomic

    report: dict[str, Any] = {"benchmark": "finetune", "machine": machine()}
    try:  # the description every benchmark of the project carries, where it is available
        sys.path.insert(0, str(ROOT))
        from _machine import machine_description

        report["environment"] = machine_description(threads=args.threads)
    except ImportError as exc:
        report["environment"] = {"unavailable": str(exc)}
    report["throughput"] = throughput(args.threads, args.rounds, args.steps, args.batch_size)
    print(json.dumps(report["throughput"], indent=2), file=sys.stderr)
    if not args.skip_demo:
        report["demo"] = demo(args.threads, args.strategy, args.pretrain_epochs, args.finetune_epochs)
        print(json.dumps(report["demo"], indent=2), file=sys.stderr)
    report["machine"]["load_average_after"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = args.output_dir / f"finetune-{stamp}.json"
    _atomic.write_text(path, json.dumps(report, indent=2) + "\n", overwrite=False)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
