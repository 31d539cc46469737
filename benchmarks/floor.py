"""The fp32 compute floor of this CPU: measured matrix-product throughput x each model's FLOPs.

    python benchmarks/floor.py [--models resnet18,...] [--size 224] [--threads 2]

Throughput is the best of several 2048x2048x2048 float32 products on ``--threads`` threads; FLOPs
are counted by ``torch.utils.flop_counter`` on one forward pass at batch 1 (a multiply-add counts
as 2 FLOPs). floor_ms = FLOPs / throughput: no fp32 backend can beat it on this CPU, so the
benchmark table can say how close each backend gets. Writes benchmarks/results/floor.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_description

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_MODELS = ("resnet18", "mobilenet_v3_small", "efficientnet_b0", "convnext_tiny")


def matmul_gflops(n: int = 2048, repeats: int = 8) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def model_gflops(arch: str, size: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    from toolkit.architectures import build_architecture

    model = build_architecture(arch).eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.randn(1, 3, size, size))
    return counter.get_total_flops() / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS))
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS / "floor.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    gflops_s = matmul_gflops()
    models = {}
    for arch in args.models.split(","):
        g = model_gflops(arch, args.size)
        models[arch] = {"gflops_per_image": g, "floor_ms_batch1": 1e3 * g / gflops_s}
        print(f"{arch}: {g:.2f} GFLOP/image, fp32 floor {models[arch]['floor_ms_batch1']:.1f} ms", flush=True)
    result = {"benchmark": "floor", "machine": machine_description(threads=args.threads), "threads": args.threads,
              "input_size": args.size, "matmul_gflops_per_s": gflops_s, "models": models}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"matmul {gflops_s:.0f} GFLOP/s on {args.threads} threads; wrote {args.out}")


if __name__ == "__main__":
    main()
