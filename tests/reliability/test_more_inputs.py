"""Bad inputs, docs/bad-inputs.md rows 13, 15-18, 20, 21, 26, 29-31 and 38, through the CLI in
a real subprocess (``test_row<N>_*`` tests row N)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from reliability_util import LEDGER, assert_clean_failure, leftovers, run

from toolkit.models.model_dir import load_model_dir, save_model_dir


def _inputs(path: Path, array: np.ndarray) -> Path:
    np.savez(path, images=array)
    return path


def test_row13_train_mode_model_is_exported_in_eval_mode(tiny_dir: Path, tmp_path: Path) -> None:
    """A custom factory that hands back its model in train mode (dropout live, BatchNorm
    updating): the export runs it in eval mode, so ONNX Runtime matches eager eval exactly."""
    (tmp_path / "trainmode_models.py").write_text(textwrap.dedent("""
        import converters_testmodels as tm

        def make(num_classes=10):
            return tm.make_tiny(num_classes).train()
    """))
    loaded = load_model_dir(tiny_dir)
    model_dir = tmp_path / "model"
    save_model_dir(loaded.module, loaded.config.replace(arch="py:trainmode_models:make"), model_dir)
    out = tmp_path / "m.onnx"
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        proc = run(["export", "onnx", model_dir, "-o", out])
    finally:
        sys.path.remove(str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    import onnxruntime as ort

    x = torch.rand(3, 3, 16, 16)
    with torch.no_grad():
        eager = loaded.module.eval()(x).numpy()
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"images": x.numpy()})[0]
    np.testing.assert_allclose(got, eager, rtol=1e-4, atol=1e-4)
    again = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"images": x.numpy()})[0]
    assert np.array_equal(got, again)  # no dropout in the graph
    LEDGER["bad_inputs"] += 1


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_row15_non_finite_parity_inputs_fail_parity(tiny_dir: Path, tiny_onnx: Path, tmp_path: Path,
                                                    bad: float) -> None:
    images = np.random.default_rng(0).random((8, 3, 16, 16), dtype=np.float32)
    images[3, 1, 4, 4] = bad
    data = _inputs(tmp_path / "x.npz", images)
    report = tmp_path / "r.json"
    proc = run(["validate", tiny_dir, tiny_onnx, "--data", data, "--no-latency", "--json", report])
    assert proc.returncode == 1, proc.stderr
    assert "NaN/Inf" in proc.stdout + proc.stderr and "Traceback" not in proc.stderr
    parity = json.loads(report.read_text())["artifacts"][0]["parity"]
    assert parity["passed"] is False and parity["input_nonfinite"] == 1
    LEDGER["bad_inputs"] += 1


@pytest.mark.parametrize(
    ("shape", "dtype", "expect"),
    [((4, 3, 16, 16), np.float64, "dtype float64"), ((3, 16, 16), np.float32, "rank 3"),
     ((4, 1, 16, 16), np.float32, "1 channels"), ((4, 3, 15, 16), np.float32, "float32[N,3,16,16]")],
)
def test_row16_wrong_input_dtype_rank_or_channels(tiny_dir: Path, tiny_onnx: Path, tmp_path: Path,
                                                   shape: tuple[int, ...], dtype: type, expect: str) -> None:
    data = _inputs(tmp_path / "x.npz", np.zeros(shape, dtype=dtype))
    report = tmp_path / "report"
    proc = run(["validate", tiny_dir, tiny_onnx, "--data", data, "--no-latency", "--report", report])
    line = assert_clean_failure(proc, report, expect=expect)
    assert "float32[N,3,16,16]" in line


def test_row17_dynamic_batch_at_1_max_and_max_plus_1(tiny_dir: Path, tiny_onnx: Path, tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    proc = run(["validate", tiny_dir, tiny_onnx, "--batch-sizes", "1,8,9", "--samples", "18", "--no-latency",
                "--json", report])
    assert proc.returncode == 0, proc.stderr
    batches = json.loads(report.read_text())["artifacts"][0]["parity"]["batches"]
    assert [b["batch_size"] for b in batches] == [1, 8, 9] and all(b["passed"] for b in batches)
    LEDGER["bad_inputs"] += 1


@pytest.mark.gpu
def test_row17_beyond_a_tensorrt_profile_is_a_clear_error(tiny_dir: Path, tiny_onnx: Path, tmp_path: Path) -> None:
    """An engine built for batches up to 8, validated at 9: exit 2 naming the profile (runs where a
    GPU and TensorRT are; REHEAD_REQUIRE_GPU=1 makes its absence a failure)."""
    engine = tmp_path / "m.engine"
    built = run(["export", "tensorrt", tiny_onnx, "-o", engine, "--max-batch", "8", "--opt-batch", "8"])
    assert built.returncode == 0, built.stderr
    proc = run(["validate", tiny_dir, engine, "--device", "cuda", "--batch-sizes", "9", "--samples", "9",
                "--no-latency"])
    assert proc.returncode == 2 and "outside the engine's profile" in proc.stderr, proc.stderr
    LEDGER["bad_inputs"] += 1


def test_row18_model_over_two_gib_goes_to_external_data(tiny_dir: Path, tmp_path: Path) -> None:
    """``--external-data`` makes a small model take the path a model over 2 GiB takes by itself
    (``converters.onnx.external``): weights beside the model, reloaded, parity held."""
    out = tmp_path / "m.onnx"
    proc = run(["export", "onnx", tiny_dir, "-o", out, "--external-data"])
    assert proc.returncode == 0, proc.stderr
    data = [p for p in tmp_path.iterdir() if p.name != "m.onnx"]
    assert len(data) == 1 and data[0].stat().st_size > 1000, data
    report = tmp_path / "r.json"
    proc = run(["validate", tiny_dir, out, "--no-latency", "--json", report])
    assert proc.returncode == 0, proc.stderr
    LEDGER["bad_inputs"] += 1


def test_row20_op_newer_than_the_opset_is_named_before_writing(tiny_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    proc = run(["export", "onnx", tiny_dir, "-o", out, "--opset", "6"])
    assert_clean_failure(proc, out, expect="opset")


def test_row20_op_tensorrt_cannot_parse_is_named(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Einsum", ["x", "x"], ["y"], name="the_einsum", equation="ij,ij->ij"),
         helper.make_node("Custom", ["y"], ["z"], name="the_plugin", domain="my.plugins")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [2, 2])],
    )
    path = tmp_path / "g.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                     helper.make_opsetid("my.plugins", 1)]), str(path))
    before = path.read_bytes()
    proc = run(["lint", path, "--target", "tensorrt"])
    assert proc.returncode == 1, proc.stderr
    assert "my.plugins::Custom" in proc.stdout + proc.stderr and "the_plugin" in proc.stdout + proc.stderr
    assert path.read_bytes() == before and "Traceback" not in proc.stderr
    LEDGER["bad_inputs"] += 1


def test_row21_tensorrt_without_gpu_or_tensorrt_exits_3(tiny_onnx: Path, tmp_path: Path) -> None:
    import time

    before = tiny_onnx.read_bytes()
    out = tmp_path / "m.engine"
    start = time.monotonic()
    proc = run(["export", "tensorrt", tiny_onnx, "-o", out])
    elapsed = time.monotonic() - start
    line = assert_clean_failure(proc, out, expect="", exit_code=3)
    assert "tensorrt" in line.lower() or "gpu" in line.lower() or "cuda" in line.lower()
    assert elapsed < 60 and tiny_onnx.read_bytes() == before


def test_row26_existing_output_is_not_clobbered(tiny_dir: Path, tiny_onnx: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    out.write_bytes(b"precious")
    proc = run(["export", "onnx", tiny_dir, "-o", out])
    assert proc.returncode == 2 and "--overwrite" in proc.stderr and "Traceback" not in proc.stderr
    assert out.read_bytes() == b"precious" and not leftovers(out)
    LEDGER["bad_inputs"] += 1


def test_row26_output_that_cannot_be_written(tiny_dir: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = blocker / "m.onnx"
    proc = run(["export", "onnx", tiny_dir, "-o", out])
    assert_clean_failure(proc, out, expect="cannot")
    assert blocker.read_text() == "not a folder"


def test_row29_tolerance_exceeded_exits_1_with_per_slice_errors(tiny_dir: Path, tiny_onnx: Path,
                                                                tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    proc = run(["validate", tiny_dir, tiny_onnx, "--atol", "1e-12", "--rtol", "0", "--no-latency",
                "--json", report])
    assert proc.returncode == 1, proc.stderr
    assert "FAIL" in proc.stdout and "Traceback" not in proc.stderr
    artifact = json.loads(report.read_text())["artifacts"][0]
    results = artifact["parity"]["batches"][0]["slices"]
    assert {r["slice"] for r in results} >= {"all"} and not results[0]["passed"]
    metrics = results[0]["metrics"]
    assert {"cosine_min", "top1", "max_abs"} <= set(metrics)
    assert artifact["parity"]["failures"] and "all classes" in proc.stdout + proc.stderr
    LEDGER["bad_inputs"] += 1


def test_row30_noisy_latency_is_inconclusive_never_a_pass(tiny_dir: Path, tiny_onnx: Path, tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    proc = run(["validate", tiny_dir, tiny_onnx, "--max-cv", "1e-9", "--duration", "0.2", "--warmup", "0.05",
                "--batch-sizes", "1", "--json", report])
    assert "INCONCLUSIVE" in proc.stdout, proc.stdout
    data = json.loads(report.read_text())
    assert data["artifacts"][0]["latency_status"] == "inconclusive" and data["status"] != "pass"
    LEDGER["bad_inputs"] += 1


def _digit_folder(root: Path, classes: tuple[str, ...] = ("0", "1"), per_class: int = 2) -> Path:
    from PIL import Image

    for cls in classes:
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(np.full((16, 16, 3), 40 * i, dtype=np.uint8)).save(root / cls / f"{i}.png")
    return root


@pytest.mark.parametrize("problem", ["not-an-image", "unreadable", "empty-class"])
def test_row31_bad_image_folder_names_the_file_or_class(tiny_dir: Path, tmp_path: Path, problem: str) -> None:
    data = _digit_folder(tmp_path / "data", tuple(str(d) for d in range(10)))
    if problem == "not-an-image":
        (data / "3" / "notes.txt").write_text("hello")
        expect = "notes.txt"
    elif problem == "unreadable":
        (data / "4" / "broken.png").write_bytes(b"\x89PNG not really")
        expect = "broken.png"
    else:
        for f in (data / "5").iterdir():
            f.unlink()
        expect = "class '5'"
    out = tmp_path / "out"
    proc = run(["finetune", tiny_dir, "--data", data, "--epochs", "1", "-o", out])
    assert_clean_failure(proc, out, expect=expect)


@pytest.mark.parametrize(
    ("flags", "expect", "code"),
    [(["--min-agreement", "1.5"], "--min-agreement", 2), (["--min-agreement", "nan"], "--min-agreement", 2),
     (["--min-agreement", "0.99", "--max-fp32-nodes", "-1"], "--max-fp32-nodes", 2),
     (["--max-fp32-nodes", "3"], "--max-fp32-nodes", 2)],
)
def test_row38_accuracy_aware_int8_targets_out_of_range(tiny_dir: Path, tmp_path: Path, flags: list[str],
                                                        expect: str, code: int) -> None:
    out = tmp_path / "m.onnx"
    proc = run(["export", "onnx", tiny_dir, "-o", out, "--int8", "--calib", "digits", *flags])
    assert_clean_failure(proc, out, expect=expect, exit_code=code)
