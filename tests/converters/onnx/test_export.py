"""export_onnx fp32: parity with eager, dynamic batch, eval mode, metadata, atomic writes, fallbacks."""

from __future__ import annotations

import os
from pathlib import Path

import onnx
import pytest
import torch
from converters_testutil import digits_test, ort_run

import converters
from toolkit.errors import ArtifactError, ExportError, MetadataMissingError, OutputExistsError
from toolkit.models.model_dir import load_model_dir, read_config


@pytest.fixture(scope="module")
def resnet_onnx(digits_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> converters.ExportResult:
    return converters.export_onnx(digits_model_dir, tmp_path_factory.mktemp("onnx") / "m.onnx", progress=False)


def test_fp32_parity_at_batch_1_3_17(resnet_onnx: converters.ExportResult, digits_model_dir: Path) -> None:
    module = load_model_dir(digits_model_dir).module
    for batch in (1, 3, 17):
        x = torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(batch))
        with torch.inference_mode():
            ref = module(x)
        got = ort_run(resnet_onnx.path, x)
        assert got.shape == (batch, 10)
        assert (got - ref).abs().max().item() <= 1e-4


def test_result_describes_the_file(resnet_onnx: converters.ExportResult) -> None:
    r = resnet_onnx
    assert r.format == "onnx" and r.exporter == "dynamo" and r.opset is not None and r.opset >= 18
    assert r.size_bytes == r.path.stat().st_size > 1_000_000
    assert r.nodes_after < r.nodes_before  # the optimiser folded something
    assert [(t.name, t.shape, t.dtype) for t in r.inputs] == [("images", ("batch", 3, 32, 32), "float32")]
    assert [(t.name, t.shape, t.dtype) for t in r.outputs] == [("logits", ("batch", 10), "float32")]
    assert r.checks["max_abs_diff_b8"] <= 1e-4
    assert not list(r.path.parent.glob(".*"))  # no staging leftovers


def test_metadata_round_trips(resnet_onnx: converters.ExportResult, digits_model_dir: Path) -> None:
    config = read_config(digits_model_dir)
    meta = converters.read_onnx_metadata(resnet_onnx.path)
    assert meta["class_names"] == list(config.class_names)
    assert meta["head_spec"] == config.head.to_json()
    assert meta["preprocessing"] == config.preprocessing.to_json()
    assert meta["weights_sha256"] == config.weights_sha256 and len(meta["weights_sha256"]) == 64
    assert meta["precision"] == "fp32"
    assert meta["versions"]["torch"] == torch.__version__ and "rehead" in meta["versions"]
    assert meta["input"]["layout"] == "NCHW" and meta["input"]["dynamic_batch"] is True


def test_model_from_another_tool_raises_metadata_missing(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "other",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
    )
    model = helper.make_model(graph)
    model.metadata_props.add(key="producer_note", value="not rehead")
    onnx.save_model(model, str(tmp_path / "other.onnx"))
    with pytest.raises(MetadataMissingError, match="no rehead metadata"):
        converters.read_onnx_metadata(tmp_path / "other.onnx")
    # a damaged file is an ArtifactError, but not "another tool's model": callers tell them apart by type
    (tmp_path / "broken.onnx").write_bytes(b"not a protobuf at all")
    with pytest.raises(ArtifactError) as caught:
        converters.read_onnx_metadata(tmp_path / "broken.onnx")
    assert not isinstance(caught.value, MetadataMissingError)


def test_train_mode_model_is_exported_in_eval_and_mode_restored(digits_model_dir: Path, tmp_path: Path) -> None:
    loaded = load_model_dir(digits_model_dir)
    loaded.module.train()
    loaded.module.layer1.eval()  # a mixed state must come back exactly as it was
    before = {n: m.training for n, m in loaded.module.named_modules()}
    result = converters.export_onnx(loaded, tmp_path / "m.onnx", progress=False)
    assert {n: m.training for n, m in loaded.module.named_modules()} == before
    assert any("train-mode" in w for w in result.warnings)
    x = torch.randn(4, 3, 32, 32)
    loaded.module.eval()
    with torch.inference_mode():
        ref = loaded.module(x)
    assert (ort_run(result.path, x) - ref).abs().max().item() <= 1e-4


def test_static_batch(digits_model_dir: Path, tmp_path: Path) -> None:
    result = converters.export_onnx(digits_model_dir, tmp_path / "m.onnx", dynamic_batch=False, progress=False)
    assert result.inputs[0].shape == (1, 3, 32, 32)


def test_legacy_opset_uses_torchscript_exporter(digits_model_dir: Path, tmp_path: Path) -> None:
    result = converters.export_onnx(digits_model_dir, tmp_path / "m.onnx", opset=17, progress=False)
    assert result.exporter == "torchscript" and result.opset == 17
    assert onnx.load(str(result.path)).opset_import[0].version == 17
    assert result.checks["max_abs_diff_b8"] <= 1e-4


def test_bake_preprocess_takes_uint8_nhwc(digits_model_dir: Path, tmp_path: Path) -> None:
    from toolkit.data import digits_uint8

    result = converters.export_onnx(digits_model_dir, tmp_path / "m.onnx", bake_preprocess=True, progress=False)
    assert [(t.shape, t.dtype) for t in result.inputs] == [(("batch", 32, 32, 3), "uint8")]
    # the baked graph on raw frames equals the model on the toolkit's own preprocessing
    raw, _ = digits_uint8("test")
    frames = torch.from_numpy(raw[:8]).float()[:, None]
    frames = torch.nn.functional.interpolate(frames, size=(32, 32), mode="bilinear").round().clamp(0, 255)
    nhwc = frames.expand(-1, 3, -1, -1).permute(0, 2, 3, 1).to(torch.uint8).contiguous()
    prep = read_config(digits_model_dir).preprocessing
    mean = torch.tensor(prep.mean).view(1, 3, 1, 1)
    std = torch.tensor(prep.std).view(1, 3, 1, 1)
    x = (nhwc.permute(0, 3, 1, 2).float() / 255 - mean) / std
    with torch.inference_mode():
        ref = load_model_dir(digits_model_dir).module(x)
    assert (ort_run(result.path, nhwc) - ref).abs().max().item() <= 1e-4
    assert converters.read_onnx_metadata(result.path)["input"]["baked_preprocessing"] is True


def test_existing_output_is_refused_and_untouched(digits_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    out.write_bytes(b"previous")
    with pytest.raises(OutputExistsError):
        converters.export_onnx(digits_model_dir, out, progress=False)
    assert out.read_bytes() == b"previous"


def test_unsupported_op_names_it_and_leaves_previous_artifact(custom_model_dir, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "m.onnx"
    out.write_bytes(b"previous")
    with pytest.raises(ExportError, match="linalg_eig"):
        converters.export_onnx(custom_model_dir("make_eig"), out, overwrite=True, progress=False)
    assert out.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_hard_coded_batch_is_caught(custom_model_dir, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # The TorchScript exporter (opset < 18) freezes int(x.shape[0]) into the Reshape; the batch-1 run catches it.
    with pytest.raises(ExportError, match="batch 1"):
        converters.export_onnx(custom_model_dir("make_fixed_batch"), tmp_path / "m.onnx", opset=17, progress=False)
    assert not list(tmp_path.iterdir())


def test_external_data_is_written_beside_and_replaced_cleanly(digits_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    first = converters.export_onnx(digits_model_dir, out, external_data=True, progress=False)
    (name,) = first.external_data
    assert "/" not in name and (tmp_path / name).stat().st_size > 1_000_000
    assert converters.check_external_data(out) == [tmp_path / name]
    assert out.stat().st_size < 200_000  # the graph only; weights are in the data file
    x = torch.randn(3, 3, 32, 32)
    with torch.inference_mode():
        ref = load_model_dir(digits_model_dir).module(x)
    assert (ort_run(out, x) - ref).abs().max().item() <= 1e-4
    second = converters.export_onnx(digits_model_dir, out, external_data=True, overwrite=True, progress=False)
    assert sorted(os.listdir(tmp_path)) == sorted(["m.onnx", second.external_data[0]])


def test_trained_model_fp32_agrees_on_held_out_digits(trained_tiny_dir: Path, tmp_path: Path) -> None:
    result = converters.export_onnx(trained_tiny_dir, tmp_path / "m.onnx", progress=False)
    x, y = digits_test(trained_tiny_dir)
    with torch.inference_mode():
        ref = load_model_dir(trained_tiny_dir).module(x)
    got = ort_run(result.path, x)
    assert (got - ref).abs().max().item() <= 1e-4
    assert (ref.argmax(1) == y).float().mean().item() > 0.8  # the fixture really learned digits
