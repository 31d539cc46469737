"""The keep-old study: fine-tuning with images of the new classes only, how much of the old survives?

From one resnet18 pretrained on digits 0-6 (32x32, random init), extend the head to all ten
digits with random new rows (``pad-random``: the old rows, and so the old digits' accuracy, stay
as they were; imprinting would already take the old digits' test images, see the head-strategy
study) and fine-tune with images of 7-9 ONLY, once per ``keep_old`` mode: ``none`` (plain
fine-tuning), ``freeze-rows`` (the old rows stay bit-identical), ``distill`` (Learning without
Forgetting: the original model's logits are soft targets for the old logits) and
``freeze-rows+distill``. Report ten-way top-1 on the held-out test split, separately for old
digits (0-6) and new ones (7-9), and the old-class retention rehead records (top-1 agreement
with the original model, argmax over the old logits only, on the digits test split), over
several seeds (mean, std, min, max).

    python benchmarks/keep_old_study.py [--seeds 1,2,3] [--quick]

Writes benchmarks/results/keep_old.json and keep_old.png.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_description
from head_strategies import pretrain_base, split_top1, write_result

from toolkit.demo import ALL_DIGITS, OLD_DIGITS
from toolkit.extension import extend
from toolkit.finetune import KEEP_OLD_CHOICES, FinetuneConfig, finetune
from toolkit.model_dir import load_model_dir

RESULTS = Path(__file__).resolve().parent / "results"
NEW_DIGITS = tuple(d for d in ALL_DIGITS if d not in OLD_DIGITS)


def run(seeds: list[int], epochs: int, pretrain_epochs: int, work: Path) -> dict[str, Any]:
    base, _, images, labels, base_old, pretrain_s = pretrain_base(work, pretrain_epochs)
    names = [str(d) for d in ALL_DIGITS]
    runs: list[dict[str, Any]] = []
    for seed in seeds:
        ext_dir = work / f"ext-{seed}"
        ext = extend(strategy="pad-random", model_dir=base, num_classes=10, class_names=names, seed=seed,
                     output=ext_dir)
        before = split_top1(ext.module, images, labels)
        for mode in KEEP_OLD_CHOICES:
            t0 = time.perf_counter()
            out = work / f"{mode}-{seed}"
            cfg = FinetuneConfig(epochs=epochs, freeze_epochs=1, seed=seed, plot=False, keep_old=mode)
            result = finetune(
                ext_dir, "digits", cfg, output=out, digits=NEW_DIGITS, retention_data="digits", progress=False
            )
            after = split_top1(load_model_dir(out).module, images, labels)
            retention = result.retention.to_json() if result.retention is not None else None
            runs.append({"mode": mode, "seed": seed, "extended": before, "top1": after, "retention": retention,
                         "seconds": time.perf_counter() - t0})
            print(f"seed {seed} {mode:19s} new {after['new']:.3f} old {after['old']:.3f} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
            shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(out.with_name(out.name + ".ckpt"), ignore_errors=True)
    return {"pretrain_seconds": pretrain_s, "pretrained_old_top1": base_old, "runs": runs}


def _stats(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "std": statistics.pstdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "n": len(values)}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for mode in KEEP_OLD_CHOICES:
        mine = [r for r in runs if r["mode"] == mode]
        table[mode] = {part: _stats([r["top1"][part] for r in mine]) for part in ("new", "old", "all")}
        table[mode]["retention"] = _stats([r["retention"]["after"] for r in mine if r["retention"]])
    parts = ("new", "old", "all")
    table["extended (no fine-tuning)"] = {part: _stats([r["extended"][part] for r in runs]) for part in parts}
    table["extended (no fine-tuning)"]["retention"] = _stats([1.0])  # the original model agrees with itself
    return table


def plot(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = list(summary)
    fig, ax = plt.subplots(figsize=(9, 4.2))
    width = 0.27
    bars = (
        ("new", "new digits 7-9, ten-way top-1"),
        ("old", "old digits 0-6, ten-way top-1"),
        ("retention", "old-class retention (agreement with the original over the old logits)"),
    )
    for k, (part, label) in enumerate(bars):
        means = [100 * summary[m][part]["mean"] for m in modes]
        stds = [100 * summary[m][part]["std"] for m in modes]
        xs = [i + (k - 1) * width for i in range(len(modes))]
        ax.bar(xs, means, width, yerr=stds, capsize=3, label=label)
    ax.set_xticks(range(len(modes)))
    ax.set_xticklabels(modes, fontsize=8)
    ax.set_ylabel("% of the digits test split")
    ax.set_ylim(0, 100)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2)
    ax.set_title("Fine-tuning on images of 7-9 only: resnet18 pretrained on 0-6, padded to 0-9\n"
                 "(mean ± std over seeds)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated seeds (the base is pretrained with seed 0)")
    parser.add_argument("--epochs", type=int, default=6, help="fine-tuning epochs (the first head only)")
    parser.add_argument("--pretrain-epochs", type=int, default=6)
    parser.add_argument("--quick", action="store_true", help="one seed, short pretraining and fine-tuning")
    parser.add_argument("--out", type=Path, default=RESULTS / "keep_old.json")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.quick:
        seeds, args.epochs, args.pretrain_epochs = seeds[:1], 2, 2
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rehead-keep-old-") as tmp:
        raw = run(seeds, args.epochs, args.pretrain_epochs, Path(tmp))
    summary = summarise(raw["runs"])
    result = {
        "benchmark": "keep_old",
        "machine": machine_description(),
        "settings": {"arch": "resnet18", "input_size": 32, "old_digits": list(OLD_DIGITS),
                     "new_digits": list(NEW_DIGITS), "training_data": "digits 7-9 only", "seeds": seeds,
                     "epochs": args.epochs, "freeze_epochs": 1, "pretrain_epochs": args.pretrain_epochs,
                     "extension": "pad-random",
                     "metric": "top-1 over all ten classes on the digits test split"},
        "pretrained_old_top1": raw["pretrained_old_top1"],
        "summary": summary,
        "runs": raw["runs"],
        "wall_seconds": time.perf_counter() - started,
    }
    write_result(result, args.out, lambda png: plot(summary, png))
    for mode, stats in summary.items():
        kept = f" retention {100 * stats['retention']['mean']:5.1f}" if "retention" in stats else ""
        print(f"{mode:26s} new {100 * stats['new']['mean']:5.1f}±{100 * stats['new']['std']:4.1f} "
              f"old {100 * stats['old']['mean']:5.1f}±{100 * stats['old']['std']:4.1f}{kept}")


if __name__ == "__main__":
    main()
