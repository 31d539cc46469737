"""Bad inputs (docs/bad-inputs.md; ``test_row<N>_*`` tests row N) through the CLI in a real
subprocess: the exit code, one line on stderr naming the problem and the fix, no traceback
without ``--debug``, nothing written (no output, no hidden temp file or staging folder)."""

from __future__ import annotations

import json
import os
import pickle
import struct
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torchvision
from reliability_util import LEDGER, leftovers, run
from safetensors.torch import save_file


def run_cli(args: list[object], capsys: pytest.CaptureFixture[str] | None = None) -> tuple[int, str, str]:
    """``rehead ARGS`` in a subprocess (``capsys`` is unused: kept so the tests read as before)."""
    proc = run(args)
    return proc.returncode, proc.stdout, proc.stderr


def assert_clean_failure(code: int, err: str, out_dir: Path, *, expect: str, exit_code: int = 2) -> None:
    assert code == exit_code, err
    lines = [line for line in err.strip().splitlines() if not line.startswith("rehead: warning:")]
    assert len(lines) == 1, f"expected one error line, got: {err!r}"
    assert lines[0].startswith("rehead: error: ")
    assert "hint:" in lines[0]
    assert "Traceback" not in err
    assert expect.lower() in lines[0].lower(), lines[0]
    assert not out_dir.exists(), "nothing may be written on bad input"
    assert not leftovers(out_dir), "staging left"
    LEDGER["bad_inputs"] += 1


@pytest.fixture(scope="module")
def r18_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).state_dict()


def _extend(weights: Path, out: Path, *extra: str) -> list[str]:
    return ["extend", "--arch", "resnet18", "--weights", str(weights), "-n", "1003", "-o", str(out), *extra]


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".safetensors"])
@pytest.mark.parametrize("kind", ["empty", "truncated"])
def test_row1_corrupt_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], r18_state: dict[str, torch.Tensor], suffix: str, kind: str
) -> None:
    path = tmp_path / f"w{suffix}"
    if suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in r18_state.items()}, str(path))
    else:
        torch.save(r18_state, path)
    data = path.read_bytes()
    path.write_bytes(b"" if kind == "empty" else data[: len(data) // 2])
    out = tmp_path / "out"
    code, _, err = run_cli(_extend(path, out), capsys)
    assert_clean_failure(code, err, out, expect="corrupt checkpoint")
    assert str(path) in err


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {_Evil.marker}",))

    marker = ""


@pytest.mark.parametrize("force_env", [False, True])
def test_row2_and_4_malicious_pickle_never_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, force_env: bool
) -> None:
    marker = tmp_path / "PWNED"
    _Evil.marker = str(marker)
    path = tmp_path / "evil.pt"
    with open(path, "wb") as handle:
        pickle.dump({"fc.weight": torch.zeros(2), "payload": _Evil()}, handle)
    if force_env:
        monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    out = tmp_path / "out"
    code, _, err = run_cli(_extend(path, out), capsys)
    assert not marker.exists(), "the pickle payload ran"
    assert_clean_failure(code, err, out, expect="pickled code")
    assert "--trust-pickle" in err
    if force_env:
        assert "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD" in err and "warning" in err


def test_row3_pickled_module_needs_opt_in(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None)
    path = tmp_path / "whole.pt"
    torch.save(model, path)
    out = tmp_path / "out"
    code, _, err = run_cli(_extend(path, out), capsys)
    assert_clean_failure(code, err, out, expect="pickled code")
    assert "--trust-pickle" in err
    code, _, err = run_cli([*_extend(path, out), "--trust-pickle"], capsys)
    assert code == 0, err
    assert (out / "model.safetensors").is_file()


def _safetensors_with_header(path: Path, header: bytes, claimed: int | None = None) -> None:
    size = len(header) if claimed is None else claimed
    path.write_bytes(struct.pack("<Q", size) + header)


def test_row5_huge_header_rejected_without_reading(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "huge.safetensors"
    _safetensors_with_header(path, b"{}", claimed=2**60)
    out = tmp_path / "out"
    code, _, err = run_cli(_extend(path, out), capsys)
    assert_clean_failure(code, err, out, expect="corrupt checkpoint")
    assert "header" in err


def test_row5_absurd_tensor_count(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    header = {f"t{i}": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]} for i in range(200_001)}
    path = tmp_path / "many.safetensors"
    _safetensors_with_header(path, json.dumps(header).encode())
    out = tmp_path / "out"
    code, _, err = run_cli(_extend(path, out), capsys)
    assert_clean_failure(code, err, out, expect="tensors exceed")


def test_row6_missing_and_unexpected_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], r18_state: dict[str, torch.Tensor]
) -> None:
    state = dict(r18_state)
    state.pop("layer1.0.conv1.weight")
    state["extra.weight"] = torch.zeros(3)
    path = tmp_path / "keys.pt"
    torch.save(state, path)
    out = tmp_path / "out"
    code, _, err = run_cli(_extend(path, out), capsys)
    assert_clean_failure(code, err, out, expect="missing keys")
    assert "layer1.0.conv1.weight" in err and "extra.weight" in err


def test_row7_shape_mismatch_names_key_and_shapes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], r18_state: dict[str, torch.Tensor]
) -> None:
    state = dict(r18_state)
    state["fc.weight"] = torch.zeros(10, 512)
    state["fc.bias"] = torch.zeros(10)
    path = tmp_path / "shape.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    out = tmp_path / "out"
    code, _, err = run_cli(_extend(path, out), capsys)
    assert_clean_failure(code, err, out, expect="shape mismatch")
    assert "fc.weight" in err and "(10, 512)" in err and "(1000, 512)" in err


@pytest.mark.parametrize("value", ["0", "-3", "1.5", "true", "ten", ""])
def test_row8_bad_num_classes(tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str) -> None:
    out = tmp_path / "out"
    code, _, err = run_cli(["extend", "--arch", "resnet18", "-s", "replace", "-n", value, "-o", out], capsys)
    assert_clean_failure(code, err, out, expect="num-classes" if value in ("1.5", "true", "ten", "") else "positive")


@pytest.mark.parametrize("value", [0, -3, 1.5, True, "12"])
def test_row8_bad_num_classes_api(tmp_path: Path, value: object) -> None:
    from toolkit.errors import InvalidArgumentError
    from toolkit.extension import extend

    with pytest.raises(InvalidArgumentError):
        extend(strategy="replace", arch="resnet18", num_classes=value, output=tmp_path / "o")  # type: ignore[arg-type]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("keep", "expect"), [("3,1000", "index 1000"), ("4,4", "index 4 appears twice"), (",", "empty"), ("-1", "-1")]
)
def test_row9_bad_subset(tmp_path: Path, capsys: pytest.CaptureFixture[str], keep: str, expect: str) -> None:
    out = tmp_path / "out"
    code, _, err = run_cli(["extend", "--arch", "resnet18", "-s", "select", "--keep", keep, "-o", out], capsys)
    assert_clean_failure(code, err, out, expect=expect)


def test_row10_class_names_length(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    names = tmp_path / "names.txt"
    names.write_text("a\nb\nc\n")
    out = tmp_path / "out"
    code, _, err = run_cli(
        ["extend", "--arch", "resnet18", "-s", "replace", "-n", "4", "--class-names", names, "-o", out], capsys
    )
    assert_clean_failure(code, err, out, expect="3 class names given for 4 classes")


def test_row11_unknown_architecture_suggests(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code, _, err = run_cli(["extend", "--arch", "resnet19", "-s", "replace", "-n", "4", "-o", out], capsys)
    assert_clean_failure(code, err, out, expect="unknown architecture 'resnet19'")
    assert "resnet18" in err


def test_row12_head_not_found_lists_candidates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "headless_models.py").write_text(
        textwrap.dedent(
            """
            import torch
            from torch import nn

            def make():
                # returns pooled features: no layer produces class logits
                return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 6, 1),
                                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 6), nn.Softmax(-1),
                                     nn.Flatten(0))
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("headless_models", None)
    out = tmp_path / "out"
    args = ["extend", "--arch", "py:headless_models:make", "-s", "replace", "-n", "4", "-o", out]
    code, _, err = run_cli(args, capsys)
    assert_clean_failure(code, err, out, expect="--head")
    assert "candidate" in err and "2" in err  # the 1x1 conv '2' and the Linear '5' are named
    code, _, err = run_cli(
        ["extend", "--arch", "py:headless_models:make", "--head", "nosuch", "-s", "replace", "-n", "4", "-o", out],
        capsys,
    )
    assert_clean_failure(code, err, out, expect="no module 'nosuch'")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_row14_non_finite_weights(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], r18_state: dict[str, torch.Tensor], bad: float
) -> None:
    state = {k: v.clone() for k, v in r18_state.items()}
    state["layer2.0.conv1.weight"][0, 0, 0, 0] = bad
    path = tmp_path / "nan.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    out = tmp_path / "out"
    code, _, err = run_cli(_extend(path, out), capsys)
    assert_clean_failure(code, err, out, expect="NaN/Inf")
    assert "layer2.0.conv1.weight" in err


def test_existing_output_not_clobbered(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    code, _, err = run_cli(["extend", "--arch", "resnet18", "-s", "replace", "-n", "4", "-o", out], capsys)
    assert code == 2 and "--overwrite" in err
    assert (out / "keep.txt").read_text() == "precious"
    args = ["extend", "--arch", "resnet18", "-s", "replace", "-n", "4", "-o", out, "--overwrite"]
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    assert not (out / "keep.txt").exists() and (out / "config.json").is_file()


def test_debug_shows_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["--debug", "extend", "--arch", "resnet19", "-n", "4", "-o", tmp_path / "o"], capsys)
    assert code == 2 and "Traceback" in err
