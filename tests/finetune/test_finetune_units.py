"""Config validation, RNG round trips, phases, schedules and freezing policies."""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from toolkit.errors import InvalidArgumentError
from toolkit.finetune import FinetuneConfig, plan_phases, warmup_cosine
from toolkit.finetune import rng as rng_mod
from toolkit.finetune.optim import apply_policy, group_lrs, make_optimizer, make_scheduler


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epochs", 0),
        ("epochs", 2.5),
        ("epochs", True),
        ("batch_size", -1),
        ("lr", 0.0),
        ("lr", float("nan")),
        ("label_smoothing", 1.0),
        ("optimizer", "adam"),
        ("device", "tpu"),
        ("patience", 0),
        ("clip_grad_norm", -1.0),
        ("augment", "rotate"),
    ],
)
def test_config_rejects_bad_values(field: str, value: object) -> None:
    with pytest.raises(InvalidArgumentError, match=field):
        FinetuneConfig(**{field: value})  # type: ignore[arg-type]


def test_config_json_round_trip_and_differences() -> None:
    cfg = FinetuneConfig(epochs=3, lr=1e-3, threads=2)
    again = FinetuneConfig.from_json(cfg.to_json())
    assert again == cfg
    other = cfg.replace(lr=2e-3, threads=1, checkpoint_every_steps=5)
    assert cfg.differences(other) == ["lr: 0.001 vs 0.002"]  # threads and checkpointing may change
    assert FinetuneConfig().uses_amp() is False
    assert FinetuneConfig(device="cuda").uses_amp() is True
    assert FinetuneConfig(amp=True).uses_amp() is True


def test_phases() -> None:
    two = plan_phases(FinetuneConfig(epochs=5, freeze_epochs=2))
    assert [(p.policy, p.start, p.stop) for p in two] == [("head", 0, 2), ("full", 2, 5)]
    assert [p.policy for p in plan_phases(FinetuneConfig(epochs=3, freeze_epochs=0))] == ["full"]
    assert [p.policy for p in plan_phases(FinetuneConfig(epochs=3, freeze_epochs=5))] == ["head"]
    staged = plan_phases(FinetuneConfig(epochs=3, freeze_epochs=1, unfreeze_stages=2))
    assert staged[1].policy == "stages:2"


def test_every_training_image_is_used_but_a_lone_leftover() -> None:
    from toolkit.finetune._loop import batches_per_epoch, left_out

    # 152 images in batches of 64: 64 + 64 + 24, nothing dropped (it used to drop 24)
    assert (batches_per_epoch(152, 64), left_out(152, 64)) == (3, 0)
    assert (batches_per_epoch(128, 64), left_out(128, 64)) == (2, 0)
    # one image over would be a batch of one (BatchNorm fails): it sits that epoch out
    assert (batches_per_epoch(129, 64), left_out(129, 64)) == (2, 1)
    assert (batches_per_epoch(30, 64), left_out(30, 64)) == (1, 0)


def test_warmup_cosine_shape() -> None:
    f = warmup_cosine(100, 10, 0.01)
    values = [f(s) for s in range(100)]
    assert values[0] == pytest.approx(1 / 11)
    assert values[10] == pytest.approx(1.0)
    assert all(a <= b for a, b in itertools.pairwise(values[:11]))  # warm-up rises
    assert all(a >= b for a, b in itertools.pairwise(values[10:]))  # cosine falls
    assert values[55] == pytest.approx(0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert f(100) == pytest.approx(0.01)
    assert warmup_cosine(1, 5, 0.0)(0) == pytest.approx(1.0)  # warm-up never eats the whole phase


def test_rng_capture_restore_survives_weights_only(tmp_path: Path) -> None:
    from toolkit.heads.modules import seeded

    outside = torch.random.get_rng_state()
    cpu = torch.device("cpu")
    with seeded(3):
        state = rng_mod.capture(cpu)
        expected = torch.rand(3)
        buffer = io.BytesIO()
        torch.save(state, buffer)
        buffer.seek(0)
        loaded = torch.load(buffer, weights_only=True)
        torch.rand(5)  # move the stream on
        rng_mod.restore(loaded, cpu)
        assert torch.equal(torch.rand(3), expected)
    with seeded(3):
        assert torch.equal(torch.rand(3), expected)  # the same seed, the same stream
    assert torch.equal(torch.random.get_rng_state(), outside)  # and the caller's is untouched
    same = [torch.rand(4, generator=rng_mod.derived_generator(1, 2, 3)) for _ in range(2)]
    assert torch.equal(*same)
    assert not torch.equal(
        torch.rand(4, generator=rng_mod.derived_generator(1, 2)),
        torch.rand(4, generator=rng_mod.derived_generator(1, 3)),
    )


def test_policies_and_optimizer_groups(make_model_dir: Callable[..., Path]) -> None:
    from toolkit.models.model_dir import load_model_dir

    loaded = load_model_dir(make_model_dir())
    model, spec = loaded.module, loaded.config.head
    cfg = FinetuneConfig(lr=1e-2, backbone_lr_mult=0.1, epochs=2, freeze_epochs=1)
    phases = plan_phases(cfg)
    apply_policy(model, spec, "head")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"fc.weight", "fc.bias"}
    model.train()
    bn = model.bn1
    before = bn.running_mean.clone()
    model(torch.randn(4, 3, 32, 32))
    assert torch.equal(bn.running_mean, before)  # BatchNorm statistics frozen with the backbone
    opt = make_optimizer(model, spec, cfg)
    assert group_lrs(opt) == {"head": pytest.approx(1e-2 / 1), "backbone": None}

    apply_policy(model, spec, "full")
    assert all(p.requires_grad for p in model.parameters())
    model.train()
    model(torch.randn(4, 3, 32, 32))
    assert not torch.equal(bn.running_mean, before)
    opt = make_optimizer(model, spec, cfg)
    make_scheduler(opt, cfg, phases[1], steps_per_epoch=10)  # sets the first step's learning rates
    lrs = group_lrs(opt)
    assert lrs["backbone"] == pytest.approx(lrs["head"] * 0.1)  # type: ignore[operator]
    assert isinstance(opt, torch.optim.AdamW)
    assert isinstance(make_optimizer(model, spec, cfg.replace(optimizer="sgd")), torch.optim.SGD)

    apply_policy(model, spec, "stages:1")
    trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"layer4", "fc"}


RECORD = {
    "epoch": 1, "epochs": 2, "phase": "head", "train_loss": 0.5, "train_top1": 0.9, "val_loss": 0.4,
    "val_top1": 0.95, "images_per_s": 123.0, "seconds": 1.0,
}  # fmt: skip


def test_training_progress_lines() -> None:
    from toolkit.finetune import TrainingProgress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    buffer = io.StringIO()
    with TrainingProgress(True, stream=buffer, interval_s=0.0) as plain:
        plain.start_epoch(1, 2, "head", 5, 0)
        plain.step(1, 0.5, 0.9, 123.0)
        plain.end_epoch(RECORD)
    lines = buffer.getvalue().splitlines()
    assert lines[0] == "[1/5] epoch 1/2 [head]: loss 0.5000 top-1 0.900 123 img/s"
    assert lines[1].startswith("epoch 1/2 [head] loss 0.5000 top-1 0.900 | val loss 0.4000 val top-1 0.950")

    out = Terminal()
    with TrainingProgress(True, stream=out) as rich:
        rich.start_epoch(1, 2, "head", 5, 0)
        rich.step(5, 0.5, 0.9, 123.0)
        rich.end_epoch(RECORD)
        rich.message("note [not markup]")
    text = out.getvalue()
    assert "epoch 1/2 [head] loss 0.5000" in text and "note [not markup]" in text

    silent = io.StringIO()
    with TrainingProgress(stream=silent) as quiet:
        quiet.start_epoch(1, 2, "head", 5, 0)
        quiet.step(5, 0.5, 0.9, 123.0)
        quiet.end_epoch(RECORD)
    assert silent.getvalue() == ""
