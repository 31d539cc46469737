"""Regenerate the README's study and performance sections from benchmarks/results/*.json.

    python benchmarks/readme_tables.py

Reads the newest results of each benchmark (export-<model>.json, floor.json,
head_strategies.json, the newest validation-*.json) and rewrites the blocks between
``<!-- study:start -->``/``<!-- study:end -->`` and ``<!-- perf:start -->``/``<!-- perf:end -->``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
MODELS = ("resnet18", "mobilenet_v3_small", "efficientnet_b0", "convnext_tiny")
BACKENDS = (("eager", "eager PyTorch"), ("eager_channels_last", "eager channels_last"),
            ("torch_compile", "torch.compile"), ("ort_fp32", "ONNX Runtime fp32"),
            ("ort_int8", "ONNX Runtime INT8 (all)"), ("ort_int8_aware", "ONNX Runtime INT8 (accuracy-aware 99%)"),
            ("pt2", "AOTInductor pt2"))
#: backend key -> the export variant it runs (its size, agreement and export time)
VARIANT = {"ort_fp32": "fp32", "ort_int8": "int8", "ort_int8_aware": "int8_aware", "pt2": "pt2"}


def _ms(value: float | None) -> str:
    return f"{value:.2f}" if isinstance(value, (int, float)) else "-"


def _load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _machine_line(machine: dict[str, Any]) -> str:
    cpu = machine.get("cpu", "?")
    cores = machine.get("cores") or machine.get("cpu_count")
    torch_v = machine.get("torch") or machine.get("versions", {}).get("torch")
    ort_v = machine.get("onnxruntime") or machine.get("versions", {}).get("onnxruntime")
    load = machine.get("load_average_start") or machine.get("loadavg_1m_5m_15m")
    load_txt = f", load average at start {load[0]:.1f}" if load else ""
    return f"{cpu}, {cores} cores, torch {torch_v}, onnxruntime {ort_v}{load_txt}"


def _newest_export(arch: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """``export-<arch>.json`` as ``benchmarks/run`` writes it (one model per process), and its entry."""
    data = _load(RESULTS / f"export-{arch}.json")
    if data is None:
        return None
    model = next((m for m in data.get("models", []) if m.get("arch") == arch), None)
    return (data, model) if model is not None else None


def _mib(entry: dict[str, Any]) -> str:
    """The file size in MiB (2^20 bytes); older results recorded only decimal megabytes."""
    size = entry.get("size_bytes", entry.get("size_mb", 0) * 1e6)
    return f"{size / 2**20:.2f}"


def _agree(agree: dict[str, Any], variant: str | None) -> str:
    if variant is None:
        return "reference"
    row = agree.get(variant)
    if isinstance(row, dict):
        return f"{100 * row['all']:.1f} / {100 * row['new']:.1f}"
    return "-" if row is None else f"{100 * row:.1f}"


def _floors(model: dict[str, Any]) -> tuple[float | None, float | None, str]:
    """The medians of the floors measured between the model's rounds, and their range in words."""
    import statistics

    found = model.get("floors") or []
    if not found:
        return None, None, ""
    fp32 = [f["fp32_gflops_per_s"] for f in found]
    int8 = [f["int8_gops_per_s"] for f in found]
    words = (f"fp32 {min(fp32):.0f}-{max(fp32):.0f} GFLOP/s, INT8 {min(int8):.0f}-{max(int8):.0f} GOP/s "
             f"over {len(found)} measurements")
    return statistics.median(fp32), statistics.median(int8), words


def perf_section() -> str:
    floor = _load(RESULTS / "floor.json") or {}
    flops = {a: m.get("gflops_per_image") for a, m in floor.get("models", {}).items()}
    lines = ["## Performance (CPU)", ""]
    rows, floor_words = [], []
    machine = None
    for arch in MODELS:
        found = _newest_export(arch)
        if found is None:
            continue
        data, model = found
        machine = machine or data["machine"]
        if "error" in model:
            rows.append(f"| {arch} | | export refused: {model['error'][:100]} | | | | | | | | |")
            continue
        agree = model["top1_agreement_with_eager"]
        search = model.get("int8_search") or {}
        fp32_nodes = {"ort_int8": "0", "ort_int8_aware": str(len(search.get("fp32_nodes", [])))
                      + (" (fp32 chosen)" if search.get("chosen") == "fp32" else "")}
        export_s = model["export_seconds"]
        fp32_floor, int8_floor, words = _floors(model)
        if words:
            floor_words.append(f"{arch}: {words}")
        gflop = flops.get(arch)
        for batch_key, timing in model["latency"].items():
            batch = int(batch_key.removeprefix("batch"))
            for key, label in BACKENDS:
                if key not in timing:
                    continue
                t = timing[key]
                variant = VARIANT.get(key)
                int8_graph = key == "ort_int8" or (key == "ort_int8_aware" and search.get("chosen") != "fp32")
                rate = int8_floor if int8_graph else fp32_floor
                of_floor = f"{100 * 1e3 * gflop * batch / rate / t['median_ms']:.0f}%" if gflop and rate else "-"
                size = _mib(model[f"onnx_{variant}"]) if variant and f"onnx_{variant}" in model else "-"
                rows.append(
                    f"| {arch} | {batch} | {label} | {t['median_ms']:.2f} | {_ms(t.get('p99_ms'))} "
                    f"| {t['speedup_vs_eager']:.2f}x | {size} | {_agree(agree, variant if variant else None)} "
                    f"| {fp32_nodes.get(key, '-')} | {export_s.get(variant, '-') if variant else '-'} | {of_floor} |"
                )
    if not rows:
        return "\n".join([*lines, "No benchmark results committed yet: run `benchmarks/run`.", ""])
    missing = [a for a in MODELS if _newest_export(a) is None]  # not run yet
    if missing:
        rows.append(f"| {', '.join(missing)} | | not yet measured by `benchmarks/run` | | | | | | | | |")
    lines += [
        "Generated by `benchmarks/run` from `benchmarks/results/` (224x224 inputs, 2 threads, every backend timed",
        "side by side in one process per model, rounds interleaved). Machine: " + _machine_line(machine or {}) + ".",
        "Benchmark models: a 7-digit head extended to 10 digits (7-9 new), trained on the digits until their own",
        "val accuracy at 224 passes 93% (test accuracy in the JSON). Top-1 agreement with eager on the 270 held-out",
        "digits test images, all / new digits only (the search used the val split, calibration the train split).",
        "'of floor' = the model's FLOPs at the compute floor measured in the same process between the timing",
        "rounds (fp32: a 2048³ torch.mm; INT8 graphs: ONNX Runtime's MatMulInteger u8×s8, a lower bound for",
        "graphs that keep nodes in fp32) / measured time. The accuracy-aware search decides at batch 1.",
        "Floors measured: " + "; ".join(floor_words) + ".",
        "",
        "![latency per backend](benchmarks/results/performance.png)",
        "",
        "| model | batch | backend | p50 ms | p99 ms | speedup | size MiB | top-1 agreement % (all / new) "
        "| nodes in fp32 | export s | of floor |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]
    validation = sorted(RESULTS.glob("validation-*.json"))
    if validation:
        v = json.loads(validation[-1].read_text())
        lines += [f"Validation overhead (`benchmarks/validation_bench.py`, {validation[-1].name}): "
                  f"{_validation_line(v)}", ""]
    return "\n".join(lines)


def _validation_line(v: dict[str, Any]) -> str:
    over = v.get("overhead", {})
    rep = v.get("repeatability", {})
    pct = over.get("fraction")
    pct_txt = f"{100 * pct:.1f}% of wall time" if isinstance(pct, (int, float)) else "see file"
    worst = rep.get("worst_relative_difference")
    worst_txt = ""
    if isinstance(worst, (int, float)):
        worst_txt = f"; repeated p50 latencies differ by at most {100 * worst:.1f}%"
    return pct_txt + worst_txt + "."


def study_section() -> str:
    data = _load(RESULTS / "head_strategies.json")
    lines = ["## Head-strategy study", ""]
    if data is None:
        return "\n".join([*lines, "No study results committed yet: run `python benchmarks/head_strategies.py`.", ""])
    s = data["settings"]
    epochs = [0, *s["budgets_epochs"]]
    lines += [
        f"`benchmarks/head_strategies.py`: one resnet18 pretrained from scratch on digits 0-6 (32x32, test top-1 "
        f"{100 * data['pretrained_old_top1']:.1f}% on 0-6), extended to ten digits with each strategy and fine-tuned "
        f"with the same budget (epoch 1 = head only with the backbone frozen, then the whole model), seeds "
        f"{', '.join(map(str, s['seeds']))}. Test top-1 over all ten classes, split by old digits (0-6) and new "
        "digits (7-9), mean ± std over seeds. Plot: `benchmarks/results/head_strategies.png`.",
        "",
        "| strategy | "
        + " | ".join([*(f"new @{e} ep" for e in epochs), *(f"old @{e} ep" for e in epochs)])
        + " |",
        "|---|" + "---|" * (2 * len(epochs)),
    ]
    for variant, stats in data["summary"].items():
        cells = [f"{100 * stats[f'new@{e}']['mean']:.1f} ± {100 * stats[f'new@{e}']['std']:.1f}" for e in epochs]
        cells += [f"{100 * stats[f'old@{e}']['mean']:.1f} ± {100 * stats[f'old@{e}']['std']:.1f}" for e in epochs]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    lines += ["", "![head strategies](benchmarks/results/head_strategies.png)", ""]
    notes = ROOT / "benchmarks" / "results" / "head_strategies.md"
    if notes.is_file():
        lines += [notes.read_text().strip(), ""]
    return "\n".join(lines)


def keep_old_section() -> str:
    data = _load(RESULTS / "keep_old.json")
    lines = ["## Keep-old study: fine-tuning with data for the new classes only", ""]
    if data is None:
        return "\n".join([*lines, "No results committed yet: run `python benchmarks/keep_old_study.py`.", ""])
    if data.get("issue") == 22:  # the issue-22 study: its tables (keep_old.md) between the hand-written
        # introduction and reading, committed beside them so that regenerating the README keeps them
        parts = [RESULTS / "keep_old_intro.md", RESULTS / "keep_old.md", None, RESULTS / "keep_old_reading.md"]
        for part in parts:
            text = "![keep-old study](benchmarks/results/keep_old.png)" if part is None else (
                part.read_text().strip() if part.is_file() else "")
            lines += [text, ""] if text else []
        return "\n".join(lines)
    s = data["settings"]
    lines += [
        f"`benchmarks/keep_old_study.py`: one resnet18 pretrained from scratch on digits 0-6 (32x32, test top-1 "
        f"{100 * data['pretrained_old_top1']:.1f}% on 0-6), extended to ten digits with random new rows and "
        f"fine-tuned for {s['epochs']} epochs (the first head only) on images of 7-9 ONLY, once per `keep_old` "
        f"mode, seeds {', '.join(map(str, s['seeds']))}. Ten-way test top-1 on the new and the old digits, and the "
        "old-class retention `rehead finetune` reports (top-1 agreement with the original model, argmax over the "
        "old logits only, on the digits test split), mean ± std over seeds. Plot: `benchmarks/results/keep_old.png`.",
        "",
        "| keep_old | new digits 7-9 | old digits 0-6 (ten-way) | old-class retention |",
        "|---|---|---|---|",
    ]
    for mode, stats in data["summary"].items():
        cells = [f"{100 * stats[p]['mean']:.1f} ± {100 * stats[p]['std']:.1f}" for p in ("new", "old", "retention")]
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    lines += ["", "![keep-old study](benchmarks/results/keep_old.png)", ""]
    notes = RESULTS / "keep_old.md"
    if notes.is_file():
        lines += [notes.read_text().strip(), ""]
    return "\n".join(lines)


#: the OpenVINO benchmark's backends, in table order: (key, label, floor kind, size key)
_OV_ROWS = (
    ("eager", "eager PyTorch", "fp32", None),
    ("ort_fp32", "ONNX Runtime fp32", "fp32", "onnx_fp32"),
    ("ort_int8", "ONNX Runtime INT8 (all)", "int8", "onnx_int8"),
    ("ov_fp32", "OpenVINO fp32", "fp32", "ov_fp32"),
    ("ov_bf16", "OpenVINO bf16 (fp32 IR, bf16 inference)", "bf16", "ov_fp32"),
    ("ov_int8", "OpenVINO INT8 (all, rehead's QDQ)", "int8", "ov_int8"),
    ("ov_int8_aware", "OpenVINO INT8 (accuracy-aware 99%, searched in OpenVINO)", "int8", "ov_int8_aware"),
    ("ov_int8_nncf", "OpenVINO INT8 (NNCF accuracy control, 1% drop)", "int8", None),
)


def openvino_section() -> str:
    """The OpenVINO table: every ``openvino-<model>.json``, backends side by side per batch size."""
    import statistics

    files = sorted(RESULTS.glob("openvino-*.json"))
    lines = ["## OpenVINO beside ONNX Runtime (CPU)", ""]
    if not files:
        return "\n".join([*lines, "No results committed yet: run `python benchmarks/openvino_bench.py`.", ""])
    first = json.loads(files[0].read_text())
    lines += [
        "Generated from `benchmarks/results/openvino-*.json` (`benchmarks/openvino_bench.py`): the benchmark "
        "models of the table above (224x224, trained on the digits), every backend timed side by side in one "
        "process, rounds interleaved, 2 threads. "
        + _machine_line({k: v for k, v in first["machine"].items() if not k.startswith("load")})
        + f"; OpenVINO "
        f"{first['machine'].get('openvino', '?')}. One run per model; load average at its start: " + ", ".join(
            f"{json.loads(p.read_text())['model']['arch']} {_load_at_start(json.loads(p.read_text())['machine'])}"
            for p in files
        ) + ". 'of floor' = the model's FLOPs at the compute floor measured "
        "between the rounds (fp32: a 2048³ torch.mm; INT8: ONNX Runtime's MatMulInteger u8×s8; bf16: a 2048³ "
        "MatMul in OpenVINO with bf16 inference, AMX here) / measured time.",
        "",
        "| model | batch | backend | p50 ms | p99 ms | speedup | size MiB | top-1 agreement % (all / new) | of floor |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for path in files:
        report = json.loads(path.read_text())
        model = report["model"]
        floors = model.get("floors") or []
        floor = {
            kind: statistics.median(f[key] for f in floors) if floors else None
            for kind, key in (("fp32", "fp32_gflops_per_s"), ("int8", "int8_gops_per_s"), ("bf16", "bf16_gflops_per_s"))
        }
        sizes = dict(model.get("size_bytes", {}))
        if "nncf" in model:
            sizes["ov_int8_nncf"] = model["nncf"]["size_bytes"]
        agree = model.get("top1_agreement_with_eager", {})
        for batch_key, timing in model["latency"].items():
            batch = int(batch_key.removeprefix("batch"))
            for key, label, kind, size_key in _OV_ROWS:
                row = timing.get(key)
                if row is None:
                    continue
                size = sizes.get(size_key or key)
                if key == "ov_int8_aware" and (model.get("ov_int8_search") or {}).get("chosen") == "fp32":
                    kind, label = "fp32", label + " (fp32 chosen)"  # no INT8 graph was faster: fp32 was written
                of_floor = "-"
                if floor.get(kind):
                    seconds = row["median_ms"] / 1e3
                    of_floor = f"{100 * model['gflops_per_image'] * batch / floor[kind] / seconds:.0f}%"
                lines.append(
                    f"| {model['arch']} | {batch} | {label} | {row['median_ms']:.2f} | {row['p99_ms']:.2f} | "
                    f"{row['speedup_vs_eager']:.2f}x | {'-' if size is None else f'{size / 2**20:.2f}'} | "
                    f"{_agree(agree, key if key != 'eager' else None)} | {of_floor} |"
                )
    bf16 = []
    for path in files:
        model = json.loads(path.read_text())["model"]
        if "bf16_max_abs_vs_eager" not in model:
            continue
        within = model.get("bf16_within_preset")
        verdict = (
            f" (bf16 preset: {'within' if within['bf16'] else 'outside'}; fp16 preset: "
            f"{'within' if within['fp16'] else 'outside'})"
            if within
            else ""
        )
        bf16.append(f"{model['arch']} max |Δ| {model['bf16_max_abs_vs_eager']:.3f}{verdict}")
    if bf16:
        lead = "OpenVINO bf16 inference against eager's logits on the digits test split: "
        lines += ["", lead + "; ".join(bf16) + "."]
    return "\n".join([*lines, ""])


def _load_at_start(machine: dict[str, Any]) -> str:
    load = machine.get("load_average_start") or machine.get("loadavg_1m_5m_15m")
    return f"{load[0]:.1f}" if load else "?"


def replace_block(text: str, name: str, body: str) -> str:
    pattern = re.compile(rf"<!-- {name}:start -->.*?<!-- {name}:end -->", re.S)
    return pattern.sub(lambda _: f"<!-- {name}:start -->\n{body}\n<!-- {name}:end -->", text)


def perf_plot(path: Path) -> bool:
    """Bar chart of p50 latency per backend, one panel per batch size; False if no results."""
    found = {arch: _newest_export(arch) for arch in MODELS}
    found = {a: f for a, f in found.items() if f is not None and "error" not in f[1]}
    if not found:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    batches = sorted({int(k.removeprefix("batch")) for _, m in found.values() for k in m["latency"]})
    fig, axes = plt.subplots(1, len(batches), figsize=(6 * len(batches), 4.2))
    axes = axes if len(batches) > 1 else [axes]
    width = 0.8 / len(BACKENDS)
    for ax, batch in zip(axes, batches, strict=True):
        for i, (key, label) in enumerate(BACKENDS):
            xs, ys = [], []
            for j, (_, model) in enumerate(found.values()):
                timing = model["latency"].get(f"batch{batch}", {})
                if key in timing:
                    xs.append(j + i * width)
                    ys.append(timing[key]["median_ms"])
            ax.bar(xs, ys, width=width, label=label)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(found))], list(found), fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("p50 latency (ms, log scale)")
        ax.set_title(f"batch {batch}, 224x224, 2 threads")
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def main() -> None:
    if perf_plot(RESULTS / "performance.png"):
        print(f"wrote {RESULTS / 'performance.png'}")
    readme = ROOT / "README.md"
    text = readme.read_text()
    text = replace_block(text, "study", study_section())
    text = replace_block(text, "keepold", keep_old_section())
    text = replace_block(text, "perf", perf_section())
    text = replace_block(text, "openvino", openvino_section())
    readme.write_text(text)
    print(f"updated {readme}")


if __name__ == "__main__":
    main()
