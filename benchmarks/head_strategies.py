"""The head-strategy study: does informed initialisation of new classes converge faster than random?

From one resnet18 pretrained on digits 0-6 (32x32, random init), extend the head to all ten
digits with every strategy (replace, pad-random, pad-copy, pad-mean, imprint with 1/5/20 examples
per new class, bottleneck, mlp) and fine-tune each with the same budget and seed. Report top-1 on
the held-out test split, separately for the old digits (0-6) and the new ones (7-9), after 0
epochs (the extended model as is), 1 epoch (head only, backbone frozen) and 3 epochs (1 head-only
+ 2 whole-model), over several seeds (mean, std, min, max). The seeds differ from the pretraining
seed (0) on purpose: with the same seed, ``replace`` redraws the pretrained head's *initial* rows
(nn.Linear's init draws row by row), which the trained backbone still fits.

    python benchmarks/head_strategies.py [--seeds 0,1,2] [--quick]

Writes benchmarks/results/head_strategies.json and head_strategies.png.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_description

from toolkit.data.digits import digits_tensors
from toolkit.demo import ALL_DIGITS, OLD_DIGITS, imprint_examples
from toolkit.extension import extend
from toolkit.finetune import PRETRAIN_CONFIG, FinetuneConfig, finetune, pretrain
from toolkit.models.model_dir import load_model_dir

RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS: dict[str, dict[str, Any]] = {
    "replace": {"strategy": "replace"},
    "pad-random": {"strategy": "pad-random"},
    "pad-copy": {"strategy": "pad-copy"},
    "pad-mean": {"strategy": "pad-mean"},
    "imprint-1": {"strategy": "imprint", "shots": 1},
    "imprint-5": {"strategy": "imprint", "shots": 5},
    "imprint-20": {"strategy": "imprint", "shots": 20},
    "bottleneck": {"strategy": "bottleneck"},
    "mlp": {"strategy": "mlp"},
}


@torch.no_grad()
def split_top1(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Top-1 over all ten classes, reported on the old-digit and new-digit test images separately."""
    model.eval()
    preds = torch.cat([model(images[i : i + 256]).argmax(1) for i in range(0, len(images), 256)])
    old = torch.isin(labels, torch.tensor(OLD_DIGITS))
    hit = preds == labels
    return {"all": float(hit.float().mean()), "old": float(hit[old].float().mean()),
            "new": float(hit[~old].float().mean())}


def pretrain_base(work: Path, pretrain_epochs: int) -> tuple[Path, Any, torch.Tensor, torch.Tensor, float, float]:
    """resnet18 pretrained from scratch on digits 0-6 at 32x32 (seed 0) in ``work/base``: its
    folder, preprocessing, the ten-digit test split (images, labels), its test top-1 on 0-6 and
    the seconds pretraining took. Shared by the head-strategy and keep-old studies."""
    torch.set_num_threads(2)
    base = work / "base"
    started = time.perf_counter()
    pretrain("resnet18", "digits", [str(d) for d in OLD_DIGITS],
             PRETRAIN_CONFIG.replace(epochs=pretrain_epochs, plot=False), output=base, input_size=32,
             digits=OLD_DIGITS, progress=False)
    pretrain_s = time.perf_counter() - started
    prep = load_model_dir(base).config.preprocessing
    images, labels = digits_tensors("test", prep)
    base_old = split_top1(load_model_dir(base).module, *digits_tensors("test", prep, OLD_DIGITS))["all"]
    print(f"pretrained on digits 0-6 in {pretrain_s:.0f} s: test top-1 on 0-6 = {base_old:.3f}", flush=True)
    return base, prep, images, labels, base_old, pretrain_s


def write_result(result: dict[str, Any], out: Path, draw: Callable[[Path], None]) -> None:
    """Write a study's ``result`` as JSON to ``out`` and its plot beside it (``draw(out.png)``)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    draw(out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')} in {result['wall_seconds']:.0f} s")


def run(seeds: list[int], budgets: list[int], pretrain_epochs: int, work: Path) -> dict[str, Any]:
    base, prep, images, labels, base_old, pretrain_s = pretrain_base(work, pretrain_epochs)
    names = [str(d) for d in ALL_DIGITS]
    new_digits = [d for d in ALL_DIGITS if d not in OLD_DIGITS]
    runs: list[dict[str, Any]] = []
    for seed in seeds:
        for variant, spec in VARIANTS.items():
            t0 = time.perf_counter()
            folder = work / f"{variant}-{seed}"
            examples = imprint_examples(prep, new_digits, spec["shots"], seed) if "shots" in spec else None
            ext = extend(strategy=spec["strategy"], model_dir=base, num_classes=10, class_names=names,
                         examples=examples, seed=seed, output=folder / "ext")
            scores = {0: split_top1(ext.module, images, labels)}
            for budget in budgets:
                cfg = FinetuneConfig(epochs=budget, freeze_epochs=1, seed=seed, plot=False, patience=None)
                finetune(folder / "ext", "digits", cfg, output=folder / f"ft{budget}", progress=False)
                scores[budget] = split_top1(load_model_dir(folder / f"ft{budget}").module, images, labels)
                shutil.rmtree(folder / f"ft{budget}.ckpt", ignore_errors=True)
            runs.append({"variant": variant, "seed": seed, "top1": {str(k): v for k, v in scores.items()},
                         "seconds": time.perf_counter() - t0})
            line = "  ".join(f"{k}ep new {v['new']:.3f} old {v['old']:.3f}" for k, v in scores.items())
            print(f"seed {seed} {variant:11s} {line}", flush=True)
            shutil.rmtree(folder, ignore_errors=True)
    return {"pretrain_seconds": pretrain_s, "pretrained_old_top1": base_old, "runs": runs}


def summarise(runs: list[dict[str, Any]], epochs: list[int]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for variant in VARIANTS:
        mine = [r for r in runs if r["variant"] == variant]
        table[variant] = {}
        for ep in epochs:
            for part in ("new", "old", "all"):
                values = [r["top1"][str(ep)][part] for r in mine]
                table[variant][f"{part}@{ep}"] = {
                    "mean": statistics.fmean(values),
                    "std": statistics.pstdev(values) if len(values) > 1 else 0.0,
                    "min": min(values),
                    "max": max(values),
                    "n": len(values),
                }
    return table


def plot(summary: dict[str, Any], epochs: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, part, title in ((axes[0], "new", "new digits 7-9"), (axes[1], "old", "old digits 0-6")):
        for variant, stats in summary.items():
            means = [100 * stats[f"{part}@{e}"]["mean"] for e in epochs]
            stds = [100 * stats[f"{part}@{e}"]["std"] for e in epochs]
            ax.errorbar(epochs, means, yerr=stds, marker="o", capsize=3, label=variant)
        ax.set_title(f"test top-1, {title}")
        ax.set_xlabel("fine-tuning epochs (1 = head only)")
        ax.set_xticks(epochs)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("top-1 (%)")
    axes[1].legend(fontsize=8, loc="lower right")
    fig.suptitle("Head strategies: resnet18 pretrained on digits 0-6, extended to 0-9 (mean ± std over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated seeds (the base is pretrained with seed 0)")
    parser.add_argument("--budgets", default="1,3", help="fine-tuning epochs to evaluate after")
    parser.add_argument("--pretrain-epochs", type=int, default=6)
    parser.add_argument("--quick", action="store_true", help="one seed, one budget, short pretraining")
    parser.add_argument("--out", type=Path, default=RESULTS / "head_strategies.json")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    budgets = [int(b) for b in args.budgets.split(",")]
    if args.quick:
        seeds, budgets, args.pretrain_epochs = seeds[:1], budgets[:1], 2
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rehead-study-") as tmp:
        raw = run(seeds, budgets, args.pretrain_epochs, Path(tmp))
    epochs = [0, *budgets]
    summary = summarise(raw["runs"], epochs)
    result = {
        "benchmark": "head_strategies",
        "machine": machine_description(),
        "settings": {"arch": "resnet18", "input_size": 32, "old_digits": list(OLD_DIGITS),
                     "new_digits": [7, 8, 9], "seeds": seeds, "budgets_epochs": budgets,
                     "pretrain_epochs": args.pretrain_epochs, "freeze_epochs": 1,
                     "metric": "top-1 over all ten classes on the digits test split"},
        "pretrained_old_top1": raw["pretrained_old_top1"],
        "summary": summary,
        "runs": raw["runs"],
        "wall_seconds": time.perf_counter() - started,
    }
    write_result(result, args.out, lambda png: plot(summary, epochs, png))
    for variant, stats in summary.items():
        cells = "  ".join(
            f"{e}ep new {100 * stats[f'new@{e}']['mean']:5.1f}±{100 * stats[f'new@{e}']['std']:4.1f} "
            f"old {100 * stats[f'old@{e}']['mean']:5.1f}"
            for e in epochs
        )
        print(f"{variant:11s} {cells}")


if __name__ == "__main__":
    main()
