"""Was the README's old 4.89x (INT8 vs eager, resnet18, batch 1) a property of its benchmark model?

    python benchmarks/int8_ratio_check.py      # after benchmarks/export_bench.py --models resnet18

The old recipe (64x64 training, BatchNorm statistics re-estimated at 224) against this benchmark's
model (trained at 224, cached in benchmarks/.cache): the fraction of denormal activations and
weights, and eager batch-1 latency of both side by side (``converters.timing``), with flush-to-zero
off and on. Prints one JSON object.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from pathlib import Path

import torch

from converters.timing import interleaved_samples
from toolkit.data import load_samples
from toolkit.extension import extend
from toolkit.models.model_dir import load_model_dir
from toolkit.records import Preprocessing

MODEL = Path(__file__).resolve().parent / ".cache" / "resnet18-224-s300-a0.93" / "model"
TINY = torch.finfo(torch.float32).tiny


def denormals(model: torch.nn.Module, x: torch.Tensor) -> dict[str, float]:
    """Fractions of denormal values among the conv/BN/ReLU outputs on ``x`` and among the weights."""
    counts = [0, 0]

    def hook(_module: torch.nn.Module, _inputs: object, out: torch.Tensor) -> None:
        counts[0] += int(((out != 0) & (out.abs() < TINY)).sum())
        counts[1] += out.numel()

    kinds = (torch.nn.Conv2d, torch.nn.BatchNorm2d, torch.nn.ReLU)
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, kinds)]
    with torch.no_grad():
        model(x)
    for handle in handles:
        handle.remove()
    weights = [p for p in model.parameters()]
    tiny = sum(int(((p != 0) & (p.abs() < TINY)).sum()) for p in weights)
    return {"activations": counts[0] / max(1, counts[1]), "weights": tiny / sum(p.numel() for p in weights)}


def old_recipe() -> torch.nn.Module:
    """resnet18 as benchmarks/export_bench.py built it before: 200 Adam steps at 64x64, then
    BatchNorm statistics re-estimated on 96 images at 224x224."""
    torch.manual_seed(0)
    model = extend(strategy="replace", arch="resnet18", num_classes=12, random_init=True,
                   preprocessing=Preprocessing(input_size=(224, 224)), output=None).module
    small, labels = load_samples("digits", Preprocessing(input_size=(64, 64)), split="train")
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(200):
        idx = torch.randint(0, len(small), (32,), generator=gen)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(small[idx]), labels[idx]).backward()
        opt.step()
    big, _ = load_samples("digits", Preprocessing(input_size=(224, 224)), split="train", n=96)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    with torch.no_grad():
        for part in big.split(16):
            model(part)
    return model.eval()


def main() -> None:
    torch.set_num_threads(2)
    loaded = load_model_dir(MODEL)
    x = load_samples("digits", loaded.config.preprocessing, split="test")[0][:1].contiguous()
    models = {"this benchmark's model": loaded.module.eval(), "old recipe": old_recipe()}

    def call(model: torch.nn.Module) -> Callable[[], object]:
        def run() -> object:
            with torch.inference_mode():
                return model(x)

        return run

    result: dict[str, object] = {"denormal_fraction": {k: denormals(m, x) for k, m in models.items()}}
    for flush in (False, True):
        torch.set_flush_denormal(flush)
        samples = interleaved_samples({k: call(m) for k, m in models.items()}, 7, 10)
        result[f"eager_ms_flush_denormal_{flush}"] = {
            k: round(statistics.median(t for part in v for t in part), 2) for k, v in samples.items()
        }
    torch.set_flush_denormal(False)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
