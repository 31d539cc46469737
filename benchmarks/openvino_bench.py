"""OpenVINO benchmark: ONNX Runtime vs OpenVINO (fp32, bf16, INT8 all, INT8 accuracy-aware in
OpenVINO, NNCF's accuracy control) on the same exported files, side by side in one process.

    python benchmarks/openvino_bench.py [--models resnet18,mobilenet_v3_small] [--quick]

Per model: the benchmark model of ``export_bench.py`` (a 7-digit head extended to 10 digits and
trained on the digits at 224 until its val accuracy passes 93%; cached in benchmarks/.cache).
Exports with rehead: ONNX fp32; the all-INT8 QDQ ONNX; OpenVINO IRs of both; the accuracy-aware
INT8 IR searched IN OPENVINO (``--int8-target openvino``, ``min_agreement`` 0.99 on the digits
val split). For comparison, NNCF's ``quantize_with_accuracy_control`` on the fp32 IR (same
calibration images, same validation split, max drop 1% of top-1 agreement with eager).
Then at batch 1 (and 8), on ``--threads`` threads: eager PyTorch, ONNX Runtime fp32 and INT8,
OpenVINO fp32, bf16 (fp32 IR, bf16 inference), INT8 all, INT8 accuracy-aware, NNCF's, timed in
interleaved rounds; the fp32, INT8 and bf16 compute floors measured between the rounds in the
same process. Top-1 agreement with eager on the digits test split (all / new digits).
Results: benchmarks/results/openvino-<model>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from export_bench import build, interleaved, machine, session, slice_agreement
from floor import floors, model_gflops

DEFAULT_MODELS = ("resnet18", "mobilenet_v3_small", "efficientnet_b0")


def bf16_gflops(n: int = 2048, repeats: int = 8, threads: int = 2) -> float:
    """Best throughput of an n^3 MatMul in OpenVINO with bf16 inference (AMX where present)."""
    import openvino as ov
    import openvino.opset13 as ops

    from converters.openvino import _runtime

    a = ops.parameter([n, n], ov.Type.f32, name="a")
    b = ops.constant(np.random.default_rng(0).standard_normal((n, n)).astype(np.float32))
    model = ov.Model([ops.matmul(a, b, False, False)], [a])
    config = {"INFERENCE_PRECISION_HINT": "bf16", "INFERENCE_NUM_THREADS": str(threads), "NUM_STREAMS": "1"}
    compiled = _runtime.core().compile_model(model, "CPU", config)
    request = compiled.create_infer_request()
    x = np.random.default_rng(1).standard_normal((n, n)).astype(np.float32)
    request.infer({0: x})
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        request.infer({0: x})
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def ov_runner(path: Path, threads: int, precision: str = "f32") -> Callable[[np.ndarray], np.ndarray]:
    from converters.openvino.runner import OpenVinoRunner

    runner = OpenVinoRunner(path, threads=threads, ov_precision=precision)
    runner.load()
    return lambda x: runner.run(np.ascontiguousarray(x))[runner.output_names[0]]


def nncf_accuracy_control(fp32_xml: Path, out: Path, calib: np.ndarray, val: tuple[np.ndarray, np.ndarray],
                          reference: np.ndarray, threads: int) -> dict[str, Any]:
    """NNCF's quantize_with_accuracy_control on the fp32 IR: top-1 agreement with eager on the
    val split as the metric, at most a 1% drop; the result saved as an IR."""
    from converters.openvino import _runtime

    nncf = _runtime.nncf()
    ov = _runtime.openvino()
    core = _runtime.core()
    model = core.read_model(str(fp32_xml))
    x_val, _ = val
    items = [(x_val[i : i + 1], reference[i]) for i in range(len(x_val))]

    def validate(compiled: Any, data: Any) -> float:
        same = []
        for image, ref in data:
            logits = compiled(image)[0]
            same.append(int(np.argmax(logits) == np.argmax(ref)))
        return float(np.mean(same))

    start = time.perf_counter()
    quantized = nncf.quantize_with_accuracy_control(
        model,
        calibration_dataset=nncf.Dataset([calib[i : i + 1] for i in range(len(calib))]),
        validation_dataset=nncf.Dataset(items),
        validation_fn=validate,
        max_drop=0.01,
        drop_type=nncf.DropType.ABSOLUTE,
        subset_size=len(calib),
    )
    seconds = time.perf_counter() - start
    # the model came from rehead's fp32 IR: its runtime info keeps that IR's record and stamps, which
    # rehead sets aside for this changed graph (converters/openvino/artifact.py)
    ov.save_model(quantized, str(out), compress_to_fp16=False)
    return {"seconds": round(seconds, 1), "size_bytes": out.stat().st_size + out.with_suffix(".bin").stat().st_size}


def bench_model(arch: str, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    import converters
    from converters.onnx.options import OnnxExportOptions
    from converters.openvino.export import export_openvino
    from toolkit.data import load_samples
    from toolkit.models.model_dir import load_model_dir

    size = 224
    print(f"== {arch}: build and train (cached in benchmarks/.cache)", flush=True)
    model_dir, info = build(arch, root, args, size)
    loaded = load_model_dir(model_dir)
    module = loaded.module.eval()
    result: dict[str, Any] = {"arch": arch, "input": [3, size, size], **info, "export_seconds": {}, "size_bytes": {}}
    result["gflops_per_image"] = model_gflops(arch, size)
    files: dict[str, Path] = {}

    def record(name: str, exp: Any) -> None:
        files[name] = exp.path
        result["export_seconds"][name] = round(exp.seconds, 1)
        result["size_bytes"][name] = exp.size_bytes

    print(f"== {arch}: exports", flush=True)
    record("onnx_fp32", converters.export_onnx(model_dir, root / "fp32.onnx"))
    record("onnx_int8", converters.export_onnx(model_dir, root / "int8.onnx", int8=True, calib="digits",
                                               calib_samples=128))
    record("ov_fp32", export_openvino(files["onnx_fp32"], root / "fp32.xml", model_dir=model_dir))
    record("ov_int8", export_openvino(files["onnx_int8"], root / "int8.xml", model_dir=model_dir))
    aware = OnnxExportOptions(int8=True, calib="digits", calib_samples=128, min_agreement=0.99,
                              int8_target="openvino")
    exp = export_openvino(model_dir, root / "aware.xml", onnx_options=aware)
    record("ov_int8_aware", exp)
    from converters import artifact

    result["ov_int8_search"] = (artifact.recorded_model(files["ov_int8_aware"]) or {}).get("quantization", {}).get(
        "search"
    )

    x_test, labels_t = load_samples("digits", loaded.config.preprocessing, split="test")
    labels = labels_t.numpy()
    with torch.inference_mode():
        ref = torch.cat([module(part) for part in x_test.split(16)]).numpy()
    result["eager_accuracy_on_digits_test"] = round(float((ref.argmax(1) == labels).mean()), 4)
    if args.nncf:
        print(f"== {arch}: NNCF quantize_with_accuracy_control", flush=True)
        calib, _ = load_samples("digits", loaded.config.preprocessing, split="train", n=128)
        x_val, y_val = load_samples("digits", loaded.config.preprocessing, split="val")
        with torch.inference_mode():
            ref_val = torch.cat([module(part) for part in x_val.split(16)]).numpy()
        out = root / "nncf.xml"
        result["nncf"] = nncf_accuracy_control(files["ov_fp32"], out, calib.numpy(), (x_val.numpy(), y_val.numpy()),
                                               ref_val, args.threads)
        files["ov_int8_nncf"] = out

    runs: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    for name in ("onnx_fp32", "onnx_int8"):
        sess = session(files[name], args.threads)
        runs[f"ort_{name[5:]}"] = lambda x, s=sess: s.run(None, {"images": x})[0]
    runs["ov_fp32"] = ov_runner(files["ov_fp32"], args.threads)
    runs["ov_bf16"] = ov_runner(files["ov_fp32"], args.threads, "bf16")
    for name in ("ov_int8", "ov_int8_aware", "ov_int8_nncf"):
        if name in files:
            runs[name] = ov_runner(files[name], args.threads)
    result["top1_agreement_with_eager"] = {
        name: slice_agreement(np.concatenate([run(p.numpy()) for p in x_test.split(16)]), ref, labels)
        for name, run in runs.items()
    }
    bf16_logits = np.concatenate([runs["ov_bf16"](p.numpy()) for p in x_test.split(16)])
    result["bf16_max_abs_vs_eager"] = float(np.abs(bf16_logits - ref).max())
    from converters.compare import PRESETS

    # the element-wise rule of each preset (|Δ| ≤ atol + rtol·|ref|) on the whole test split
    result["bf16_within_preset"] = {
        name: bool(np.all(np.abs(bf16_logits - ref) <= PRESETS[name].atol + PRESETS[name].rtol * np.abs(ref)))
        for name in ("bf16", "fp16")
    }

    result["latency"] = {}
    result["floors"] = [{**floors(args.threads), "bf16_gflops_per_s": bf16_gflops(threads=args.threads)}]
    for batch in args.batches:
        x = x_test[:batch].contiguous()
        xn = np.ascontiguousarray(x.numpy())

        def eager(x: torch.Tensor = x) -> object:
            with torch.inference_mode():
                return module(x)

        backends: dict[str, Callable[[], object]] = {"eager": eager}
        backends.update({name: (lambda run=run, xn=xn: run(xn)) for name, run in runs.items()})
        print(f"== {arch}: timing batch {batch}", flush=True)
        timing = interleaved(backends, args.rounds, max(1, args.iters // batch))
        result["floors"].append({**floors(args.threads), "bf16_gflops_per_s": bf16_gflops(threads=args.threads)})
        eager_ms = timing["eager"]["median_ms"]
        for row in timing.values():
            row["speedup_vs_eager"] = round(eager_ms / row["median_ms"], 2)
        result["latency"][f"batch{batch}"] = timing
        print(json.dumps({k: v["median_ms"] for k, v in timing.items()}), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS))
    parser.add_argument("--quick", action="store_true", help="resnet18, short training and rounds, no NNCF")
    parser.add_argument("--no-nncf", dest="nncf", action="store_false")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--min-accuracy", type=float, default=0.93)
    parser.add_argument("--max-rounds", type=int, default=8)
    parser.add_argument("--batches", default="1,8")
    args = parser.parse_args()
    if args.quick:
        args.models, args.rounds, args.iters, args.nncf = "resnet18", 3, 5, False
        args.train_steps, args.max_rounds = 30, 2
    args.batches = tuple(int(b) for b in args.batches.split(","))
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    from converters.openvino import _runtime

    ov = _runtime.openvino()
    for arch in args.models.split(","):
        info = {**machine(), "openvino": ov.get_version()}
        started = time.time()
        with tempfile.TemporaryDirectory() as tmp:
            result = bench_model(arch.strip(), args, Path(tmp))
        info["load_average_end"] = os.getloadavg()
        report = {"machine": info, "settings": {k: v for k, v in vars(args).items()}, "model": result,
                  "wall_seconds": round(time.time() - started, 1)}
        out = Path(__file__).parent / "results" / f"openvino-{arch.strip()}.json"
        from toolkit._atomic import write_text

        write_text(out, json.dumps(report, indent=2, default=str) + "\n")
        print(f"wrote {out}", flush=True)


if __name__ == "__main__":
    main()
