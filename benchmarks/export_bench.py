"""Export benchmark: eager PyTorch vs ONNX Runtime fp32 / INT8 vs AOTInductor pt2, side by side in one run.

    python benchmarks/export_bench.py [--models resnet18,mobilenet_v3_small,...] [--quick] [--no-pt2]

For each model: build it with an extended head (10 digits -> 12 classes), train it a little on
the digits (at 64x64, then BatchNorm statistics re-estimated at 224x224) so top-1 agreement is
measured on a model with real margins, export fp32 and INT8 (static QDQ, per-channel, 128
digits train images), optionally pt2, then time every backend at batch 1 and 8 with interleaved
rounds (the order rotates each round) on ``--threads`` threads (default 2), ONNX Runtime's
thread spinning off so one backend's idle threads do not slow the next. Top-1 agreement
with eager is measured on the digits test split (held out, never used for calibration).
Results go to benchmarks/results/export-<timestamp>.json with the machine's description.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from toolkit.errors import ReheadError

DEFAULT_MODELS = ("resnet18", "mobilenet_v3_small", "efficientnet_b0", "convnext_tiny")
DIGITS = [str(d) for d in range(10)]


def machine() -> dict[str, Any]:
    import onnx
    import onnxruntime
    import torchvision

    cpu = "unknown"
    flags: list[str] = []
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("model name") and cpu == "unknown":
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = [f for f in line.split(":", 1)[1].split() if f.startswith(("avx512_vnni", "amx", "avx2"))]
    return {
        "cpu": cpu,
        "isa_flags": sorted(set(flags)),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "load_average_start": os.getloadavg(),
    }


def train_a_little(module: torch.nn.Module, steps: int, size: int) -> float:
    """Adam on digits train at 64x64 for ``steps`` steps, then BN statistics re-estimated at ``size``."""
    from toolkit.data import load_samples
    from toolkit.records import Preprocessing

    small, y = load_samples("digits", Preprocessing(input_size=(64, 64)), split="train")
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(module.parameters(), lr=1e-3)
    module.train()
    start = time.perf_counter()
    for _ in range(steps):
        idx = torch.randint(0, len(small), (32,), generator=gen)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(module(small[idx]), y[idx]).backward()
        opt.step()
    big, _ = load_samples("digits", Preprocessing(input_size=(size, size)), split="train", n=96)
    norms = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the re-estimation batches
    with torch.no_grad():
        for part in big.split(16):
            module(part)
    module.eval()
    return time.perf_counter() - start


def build(arch: str, root: Path, steps: int, size: int) -> tuple[Path, dict[str, Any]]:
    from toolkit.extension import extend
    from toolkit.model_dir import save_model_dir
    from toolkit.records import Preprocessing

    torch.manual_seed(0)
    base = extend(
        strategy="replace",
        arch=arch,
        num_classes=10,
        class_names=DIGITS,
        preprocessing=Preprocessing(input_size=(size, size)),
        output=None,
    )
    seconds = train_a_little(base.module, steps, size)
    save_model_dir(base.module, base.config, root / f"{arch}-base")
    out = extend(
        strategy="pad-random",
        model_dir=root / f"{arch}-base",
        num_classes=12,
        class_names=[*DIGITS, "plus", "minus"],
        output=root / f"{arch}-model",
    )
    assert out.path is not None
    return out.path, {"train_steps": steps, "train_seconds": round(seconds, 1)}


def interleaved(backends: dict[str, Callable[[], object]], rounds: int, iters: int) -> dict[str, dict[str, float]]:
    """Per-call latency in milliseconds, backends alternated within each round (order rotated)."""
    names = list(backends)
    for fn in backends.values():  # warm-up outside the timed rounds
        fn()
        fn()
    samples: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            fn = backends[name]
            for _ in range(iters):
                t0 = time.perf_counter()
                fn()
                samples[name].append((time.perf_counter() - t0) * 1000)
    out = {}
    for name, values in samples.items():
        values.sort()
        out[name] = {
            "median_ms": round(statistics.median(values), 2),
            "p90_ms": round(values[int(0.9 * (len(values) - 1))], 2),
            "p99_ms": round(values[int(0.99 * (len(values) - 1))], 2),
            "mean_ms": round(statistics.fmean(values), 2),
            "n": len(values),
        }
    return out


def session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # ORT's pool spins after each run by default; interleaved with eager on 2 cores, the spinning
    # threads steal the CPU from the next backend (eager measured 16x slower). Off for fairness.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def agreement(run: Callable[[torch.Tensor], np.ndarray], ref: np.ndarray, x: torch.Tensor) -> float:
    got = np.concatenate([run(part) for part in x.split(16)])
    return float((got.argmax(1) == ref.argmax(1)).mean())


def trained_resolution_agreement(model_dir: Path, root: Path, threads: int, size: int = 64) -> dict[str, Any]:
    """fp32/INT8 top-1 agreement with eager on the digits test split at the training resolution."""
    import dataclasses

    import converters
    from toolkit.data import load_samples
    from toolkit.model_dir import load_model_dir, save_model_dir

    loaded = load_model_dir(model_dir)
    prep = dataclasses.replace(loaded.config.preprocessing, input_size=(size, size))
    small_dir = root / f"{model_dir.name}-{size}"
    save_model_dir(loaded.module, loaded.config.replace(preprocessing=prep), small_dir, overwrite=True)
    x, labels = load_samples("digits", prep, split="test")
    with torch.inference_mode():
        ref = torch.cat([loaded.module(part) for part in x.split(64)]).numpy()
    accuracy = float((ref.argmax(1) == labels.numpy()).mean())
    out: dict[str, Any] = {"input_size": size, "eager_accuracy": round(accuracy, 4)}
    for variant, kwargs in (("fp32", {}), ("int8", {"int8": True, "calib": "digits", "calib_samples": 128})):
        exp = converters.export_onnx(small_dir, root / f"{small_dir.name}-{variant}.onnx", progress=False,
                                     overwrite=True, **kwargs)
        sess = session(exp.path, threads)
        out[variant] = round(agreement(lambda t, s=sess: s.run(None, {"images": t.numpy()})[0], ref, x), 4)
    return out


def bench_model(arch: str, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    import converters
    from toolkit.data import load_samples
    from toolkit.model_dir import load_model_dir

    size = 224
    print(f"== {arch}: build and train a little", flush=True)
    model_dir, info = build(arch, root, args.train_steps, size)
    module = load_model_dir(model_dir).module
    result: dict[str, Any] = {"arch": arch, "input": [3, size, size], "classes": 12, **info, "export_seconds": {}}
    paths = {}
    for variant, kwargs in (("fp32", {}), ("int8", {"int8": True, "calib": "digits", "calib_samples": 128})):
        print(f"== {arch}: export {variant}", flush=True)
        exp = converters.export_onnx(model_dir, root / f"{arch}-{variant}.onnx", progress=False, **kwargs)
        result["export_seconds"][variant] = round(exp.seconds, 1)
        result[f"onnx_{variant}"] = {
            "size_bytes": exp.size_bytes,
            "size_mb": round(exp.size_bytes / 1e6, 2),
            "warnings": list(exp.warnings),
            "nodes": [exp.nodes_before, exp.nodes_after],
            "exporter": exp.exporter,
            "opset": exp.opset,
        }
        paths[variant] = exp.path
    runner = None
    if args.pt2 and arch in args.pt2_models:
        print(f"== {arch}: export pt2 (AOTInductor compile)", flush=True)
        exp = converters.export_pt2(model_dir, root / f"{arch}.pt2", progress=False)
        result["export_seconds"]["pt2"] = round(exp.seconds, 1)
        runner = converters.load_pt2(exp.path)
    sessions = {v: session(p, args.threads) for v, p in paths.items()}

    x_test, _ = load_samples("digits", load_model_dir(model_dir).config.preprocessing, split="test")
    with torch.inference_mode():
        ref = torch.cat([module(part) for part in x_test.split(16)]).numpy()
    result["test_images"] = len(x_test)
    labels = load_samples("digits", load_model_dir(model_dir).config.preprocessing, split="test")[1].numpy()
    result["eager_accuracy_on_digits_test"] = round(float((ref.argmax(1) == labels).mean()), 4)
    result["top1_agreement_with_eager_224"] = {
        v: round(agreement(lambda t, s=s: s.run(None, {"images": t.numpy()})[0], ref, x_test), 4)
        for v, s in sessions.items()
    }
    # The benchmark model is trained at 64x64 (224x224 training is too slow for 2 cores): its
    # 224x224 logits have small margins, so agreement there mostly measures noise. The same
    # weights exported at the resolution they were trained at give the meaningful INT8 agreement.
    result["top1_agreement_with_eager"] = trained_resolution_agreement(model_dir, root, args.threads)
    if runner is not None:
        with torch.inference_mode():
            agree_pt2 = agreement(lambda t: runner(t).numpy(), ref, x_test)
            result["top1_agreement_with_eager_224"]["pt2"] = round(agree_pt2, 4)

    result["latency"] = {}
    for batch in args.batches:
        x = x_test[:batch].contiguous()
        xn = x.numpy()

        def eager(x: torch.Tensor = x) -> object:
            with torch.inference_mode():
                return module(x)

        backends: dict[str, Callable[[], object]] = {"eager": eager}
        for v, s in sessions.items():
            backends[f"ort_{v}"] = lambda s=s, xn=xn: s.run(None, {"images": xn})
        if runner is not None:

            def pt2(x: torch.Tensor = x) -> object:
                with torch.inference_mode():
                    return runner(x)

            backends["pt2"] = pt2
        print(f"== {arch}: timing batch {batch}", flush=True)
        iters = max(1, args.iters // batch)
        timing = interleaved(backends, args.rounds, iters)
        eager_ms = timing["eager"]["median_ms"]
        for row in timing.values():
            row["speedup_vs_eager"] = round(eager_ms / row["median_ms"], 2)
        result["latency"][f"batch{batch}"] = timing
        print(json.dumps(timing), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated torchvision names")
    parser.add_argument("--quick", action="store_true", help="resnet18 only, fewer rounds, no pt2")
    parser.add_argument("--no-pt2", dest="pt2", action="store_false", help="skip the AOTInductor package")
    parser.add_argument("--pt2-models", default="resnet18", help="models to compile with AOTInductor (~1 min each)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--iters", type=int, default=10, help="calls per backend per round at batch 1")
    parser.add_argument("--train-steps", type=int, default=200)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.quick:
        args.models, args.rounds, args.iters, args.pt2, args.train_steps = "resnet18", 3, 5, False, 30
    args.batches = (1, 8)
    args.pt2_models = set(args.pt2_models.split(","))
    torch.set_num_threads(args.threads)
    info = machine()
    report: dict[str, Any] = {
        "machine": info,
        "settings": {k: (sorted(v) if isinstance(v, set) else v) for k, v in vars(args).items() if k != "out"},
        "models": [],
    }
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for arch in args.models.split(","):
            try:
                report["models"].append(bench_model(arch.strip(), args, Path(tmp)))
            except ReheadError as exc:  # e.g. the export's own parity check refused the model
                print(f"== {arch}: {exc.one_line()}", flush=True)
                report["models"].append({"arch": arch.strip(), "error": exc.one_line()})
    info["load_average_end"] = os.getloadavg()
    report["wall_seconds"] = round(time.time() - started, 1)
    report["aims"] = aims(report["models"])
    out = args.out or Path(__file__).parent / "results" / f"export-{time.strftime('%Y%m%d-%H%M%S')}.json"
    from toolkit._atomic import write_text

    write_text(out, json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    print(json.dumps(report["aims"], indent=2))


def aims(models: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's speed aims for resnet18 at batch 1 (only if it was benchmarked)."""
    row = next((m for m in models if m["arch"] == "resnet18" and "error" not in m), None)
    if row is None:
        return {}
    b1 = row["latency"]["batch1"]
    fp32, int8 = b1["ort_fp32"]["speedup_vs_eager"], b1["ort_int8"]["speedup_vs_eager"]
    agree = row["top1_agreement_with_eager"]["int8"]  # at the trained resolution
    return {
        "resnet18_b1_ort_fp32_speedup": fp32,
        "fp32_at_least_2x": fp32 >= 2.0,
        "resnet18_b1_ort_int8_speedup": int8,
        "int8_at_least_4x": int8 >= 4.0,
        "resnet18_int8_top1_agreement": agree,
        "int8_agreement_at_least_99pct": agree >= 0.99,
        "pt2_b1_speedup": b1.get("pt2", {}).get("speedup_vs_eager"),
    }


if __name__ == "__main__":
    main()
