"""Data-parallel fine-tuning through the real torchrun on CPU (gloo), and CSV manifests.

One 1-process run and one 2-process run (started with ``rehead finetune --nproc 2``, which hands
the command to torchrun) with the same global batch are compared checkpoint by checkpoint: the
head-only epoch must agree to float rounding, the whole-model epoch with synchronised BatchNorm
within the tolerance measured in docs/finetune.md. A third, 2-process run under
``torchrun --max-restarts 1`` has rank 1 SIGKILL itself mid-epoch (test hook
``REHEAD_TEST_KILL_AT_STEP``); torchrun restarts the group, which resumes from the last
checkpoint and must end with weights equal byte for byte to the uninterrupted 2-process run.

Global batch 33 on 376 training images: 11 batches of 33 (17 + 16 per rank) and one of 13
(7 + 6), so every step has unequal shares and the loss scaling that keeps them exact is tested.
SGD at a small learning rate: AdamW divides by the root of tiny second moments and a large
step makes training chaotic, both magnifying float rounding (see the docs for the figures); the
comparison is about the data-parallel mechanics, not the optimiser.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from toolkit.data import augment_batch, decode_images, load_training_data, read_manifest
from toolkit.errors import DataError
from toolkit.finetune import default_work_dir
from toolkit.finetune._loop import batches_per_epoch, left_out
from toolkit.models.model_dir import WEIGHTS_FILE
from toolkit.records import Preprocessing

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
CLI = [sys.executable, "-m", "toolkit.cli"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
STEPS_PER_EPOCH = 12
#: measured (docs/finetune.md): head phase 3.7e-9; whole model with sync_bn 7.2e-6, without 1.4e-4
HEAD_TOLERANCE = 1e-6
WHOLE_TOLERANCE = 3e-5


def _args(model_dir: Path, out: Path, *extra: str) -> list[str]:
    return [
        "finetune", str(model_dir), "--data", "digits", "--digits-subset", "0-2", "--epochs", "2",
        "--freeze-epochs", "1", "--batch-size", "33", "--optimizer", "sgd", "--lr", "0.0005", "--threads", "1",
        "--seed", "7", "--sync-bn", "--keep-checkpoints", "--no-plot", "-o", str(out), *extra,
    ]  # fmt: skip


def _run(command: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, env={**ENV, **env}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _weights(out: Path, step: int) -> dict[str, torch.Tensor]:
    state = torch.load(str(default_work_dir(out) / f"step-{step:08d}.pt"), weights_only=True)
    return {k: v for k, v in state["model"].items() if v.is_floating_point()}


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], *, params_only: bool = False) -> float:
    keys = [k for k in a if not (params_only and "running_" in k)]
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in keys)


@pytest.fixture(scope="module")
def runs(digits_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("distributed")
    one, two = root / "one", root / "two"
    _run([*CLI, *_args(digits_model_dir, one)])
    done = _run([*CLI, *_args(digits_model_dir, two), "--nproc", "2"])
    assert "on 2 processes" in done.stdout and done.stdout.count("wrote ") == 1  # rank 0 alone reports
    return {"one": one, "two": two}


def test_two_processes_equal_one_with_the_same_global_batch(runs: dict[str, Path]) -> None:
    head = _max_diff(_weights(runs["one"], STEPS_PER_EPOCH), _weights(runs["two"], STEPS_PER_EPOCH))
    assert head <= HEAD_TOLERANCE, head  # frozen BatchNorm: only the summation order differs
    end = 2 * STEPS_PER_EPOCH
    whole = _max_diff(_weights(runs["one"], end), _weights(runs["two"], end), params_only=True)
    assert whole <= WHOLE_TOLERANCE, whole
    assert whole > 0  # two processes really ran: the sums are added in another order
    import json

    one = json.loads((runs["one"] / "metrics.json").read_text())
    two = json.loads((runs["two"] / "metrics.json").read_text())
    assert two["world_size"] == 2 and one["world_size"] == 1
    # counts are summed over the ranks, never averaged: the same images, the same top-1
    assert [e["train_top1"] for e in two["epochs"]] == [e["train_top1"] for e in one["epochs"]]
    assert two["train_images_per_epoch"] == one["train_images_per_epoch"] == 376


def test_worker_killed_mid_epoch_group_restarts_and_ends_bit_identical(
    digits_model_dir: Path, runs: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "elastic"
    command = [*TORCHRUN, "--max-restarts", "1", "-m", "toolkit.cli", *_args(digits_model_dir, out)]
    # rank 1 dies after step 16 (epoch 2); the newest checkpoint is step 15's
    done = _run([*command, "--checkpoint-every-steps", "3"], REHEAD_TEST_KILL_AT_STEP="16")
    assert "resuming from" in done.stderr and "step 15)" in done.stderr, done.stderr[-3000:]
    assert (out / WEIGHTS_FILE).read_bytes() == (runs["two"] / WEIGHTS_FILE).read_bytes()


def test_bad_input_on_every_rank_is_one_line(digits_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "bad"
    command = [*TORCHRUN, "-m", "toolkit.cli", "finetune", str(digits_model_dir), "--data", str(tmp_path / "none.csv"),
               "-o", str(out)]  # fmt: skip
    done = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("rehead: error:")]
    assert len(errors) == 1 and "manifest" in errors[0] and "none.csv" in errors[0], done.stderr[-2000:]
    assert not out.exists()


SYNC_BN_SCRIPT = """
import copy, json, os, sys
import torch
from torch import nn
from torch.nn import functional as F
from toolkit.finetune.distributed import Distributed

dist = Distributed.from_env()
dist.start(torch.device("cpu"))
torch.manual_seed(0)
net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(144, 3))
x, y = torch.randn(11, 3, 8, 8) * 3 + 1, torch.randint(0, 3, (11,))
whole = copy.deepcopy(net)
F.cross_entropy(whole(x), y).backward()
start, stop = dist.share_span(11)  # 6 + 5 images
report = {}
for sync in (True, False):
    model = copy.deepcopy(net)
    with dist.sync_batchnorm(model, sync) as layers:
        ddp = dist.wrap(model, torch.device("cpu"))
        out = ddp(x[start:stop])
        (F.cross_entropy(out, y[start:stop]) * ((stop - start) * dist.world / 11)).backward()
    grads = max(float((p.grad - q.grad).abs().max()) for p, q in zip(model.parameters(), whole.parameters()))
    stats = max(float((a - b).abs().max()) for a, b in zip(model[1].buffers(), whole[1].buffers()))
    report[str(sync)] = {"layers": layers, "grads": grads, "stats": stats,
                         "output": float((out - whole(x)[start:stop]).abs().max()),
                         "restored": "forward" not in vars(model[1])}
    del ddp
if dist.rank == 1:
    with open(sys.argv[1], "w") as f:
        json.dump(report, f)
dist.close()
"""


def test_sync_batchnorm_equals_one_batch_with_unequal_shares(tmp_path: Path) -> None:
    """Outputs, every gradient and the running statistics of 2 ranks (6 + 5 images) against one
    process on all 11: synchronised, equal to rounding; per rank, visibly not (the test has teeth)."""
    import json

    script, out = tmp_path / "sync_bn.py", tmp_path / "report.json"
    script.write_text(SYNC_BN_SCRIPT)
    _run([*TORCHRUN, str(script), str(out)])
    report = json.loads(out.read_text())
    synced, local = report["True"], report["False"]
    assert synced["layers"] == 1 and local["layers"] == 0 and synced["restored"]
    assert max(synced["grads"], synced["stats"], synced["output"]) < 1e-5, synced
    assert min(local["grads"], local["output"]) > 1e-3, local


# --- pieces, in-process ----------------------------------------------------------------------------
def test_last_batch_kept_only_when_every_rank_gets_two() -> None:
    assert batches_per_epoch(376, 33) == batches_per_epoch(376, 33, world=2) == 12
    assert left_out(376, 33, world=2) == 0
    assert (batches_per_epoch(100, 33), left_out(100, 33)) == (3, 1)  # one process: a lone image sits out
    assert (batches_per_epoch(102, 33, world=2), left_out(102, 33, world=2)) == (3, 3)  # 3 < 2 per rank
    assert (batches_per_epoch(103, 33, world=2), left_out(103, 33, world=2)) == (4, 0)


def test_augmentation_of_a_split_batch_is_the_whole_batch_s() -> None:
    images = torch.randn(13, 3, 16, 16)
    whole = augment_batch(images, torch.Generator().manual_seed(5), mode="shift-flip")
    parts = [
        augment_batch(images[a:b], torch.Generator().manual_seed(5), mode="shift-flip", span=(a, 13))
        for a, b in ((0, 7), (7, 13))
    ]
    assert torch.equal(torch.cat(parts), whole)


# --- CSV manifests ---------------------------------------------------------------------------------
PREP = Preprocessing(input_size=(16, 16))
NAMES = ("0", "1", "2")


def _images(root: Path, per_class: int = 4) -> list[tuple[str, str]]:
    from toolkit.data.digits import digits_uint8

    images, labels = digits_uint8("train")
    rows = []
    for digit in range(3):
        for i, img in enumerate(images[labels == digit][:per_class]):
            rel = f"img/{digit}/{i}.png"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.kron(img, np.ones((2, 2), dtype=np.uint8))).save(root / rel)
            rows.append((rel, str(digit)))
    return rows


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_manifest_loads_like_the_folder_it_lists(tmp_path: Path) -> None:
    rows = _images(tmp_path)
    csv = _write(tmp_path / "data.csv", ["path,label"] + [f"{p},{label}" for p, label in rows])
    from_csv = load_training_data(csv, PREP, NAMES, val_ratio=0.25, seed=3)
    from_folder = load_training_data(tmp_path / "img", PREP, NAMES, val_ratio=0.25, seed=3)
    for a, b in ((from_csv.train, from_folder.train), (from_csv.val, from_folder.val)):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert from_csv.source.startswith(str(csv)) and from_csv.seen_classes() == (0, 1, 2)


def test_manifest_split_column_subset_of_classes_and_class_map(tmp_path: Path) -> None:
    rows = _images(tmp_path)
    lines = ["label,split,path,note"]  # any column order, extra columns ignored
    for i, (p, label) in enumerate(rows):
        if label != "2":  # classes "0" and "1" only, named "zero" / "one" and mapped
            lines.append(f"{'zero' if label == '0' else 'one'},{'val' if i % 4 == 0 else ''},{p},x")
    data = load_training_data(
        _write(tmp_path / "m.csv", lines), PREP, NAMES, class_map={"zero": "0", "one": "1"}
    )
    assert len(data.train[1]) == 6 and len(data.val[1]) == 2 and data.test is None
    assert data.seen_classes() == (0, 1) and data.unseen_classes() == (2,)


@pytest.mark.parametrize(
    ("line", "must_name"),
    [
        ("img/0/0.png", "line 3: 1 of the 2 columns"),
        ("img/0/9.png,0", "line 3: 'img/0/9.png' does not exist"),
        ("img/0/0.png,cat", "line 3: label 'cat' is no class of the model"),
        (",0", "line 3: empty path"),
    ],
)
def test_bad_manifest_rows_are_named_by_line(tmp_path: Path, line: str, must_name: str) -> None:
    _images(tmp_path, per_class=1)
    csv = _write(tmp_path / "bad.csv", ["path,label", "img/1/0.png,1", line])
    with pytest.raises(DataError) as err:
        load_training_data(csv, PREP, NAMES)
    assert must_name in err.value.message and "bad.csv" in err.value.message and err.value.param == "data"


def test_bad_manifest_header_and_split(tmp_path: Path) -> None:
    _images(tmp_path, per_class=1)
    with pytest.raises(DataError, match="line 1: the header must name the columns path and label"):
        read_manifest(_write(tmp_path / "h.csv", ["file,class", "img/0/0.png,0"]), NAMES)
    with pytest.raises(DataError, match="line 2: split 'dev' is not one of train, val, test"):
        read_manifest(_write(tmp_path / "s.csv", ["path,label,split", "img/0/0.png,0,dev"]), NAMES)


def test_manifest_for_samples_and_retention_images(tmp_path: Path) -> None:
    from toolkit.data import load_images, load_samples

    rows = _images(tmp_path, per_class=2)
    lines = ["path,label,split"] + [f"{p},{label},{'test' if i % 2 else 'train'}" for i, (p, label) in enumerate(rows)]
    csv = _write(tmp_path / "m.csv", lines)
    x, y = load_samples(csv, PREP, split="test", class_names=NAMES)
    assert x.shape == (3, 3, 16, 16) and y.tolist() == [0, 1, 2]
    assert load_images(csv, PREP).shape == (6, 3, 16, 16)
    assert torch.equal(load_images(csv, PREP, limit=2), load_images(tmp_path / "img" / "0", PREP))


def test_decoding_in_worker_processes_equals_in_process(tmp_path: Path) -> None:
    files = [tmp_path / p for p, _ in _images(tmp_path, per_class=2)]
    here = decode_images(files, PREP)
    workers = decode_images(files, PREP, workers=2, chunk=2)
    assert all(torch.equal(a, b) for a, b in zip(here, workers, strict=True))
    (tmp_path / "img/1/1.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"cannot read image .*1\.png"):  # one line, not a worker traceback
        decode_images(files, PREP, workers=2, chunk=2)


# --- NCCL ------------------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize("nproc", [1, 2])
def test_nccl_run_on_gpus(digits_model_dir: Path, tmp_path: Path, nproc: int) -> None:
    if torch.cuda.device_count() < nproc:
        pytest.skip(f"needs {nproc} CUDA GPUs, this machine has {torch.cuda.device_count()}")
    out = tmp_path / "nccl"
    learns = ["--optimizer", "adamw", "--lr", "0.003"]  # the defaults (the last value of a flag wins)
    command = [*TORCHRUN[:-1], str(nproc), "-m", "toolkit.cli", *_args(digits_model_dir, out), *learns]
    command += ["--device", "cuda"]
    done = _run(command)
    assert "wrote " in done.stdout
    import json

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == nproc and metrics["test_top1"] > 0.5
