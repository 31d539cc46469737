"""OpenVINO IR: export (fp32, fp16 weights, INT8 QDQ), its record, the runner, the registry, bad inputs.

Every test runs the real OpenVINO runtime on the CPU (this CPU has AMX: bf16 and INT8).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from converters import artifact
from converters.openvino.export import export_openvino
from converters.openvino.options import OpenVinoExportOptions
from converters.runners import open_runner
from toolkit.errors import (
    ArtifactError,
    HardwareUnavailableError,
    InvalidArgumentError,
    LineageError,
    OutputExistsError,
)


@pytest.fixture(scope="module")
def ir_fp32(digits_model_dir: Path, onnx_fp32: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ov") / "model.xml"
    export_openvino(onnx_fp32, out, model_dir=digits_model_dir)
    return out


def _eager(model_dir: Path, x: np.ndarray) -> np.ndarray:
    import torch

    from toolkit.models.model_dir import load_model_dir

    module = load_model_dir(model_dir).module.eval()
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


def test_export_writes_xml_and_bin_with_the_models_record(ir_fp32: Path, digits_model_dir: Path) -> None:
    from toolkit.models.model_dir import load_model_dir

    assert ir_fp32.is_file() and ir_fp32.with_suffix(".bin").is_file()
    config = load_model_dir(digits_model_dir).config
    assert artifact.format_of(ir_fp32).kind == "openvino"
    assert artifact.recorded_weights(ir_fp32) == config.weights_sha256
    assert artifact.precision(ir_fp32) == "fp32"
    assert [name for _, name in artifact.companions(ir_fp32)] == ["model.bin"]
    assert artifact.size(ir_fp32) == ir_fp32.stat().st_size + ir_fp32.with_suffix(".bin").stat().st_size
    record = artifact.recorded_model(ir_fp32)
    assert record is not None and record["class_names"] == list(config.class_names)
    assert not list(ir_fp32.parent.glob(".*")), "a staging folder was left behind"


def test_the_registry_opens_an_ir_with_openvino_matching_eager(ir_fp32: Path, digits_model_dir: Path) -> None:
    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype(np.float32)
    with open_runner(ir_fp32) as runner:
        assert runner.kind == "openvino" and runner.precision == "fp32"
        got = runner.run(x)["logits"]
    np.testing.assert_allclose(got, _eager(digits_model_dir, x), atol=1e-3, rtol=1e-3)


def test_importing_openvino_through_rehead_sends_no_telemetry(ir_fp32: Path) -> None:
    """``openvino_telemetry`` never gets imported, so nothing can be sent (and sys.modules is left clean)."""
    import subprocess

    code = (
        "import sys\nfrom converters.runners import open_runner\n"
        f"r = open_runner({str(ir_fp32)!r}); r.load()\n"
        "from converters.openvino import _runtime; _runtime.nncf()\n"
        "import openvino.tools.ovc.telemetry_utils as ovc, nncf.telemetry.wrapper as nn\n"
        "print('openvino_telemetry' in sys.modules, ovc.tm.__name__, type(nn.telemetry).__name__)"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("CI", "NNCF_CI", "NNCF_DEV")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True, env=env)
    # the real package is never imported: OpenVINO's converter and NNCF fall back to their no-op stubs
    assert out.stdout.strip().splitlines()[-1] == "False openvino.tools.ovc.telemetry_stub MagicMock"


def test_fp16_weights_halve_the_bin_and_are_judged_as_fp16(
    digits_model_dir: Path, onnx_fp32: Path, ir_fp32: Path, tmp_path: Path
) -> None:
    out = tmp_path / "half.xml"
    result = export_openvino(
        onnx_fp32, out, model_dir=digits_model_dir, options=OpenVinoExportOptions(compress_to_fp16=True)
    )
    assert result.format == "openvino-fp16" and artifact.precision(out) == "fp16"
    assert out.with_suffix(".bin").stat().st_size < 0.6 * ir_fp32.with_suffix(".bin").stat().st_size


def test_int8_from_the_model_directory_keeps_int8(digits_model_dir: Path, tmp_path: Path) -> None:
    from converters.onnx.options import OnnxExportOptions

    out = tmp_path / "int8.xml"
    result = export_openvino(digits_model_dir, out, onnx_options=OnnxExportOptions(int8=True, calib="digits"))
    assert result.format == "openvino-int8" and artifact.precision(out) == "int8"
    assert result.checks["top1_agreement_b1"] >= 0.9
    assert sorted(p.name for p in tmp_path.iterdir()) == ["int8.bin", "int8.xml"], "the scratch ONNX was published"
    from converters.openvino.artifact import _graph_precision, _parse

    # an IR without rehead's record (another tool's, or re-saved with changes) is judged by what
    # its graph shows: this one's FakeQuantize and int8 weights
    assert _graph_precision(_parse(out)) == "int8"


def test_bf16_inference_is_a_runner_option_judged_with_its_preset(ir_fp32: Path) -> None:
    from converters.openvino import _runtime

    if "bf16" not in _runtime.supported_precisions("CPU"):
        pytest.skip("this CPU has no bf16 (AMX or AVX512-BF16)")
    with open_runner(ir_fp32, ov_precision="bf16") as runner:
        assert runner.precision == "bf16" and runner.config()["INFERENCE_PRECISION_HINT"] == "bf16"
        assert "[bf16]" in runner.name


def test_an_onnx_source_needs_its_model_directory(onnx_fp32: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="needs the model directory"):
        export_openvino(onnx_fp32, tmp_path / "m.xml")
    assert list(tmp_path.iterdir()) == []


def test_an_onnx_of_other_weights_is_refused(onnx_fp32: Path, make_model_dir, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    other = make_model_dir(seed=1)
    with pytest.raises(LineageError):
        export_openvino(onnx_fp32, tmp_path / "m.xml", model_dir=other)
    assert list(tmp_path.iterdir()) == []


def test_a_planted_head_fault_is_not_published(digits_model_dir: Path, onnx_fp32: Path, tmp_path: Path) -> None:
    """A new-class row of the head perturbed in the ONNX: the IR's check against eager refuses it."""
    from tests.validation.conftest import edit_initializer, head_initializer
    from toolkit.errors import ReheadError

    def perturb(w: np.ndarray) -> None:
        w[8] += 0.05

    bad = edit_initializer(onnx_fp32, tmp_path / "bad.onnx", head_initializer(onnx_fp32, "weight"), perturb)
    with pytest.raises(ReheadError, match=r"new classes|'8'"):
        export_openvino(bad, tmp_path / "out" / "m.xml", model_dir=digits_model_dir)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_no_clobber_without_overwrite(ir_fp32: Path, digits_model_dir: Path, onnx_fp32: Path) -> None:
    before = ir_fp32.read_bytes()
    with pytest.raises(OutputExistsError):
        export_openvino(onnx_fp32, ir_fp32, model_dir=digits_model_dir)
    assert ir_fp32.read_bytes() == before


def test_an_xml_without_its_bin_is_refused(ir_fp32: Path, tmp_path: Path) -> None:
    lone = tmp_path / "lone.xml"
    shutil.copyfile(ir_fp32, lone)
    with pytest.raises(ArtifactError, match=r"needs its weights 'lone\.bin'"):
        open_runner(lone).load()
    with pytest.raises(ArtifactError, match=r"lone\.bin"):
        artifact.companions(lone)


def test_a_bin_of_another_model_is_refused(ir_fp32: Path, make_model_dir, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    other_dir = make_model_dir(seed=2)
    other = tmp_path / "other" / "model.xml"
    export_openvino(other_dir, other)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copyfile(ir_fp32, mixed / "model.xml")
    shutil.copyfile(other.with_suffix(".bin"), mixed / "model.bin")  # same architecture, same size
    with pytest.raises(ArtifactError, match="is not the weights"):
        open_runner(mixed / "model.xml").load()


def test_an_ir_another_tool_resaved_with_changes_opens_without_rehead_record(ir_fp32: Path, tmp_path: Path) -> None:
    """OpenVINO's own save_model keeps rehead's runtime info, stamp of the old .bin included: an
    unchanged re-save keeps the record; a changed graph (fp16 compression, as NNCF's changes
    would) opens as another tool's IR, and a .bin swapped under an unchanged graph is still refused."""
    from converters.openvino import _runtime

    ov, model = _runtime.openvino(), _runtime.core().read_model(str(ir_fp32))
    same, changed = tmp_path / "same.xml", tmp_path / "changed.xml"
    ov.save_model(model, str(same), compress_to_fp16=False)
    ov.save_model(model, str(changed), compress_to_fp16=True)
    assert artifact.recorded_model(same) == artifact.recorded_model(ir_fp32) is not None
    # the precision then comes from the graph: f16 constants
    assert artifact.recorded_model(changed) is None and artifact.precision(changed) == "fp16"
    assert artifact.precision(same) == "fp32"
    runner = open_runner(changed)
    runner.load()
    runner.close()
    shutil.copyfile(changed.with_suffix(".bin"), tmp_path / "swapped.bin")
    shutil.copyfile(same, tmp_path / "swapped.xml")
    with pytest.raises(ArtifactError, match="is not the weights"):
        artifact.companions(tmp_path / "swapped.xml")


@pytest.mark.parametrize(("device", "error"), [("TPU", InvalidArgumentError), ("NPU", HardwareUnavailableError)])
def test_device_names_unknown_or_absent(ir_fp32: Path, device: str, error: type[Exception]) -> None:
    from converters.openvino import _runtime

    if device in _runtime.core().available_devices:
        pytest.skip(f"this machine has an OpenVINO {device}")
    with pytest.raises(error):
        open_runner(ir_fp32, device=device)


def test_a_wrong_suffix_is_refused_before_any_work(digits_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match=r"\.xml"):
        export_openvino(digits_model_dir, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_accuracy_aware_int8_is_searched_in_openvino(digits_model_dir: Path, tmp_path: Path) -> None:
    """--int8 --min-agreement for OpenVINO: agreement and the speed rule measured in OpenVINO,
    recorded in the IR (the decision's ``runtime``), the target met."""
    from converters.onnx.options import OnnxExportOptions

    out = tmp_path / "search.xml"
    options = OnnxExportOptions(
        int8=True, calib="digits", int8_target="openvino", min_agreement=0.95, calib_samples=32, heldout_samples=64
    )
    export_openvino(digits_model_dir, out, onnx_options=options)
    quantization = (artifact.recorded_model(out) or {})["quantization"]
    assert quantization["target"] == "openvino"
    search = quantization["search"]
    assert search["runtime"] == "openvino" and search["met"]
    assert search["agreement"]["all"] >= 0.95
    assert set(search["latency_ms"]) == {"fp32", "all_int8", "chosen"}
