"""The fp32 and INT8 compute floors of this CPU: measured matrix-product throughput x each model's FLOPs.

    python benchmarks/floor.py [--models resnet18,...] [--size 224] [--threads 2]

fp32: the best of several 2048x2048x2048 float32 products (torch.mm) on ``--threads`` threads.
INT8: the same product as ONNX Runtime's ``MatMulInteger`` (uint8 x int8 -> int32, the MLAS
kernels a QDQ Conv/Gemm runs on: AVX-512 VNNI or AMX where the CPU has them). FLOPs
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


def int8_gops(n: int = 2048, repeats: int = 8, threads: int = 2) -> float:
    """Best throughput (GOP/s, a multiply-add = 2 ops) of an n^3 uint8 x int8 product in ONNX Runtime."""
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.integers(-127, 128, (n, n), dtype=np.int8), "B")
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["A", "B"], ["Y"])],
        "int8_floor",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, [n, n])],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, [n, n])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    a = {"A": rng.integers(0, 256, (n, n), dtype=np.uint8)}
    session.run(None, a)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, a)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def floors(threads: int) -> dict[str, float]:
    """Both floors measured now, back to back: ``fp32_gflops_per_s`` and ``int8_gops_per_s``."""
    return {"fp32_gflops_per_s": matmul_gflops(), "int8_gops_per_s": int8_gops(threads=threads)}


def model_gflops(arch: str, size: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    from toolkit.models.architectures import build_architecture

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
    measured = floors(args.threads)
    gflops_s, gops_s = measured["fp32_gflops_per_s"], measured["int8_gops_per_s"]
    models = {}
    for arch in args.models.split(","):
        g = model_gflops(arch, args.size)
        models[arch] = {"gflops_per_image": g, "floor_ms_batch1": 1e3 * g / gflops_s,
                        "int8_floor_ms_batch1": 1e3 * g / gops_s}
        print(f"{arch}: {g:.2f} GFLOP/image, fp32 floor {models[arch]['floor_ms_batch1']:.1f} ms, "
              f"INT8 floor {models[arch]['int8_floor_ms_batch1']:.1f} ms", flush=True)
    result = {"benchmark": "floor", "machine": machine_description(threads=args.threads), "threads": args.threads,
              "input_size": args.size, "matmul_gflops_per_s": gflops_s, "int8_gops_per_s": gops_s, "models": models}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"matmul fp32 {gflops_s:.0f} GFLOP/s, INT8 {gops_s:.0f} GOP/s on {args.threads} threads; wrote {args.out}")


if __name__ == "__main__":
    main()
