"""Data-parallel fine-tuning on this CPU: images/s for 1 and 2 processes, as JSON.

The real command each time (``rehead finetune``, under ``torchrun`` for 2 processes), resnet18
at 32x32 on the ten digits (1257 training images), global batch 64, one head-only epoch and one
whole-model epoch, AdamW. Variants, measured in alternating rounds so they share the background
load:

- ``1proc-1thread``: one process, one torch thread (the per-core baseline);
- ``1proc-2threads``: one process using both cores through intra-op threads;
- ``2proc-1thread``: two processes (gloo), one thread each, BatchNorm per process;
- ``2proc-1thread-syncbn``: the same with ``--sync-bn``.

Per variant and phase: the median over rounds of the run's own images/s (training steps only,
from ``metrics.json``; global images over rank 0's step time), and the median wall time of the
whole command (start-up, data, evaluation and writing included). The machine description (CPU,
cores, load average before and after) goes with the numbers: on a shared 2-core machine they
are only as quiet as the neighbours.

    python benchmarks/distributed_bench.py              # 3 rounds, about 5 minutes on 2 cores
    python benchmarks/distributed_bench.py --rounds 1
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
DIGITS = [str(d) for d in range(10)]
VARIANTS: dict[str, tuple[int, int, bool]] = {  # processes, threads per process, sync_bn
    "1proc-1thread": (1, 1, False),
    "1proc-2threads": (1, 2, False),
    "2proc-1thread": (2, 1, False),
    "2proc-1thread-syncbn": (2, 1, True),
}


def _model_dir(root: Path) -> Path:
    import torch

    from toolkit.extension import extend
    from toolkit.records import Preprocessing

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random initialisation on purpose: throughput only
        out = extend(
            strategy="replace", arch="resnet18", num_classes=10, class_names=DIGITS,
            preprocessing=Preprocessing(input_size=(32, 32)), seed=0, output=root / "model",
        )  # fmt: skip
    assert out.path is not None
    return out.path


def _command(processes: int, threads: int, sync_bn: bool, model: Path, out: Path) -> list[str]:
    args = [
        "finetune", str(model), "--data", "digits", "--epochs", "2", "--freeze-epochs", "1", "--batch-size", "64",
        "--threads", str(threads), "--seed", "0", "--patience", "0", "--no-plot", "--overwrite", "-o", str(out),
    ]  # fmt: skip
    if sync_bn:
        args.append("--sync-bn")
    if processes == 1:
        return [sys.executable, "-m", "toolkit.cli", *args]
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes),
        "-m", "toolkit.cli", *args,
    ]  # fmt: skip


def _once(name: str, model: Path, work: Path) -> dict[str, Any]:
    processes, threads, sync_bn = VARIANTS[name]
    out = work / name
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    started = time.perf_counter()
    done = subprocess.run(_command(processes, threads, sync_bn, model, out), env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{name} failed ({done.returncode}): {done.stderr[-2000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    return {
        "wall_s": wall,
        "images_per_s": {e["phase"]: e["images_per_s"] for e in metrics["epochs"]},
        "val_top1": metrics["epochs"][-1]["val_top1"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from _machine import machine_description

    before = machine_description(threads=1)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        model = _model_dir(Path(tmp))
        for rnd in range(args.rounds):
            for name in VARIANTS:
                runs[name].append(_once(name, model, Path(tmp)))
                last = runs[name][-1]
                print(f"round {rnd + 1} {name}: {last['images_per_s']} img/s, {last['wall_s']:.1f} s", flush=True)
    summary = {
        name: {
            "processes": VARIANTS[name][0],
            "threads_per_process": VARIANTS[name][1],
            "sync_bn": VARIANTS[name][2],
            "images_per_s_median": {
                phase: statistics.median(r["images_per_s"][phase] for r in results) for phase in ("head", "finetune")
            },
            "wall_s_median": statistics.median(r["wall_s"] for r in results),
            "rounds": results,
        }
        for name, results in runs.items()
    }
    result = {
        "benchmark": "distributed_bench",
        "when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "setup": "resnet18 32x32, digits 0-9 (1257 train images), global batch 64, 1 head + 1 whole-model epoch, AdamW",
        "machine_before": before,
        "loadavg_after": list(os.getloadavg()),
        "cpu_count": os.cpu_count(),
        "results": summary,
    }
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = args.out or ROOT / "results" / f"distributed-{stamp}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    for name, s in summary.items():
        rates = s["images_per_s_median"]
        head, whole = rates["head"], rates["finetune"]
        print(f"{name:22s} head {head:7.0f} img/s  whole {whole:6.0f} img/s  wall {s['wall_s_median']:.1f} s")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
