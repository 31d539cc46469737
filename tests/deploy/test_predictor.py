"""Predictor: the bundle's artifact run on images preprocessed as validation did."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from toolkit.cli import main
from toolkit.deploy.bundle import package
from toolkit.deploy.predictor import Predictor
from toolkit.errors import InputShapeError, InvalidArgumentError
from toolkit.models.model_dir import read_config


@pytest.fixture(scope="module")
def predictor(bundle_dir: Path) -> Iterator[Predictor]:
    with Predictor.from_bundle(bundle_dir) as opened:
        yield opened


def test_opens_the_best_artifact_present(predictor: Predictor, bundle_dir: Path, digits_model_dir: Path) -> None:
    config = read_config(digits_model_dir)
    # no TensorRT engine in the bundle: its ONNX, run by ONNX Runtime or (installed, x86) OpenVINO, the faster
    assert predictor.backend in ("onnxruntime", "openvino") and predictor.device == "cpu"
    assert predictor.artifact == bundle_dir / "artifacts" / "model.onnx"
    assert predictor.class_names == config.class_names
    assert predictor.preprocessing == config.preprocessing
    assert predictor.input_shape == (3, 32, 32)
    assert predictor.batch_range == (1, 32)


def test_outputs_equal_the_validation_run(predictor: Predictor, onnx_fp32: Path, image_files: list[Path]) -> None:
    """Validation's own input loading and runner on the same images give the Predictor's numbers."""
    from converters.runners.registry import open_runner
    from validation.inputs import load_inputs

    folder = image_files[0].parent.parent
    validated = load_inputs(folder, predictor.preprocessing, samples=len(image_files)).images
    mine = predictor.preprocess(image_files)
    assert validated.shape[0] >= 1
    for row in validated:  # validation may subset and shuffle: each of its inputs is one of ours, exactly
        assert any(np.array_equal(row, other) for other in mine)
    with open_runner(onnx_fp32, prep=predictor.preprocessing) as runner:
        expected = runner.run(mine)["logits"]
    np.testing.assert_array_equal(predictor.logits(mine), expected)


def test_path_pil_and_arrays_agree(predictor: Predictor, image_files: list[Path]) -> None:
    from PIL import Image

    paths = image_files[:4]
    with_paths = predictor.predict(paths, top_k=3)
    pil = [Image.open(p) for p in paths]
    pixels = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    assert pixels[3].shape[2] == 3  # the grey image, expanded as validation's loader does
    preprocessed = predictor.preprocess(paths)
    assert predictor.predict(pil, top_k=3) == with_paths
    assert predictor.predict(pixels, top_k=3) == with_paths
    assert predictor.predict(preprocessed, top_k=3) == with_paths
    assert predictor.predict(list(preprocessed), top_k=3) == with_paths
    assert predictor.predict(str(paths[0]), top_k=3) == with_paths[:1]
    np.testing.assert_array_equal(predictor.preprocess(pixels[0]), preprocessed[:1])


def test_top_k_probabilities(predictor: Predictor, image_files: list[Path]) -> None:
    logits = predictor.logits(predictor.preprocess(image_files)).astype(np.float64)
    results = predictor.predict(image_files, top_k=100)
    assert len(results) == len(image_files)
    for row, top in zip(logits, results, strict=True):
        assert len(top) == len(predictor.class_names)  # capped at the number of classes
        probs = [p for _, p in top]
        assert probs == sorted(probs, reverse=True) and abs(sum(probs) - 1.0) < 1e-12
        expected = np.exp(row - row.max()) / np.exp(row - row.max()).sum()
        assert top[0] == (predictor.class_names[int(np.argmax(row))], pytest.approx(float(expected.max()), abs=0))
    with pytest.raises(InvalidArgumentError) as info:
        predictor.predict(image_files, top_k=0)
    assert info.value.param == "top_k"


def test_bad_inputs_named(predictor: Predictor) -> None:
    with pytest.raises(InputShapeError, match="float32"):
        predictor.logits(np.zeros((2, 3, 16, 16), dtype=np.float32))
    with pytest.raises(InputShapeError):
        predictor.preprocess(np.zeros((3, 16, 16), dtype=np.float32))
    with pytest.raises(InvalidArgumentError) as info:
        predictor.predict([], top_k=1)
    assert info.value.param == "images"


def test_fixed_batch_artifact_padded(
    digits_model_dir: Path, onnx_fp32: Path, predictor: Predictor, image_files: list[Path], tmp_path: Path
) -> None:
    import onnx

    # the recipe of tests/validation's onnx_fixed_batch: batch axis fixed at 2 (input and output)
    model = onnx.load(str(onnx_fp32))
    for value in (model.graph.input[0], model.graph.output[0]):
        dim = value.type.tensor_type.shape.dim[0]
        dim.Clear()
        dim.dim_value = 2
    fixed = tmp_path / "fixed-b2.onnx"
    onnx.save(model, str(fixed))
    bundle = tmp_path / "bundle"
    package(digits_model_dir, [fixed], bundle, latency=False, samples=4, batch_sizes=(2,))
    with Predictor.from_bundle(bundle) as padded:
        assert padded.batch_range == (2, 2)
        batch = predictor.preprocess(image_files[:3])  # 3 images: one batch of 2, one padded to 2
        np.testing.assert_allclose(padded.logits(batch), predictor.logits(batch), rtol=0, atol=1e-5)


def test_passed_artifact_preferred_over_forced_one(forced_bundle: Path) -> None:
    with Predictor.from_bundle(forced_bundle) as chosen:
        assert chosen.entry.file == "artifacts/model.onnx" and chosen.entry.passed
    with pytest.raises(InvalidArgumentError) as info:
        Predictor.from_bundle(forced_bundle, backend="pt2")
    assert info.value.param == "backend"


def test_archive_extracted_copy_removed_on_close(
    bundle_zip: Path, predictor: Predictor, image_files: list[Path]
) -> None:
    with Predictor.from_bundle(bundle_zip) as from_zip:
        root = from_zip.root
        assert root.is_dir() and root != bundle_zip
        assert from_zip.predict(image_files, top_k=2) == predictor.predict(image_files, top_k=2)
    assert not root.exists()


def test_predict_cli_json(
    bundle_dir: Path, image_files: list[Path], predictor: Predictor, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["predict", str(bundle_dir), str(image_files[0]), str(image_files[1]), "--top-k", "3", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["backend"] == "onnxruntime" and payload["artifact"] == "artifacts/model.onnx"
    expected = predictor.predict(image_files[:2], top_k=3)
    got = [[(e["label"], e["probability"]) for e in p["top_k"]] for p in payload["predictions"]]
    assert got == [[(label, prob) for label, prob in top] for top in expected]
    assert [p["image"] for p in payload["predictions"]] == [str(image_files[0]), str(image_files[1])]
    assert main(["predict", str(bundle_dir), str(image_files[0]), "--top-k", "2"]) == 0
    assert str(image_files[0]) in capsys.readouterr().out


def test_the_cpu_runtime_is_chosen_by_measurement_and_said(bundle_dir: Path) -> None:
    """With OpenVINO installed on an x86 CPU, ONNX Runtime and OpenVINO are timed on the bundle's
    ONNX side by side; the note names the winner and both times. A forced backend is obeyed."""
    from toolkit.deploy.choice import _openvino_here

    if not _openvino_here():
        pytest.skip("OpenVINO is not installed (pip install 'rehead[openvino]') or this is no x86 CPU")
    with Predictor.from_bundle(bundle_dir) as opened:
        note = opened.notes[-1]
    assert "fastest here at batch 1" in note and "[onnxruntime]" in note and "[openvino]" in note, note
    for backend in ("onnxruntime", "openvino"):
        with Predictor.from_bundle(bundle_dir, backend=backend) as forced:
            assert forced.backend == backend
            assert forced._runner.kind == backend
