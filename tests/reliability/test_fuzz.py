"""Row 39 of docs/bad-inputs.md: what users type, fuzzed with hypothesis through the CLI's
entry point (``toolkit.cli.main``, in this process so that hypothesis can try hundreds of
inputs): class index lists, class-name files, batch-size lists, tolerances, config.json
fields and CLI numbers. Every input ends in success or a clean error: exit 2 with one
``rehead: error: ... hint: ...`` line and no traceback (exit 1 only where a number is a gate
that may fail: a tolerance), and nothing half-written."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from reliability_util import LEDGER, leftovers

from toolkit.cli import main

# Sized from the profile tests/conftest.py loads: 40 and 12 examples, drawn deterministically, in the
# default run; three times as many, at random, in the slow job's exploration.
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SLOW_FUZZ = settings(FUZZ, max_examples=max(1, settings.default.max_examples * 3 // 10))

#: text a user might type for a number or a list: digits, signs, separators, words, odd values
NUMBERY = st.one_of(
    st.text(alphabet="0123456789-+,.e :;xX", max_size=12),
    st.sampled_from(["nan", "inf", "-inf", "1e400", "0", "-1", "00", "1,,2", " 3", "٣", "0x10", "true", ""]),
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)


def _cli(args: Sequence[object]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main([str(a) for a in args])
    return code, err.getvalue()


def _clean(code: int, err: str, out: Path, allowed: tuple[int, ...] = (0, 2)) -> None:
    LEDGER["fuzz_inputs"] += 1
    assert code in allowed, (code, err)
    assert "Traceback" not in err and "internal error" not in err, err
    if code == 2:
        errors = [line for line in err.splitlines() if line.startswith("rehead: error:")]
        assert len(errors) == 1 and "hint:" in errors[0], err
        assert not out.exists() and not leftovers(out), (out, leftovers(out))
    if out.exists():
        shutil.rmtree(out) if out.is_dir() else out.unlink()


@FUZZ
@given(keep=NUMBERY)
@example(keep="0-99999999999")  # once expanded in full: the slow job's pytest ran out of memory (24 GB)
@example(keep=f"0-{2**70}")
def test_row39_class_index_lists(tiny_dir: Path, keep: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        _clean(*_cli(["extend", "--from", tiny_dir, "-s", "select", "--keep", keep, "-o", out]), out)


@FUZZ
@given(names=st.lists(st.text(max_size=8), max_size=12), n=st.integers(-2, 14))
def test_row39_class_name_files(tiny_dir: Path, names: list[str], n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        names_file = Path(tmp) / "names.txt"
        names_file.write_text("\n".join(names), encoding="utf-8")
        out = Path(tmp) / "out"
        _clean(*_cli(["extend", "--from", tiny_dir, "-s", "replace", "-n", n, "--class-names", names_file,
                      "-o", out]), out)


@SLOW_FUZZ
@given(sizes=NUMBERY)
@example(sizes="36893488147419103229")  # found by the slow job: past int64, an internal error (exit 4)
@example(sizes="11257968")  # found by the slow job: 8.6e9 floats, a MemoryError that read as a bug (exit 4)
def test_row39_batch_size_lists(tiny_dir: Path, tiny_onnx: Path, sizes: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report"
        code, err = _cli(["validate", tiny_dir, tiny_onnx, "--batch-sizes", sizes, "--samples", "4", "--no-latency",
                          "--report", out])
        _clean(code, err, out, allowed=(0, 2, 3))  # 3: a batch larger than this machine's memory


@SLOW_FUZZ
@given(atol=NUMBERY, rtol=NUMBERY)
def test_row39_tolerances(tiny_dir: Path, tiny_onnx: Path, atol: str, rtol: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report"
        code, err = _cli(["validate", tiny_dir, tiny_onnx, "--atol", atol, "--rtol", rtol, "--samples", "4",
                          "--batch-sizes", "4", "--no-latency", "--report", out])
        _clean(code, err, out, allowed=(0, 1, 2))  # 1: a tolerance the artifact does not meet


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**65), 2**65), st.floats(), st.text(max_size=6)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=8,
)
FIELDS = ["arch", "class_names", "head", "head.num_classes", "head.in_features", "head.origins", "head.module",
          "head.bias", "head.hidden", "preprocessing", "preprocessing.input_size", "preprocessing.mean",
          "preprocessing.std", "preprocessing.channels", "preprocessing.resize_size", "lineage", "arch_kwargs",
          "schema_version", "weights_sha256"]


@FUZZ
@given(field=st.sampled_from(FIELDS), value=JSON_VALUES)
# inputs that once failed (exit 4: a builder's TypeError for an unknown keyword), kept for good
@example(field="arch_kwargs", value={"": None})
@example(field="arch_kwargs", value={"dropout": 0.5})
@example(field="arch_kwargs", value={"num_classes": "ten"})
def test_row39_config_fields(tiny_dir: Path, field: str, value: object) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        shutil.copytree(tiny_dir, model_dir)
        config = json.loads((model_dir / "config.json").read_text())
        *parents, last = field.split(".")
        target = config
        for key in parents:
            target = target[key]
        target[last] = value
        (model_dir / "config.json").write_text(json.dumps(config))
        out = Path(tmp) / "never"
        code, err = _cli(["inspect", model_dir])
        _clean(code, err, out)


@SLOW_FUZZ
@given(flag=st.sampled_from(["--opset", "--calib-samples", "--heldout-samples", "--min-agreement"]), value=NUMBERY)
def test_row39_export_numbers(tiny_dir: Path, flag: str, value: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "m.onnx"
        extra = ["--int8", "--calib", "digits"] if flag != "--opset" else []
        if flag == "--heldout-samples":
            extra += ["--min-agreement", "0.5"]
        code, err = _cli(["export", "onnx", tiny_dir, "-o", out, *extra, flag, value])
        _clean(code, err, out, allowed=(0, 1, 2))  # 1: an agreement target the INT8 graph cannot meet


@pytest.mark.parametrize("value", ["-1", "0", "1e400", "abc", "2.5", ""])
def test_row39_finetune_numbers_refused_before_training(tiny_dir: Path, tmp_path: Path, value: str) -> None:
    out = tmp_path / "out"
    for flag in ("--epochs", "--batch-size", "--threads", "--freeze-epochs"):
        if flag == "--freeze-epochs" and value == "0":
            continue  # no frozen epochs is a valid choice
        code, err = _cli(["finetune", tiny_dir, "--data", "digits", flag, value, "-o", out])
        _clean(code, err, out, allowed=(2,))
