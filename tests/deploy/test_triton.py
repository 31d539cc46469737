"""Triton model repositories: every config.pbtxt parsed back into Triton's own ``ModelConfig``
protobuf and checked against the ONNX graph it serves (names, dims, element types), for a
dynamic batch, a fixed batch and the gpu kind; arguments the artifact cannot take exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import onnx
import pytest

pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="needs the serve extra: pip install 'rehead[serve]'")

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as pb

from toolkit.deploy.triton import onnx_signature, triton_repository
from toolkit.errors import InvalidArgumentError, OutputExistsError

ONNX_TYPES = {onnx.TensorProto.FLOAT: pb.TYPE_FP32, onnx.TensorProto.UINT8: pb.TYPE_UINT8}


def parse(model_dir: Path) -> Any:
    config = pb.ModelConfig()
    text_format.Parse((model_dir / "config.pbtxt").read_text(encoding="utf-8"), config)
    return config


def graph_io(path: Path) -> dict[str, tuple[int, list[int]]]:
    """name -> (element type, full dims with -1 for symbolic axes), read with onnx."""
    model = onnx.load(str(path), load_external_data=False)
    out = {}
    for info in [*model.graph.input, *model.graph.output]:
        tensor = info.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]
        out[info.name] = (tensor.elem_type, dims)
    return out


def check_against_graph(config: Any, graph: Path) -> None:
    io = graph_io(graph)
    seen = {t.name: t for t in [*config.input, *config.output]}
    assert set(seen) == set(io), (set(seen), set(io))
    for name, (elem, dims) in io.items():
        tensor = seen[name]
        assert tensor.data_type == ONNX_TYPES[elem], name
        expected = dims[1:] if config.max_batch_size > 0 else dims
        assert list(tensor.dims) == expected, (name, list(tensor.dims), expected)


@pytest.fixture(scope="module")
def fixed_bundle(digits_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The digits model exported with a fixed batch of 1, packaged without latency."""
    from converters import export_onnx
    from toolkit.deploy.bundle import package

    root = tmp_path_factory.mktemp("fixed")
    onnx_path = root / "fixed.onnx"
    export_onnx(digits_model_dir, onnx_path, dynamic_batch=False)
    package(digits_model_dir, [onnx_path], root / "bundle", latency=False, samples=4, batch_sizes=(1,))
    return root / "bundle"


def test_dynamic_batch_repository(bundle_dir: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    model = triton_repository(
        bundle_dir, repo, name="digits", max_batch_size=8, preferred_batch_sizes=[4, 2], instances=2
    )
    assert model == repo / "digits"
    assert sorted(p.relative_to(model).as_posix() for p in model.rglob("*")) == [
        "1", "1/model.onnx", "config.pbtxt", "labels.txt",
    ]
    config = parse(model)
    assert (config.name, config.platform, config.max_batch_size) == ("digits", "onnxruntime_onnx", 8)
    check_against_graph(config, model / "1" / "model.onnx")
    assert list(config.input[0].dims) == [3, 32, 32]
    assert list(config.dynamic_batching.preferred_batch_size) == [2, 4]
    assert config.dynamic_batching.max_queue_delay_microseconds > 0
    assert [(g.kind, g.count) for g in config.instance_group] == [(pb.ModelInstanceGroup.KIND_CPU, 2)]
    (logits,) = config.output
    assert logits.label_filename == "labels.txt"
    assert (model / "labels.txt").read_text().splitlines() == [str(d) for d in range(10)]
    # the copied graph is the bundle's, byte for byte
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    onnx_file = next(a["file"] for a in manifest["artifacts"] if a["kind"] == "onnx")
    assert (model / "1" / "model.onnx").read_bytes() == (bundle_dir / onnx_file).read_bytes()


def test_fixed_batch_gets_full_dims_and_no_batching(fixed_bundle: Path, tmp_path: Path) -> None:
    assert onnx_signature(next((fixed_bundle / "artifacts").glob("*.onnx"))).fixed_batch
    model = triton_repository(fixed_bundle, tmp_path / "repo", max_batch_size=0)
    config = parse(model)
    assert config.max_batch_size == 0
    assert not config.HasField("dynamic_batching")
    check_against_graph(config, model / "1" / "model.onnx")
    assert list(config.input[0].dims) == [1, 3, 32, 32]
    assert model.name == "bundle"
    with pytest.raises(InvalidArgumentError, match="fixed batch of 1") as info:
        triton_repository(fixed_bundle, tmp_path / "other", max_batch_size=8)
    assert info.value.param == "max_batch_size" and info.value.exit_code == 2
    assert not (tmp_path / "other" / "bundle").exists()


def test_gpu_kind_with_onnx_only(bundle_dir: Path, tmp_path: Path) -> None:
    model = triton_repository(bundle_dir, tmp_path / "repo", kind="gpu", max_batch_size=4, instances=1)
    config = parse(model)
    assert config.platform == "onnxruntime_onnx"
    assert [(g.kind, g.count) for g in config.instance_group] == [(pb.ModelInstanceGroup.KIND_GPU, 1)]
    assert len(config.dynamic_batching.preferred_batch_size) == 0
    check_against_graph(config, model / "1" / "model.onnx")


def test_existing_model_refused_then_replaced(bundle_dir: Path, tmp_path: Path) -> None:
    first = triton_repository(bundle_dir, tmp_path / "repo", name="m")
    triton_repository(bundle_dir, tmp_path / "repo", name="n")  # a second model beside the first
    with pytest.raises(OutputExistsError):
        triton_repository(bundle_dir, tmp_path / "repo", name="m", max_batch_size=2)
    assert parse(first).max_batch_size == 8
    triton_repository(bundle_dir, tmp_path / "repo", name="m", max_batch_size=2, overwrite=True)
    assert parse(first).max_batch_size == 2
    assert sorted(p.name for p in (tmp_path / "repo").iterdir()) == ["m", "n"]


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"max_batch_size": -1}, "max_batch_size"),
        ({"max_batch_size": 4, "preferred_batch_sizes": [8]}, "preferred_batch_sizes"),
        ({"max_batch_size": 0, "preferred_batch_sizes": [1]}, "preferred_batch_sizes"),
        ({"preferred_batch_sizes": [0]}, "preferred_batch_sizes"),
        ({"instances": 0}, "instances"),
        ({"kind": "tpu"}, "kind"),
        ({"name": "../x"}, "name"),
        ({"artifact": "model.plan", "kind": "gpu"}, "artifact"),
    ],
)
def test_bad_arguments(bundle_dir: Path, tmp_path: Path, kwargs: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        triton_repository(bundle_dir, tmp_path / "repo", **kwargs)
    assert info.value.param == param and info.value.exit_code == 2
    assert not (tmp_path / "repo").exists() or not any((tmp_path / "repo").iterdir())


def test_cli_writes_repository_and_exits_2_on_bad_flags(bundle_dir: Path, tmp_path: Path) -> None:
    def rehead(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "toolkit.cli", *args], capture_output=True, text=True, timeout=120, check=False
        )

    done = rehead("triton", str(bundle_dir), "-o", str(tmp_path / "repo"), "--name", "digits",
                  "--preferred-batch-sizes", "2,4", "--instances", "2")
    assert done.returncode == 0, done.stderr
    assert str(tmp_path / "repo" / "digits") in done.stdout
    config = parse(tmp_path / "repo" / "digits")
    assert list(config.dynamic_batching.preferred_batch_size) == [2, 4] and config.instance_group[0].count == 2
    bad = rehead("triton", str(bundle_dir), "-o", str(tmp_path / "repo2"), "--max-batch-size", "4",
                 "--preferred-batch-sizes", "16")
    assert bad.returncode == 2
    assert "--preferred-batch-sizes" in bad.stderr and bad.stderr.count("\n") == 1


def _engine_with_sidecar(folder: Path, onnx_name: str, low: int, high: int) -> Path:
    """A stand-in engine file with a real sidecar record (no TensorRT here: the signature and the
    batch checks read the sidecar and the ONNX, never the engine's bytes)."""
    from converters.tensorrt.record import EngineRecord, GpuInfo, Profile, sidecar_path

    engine = folder / "model.engine"
    engine.write_bytes(b"not a real plan")
    record = EngineRecord(
        engine_sha256="0" * 64, engine_bytes=15, onnx_name=onnx_name, onnx_sha256="0" * 64,
        graph_signature="0" * 64, tensorrt_version="10.13.0", gpu=GpuInfo("NVIDIA H100", (9, 0)),
        profile=Profile("images", (low, 3, 32, 32), (high, 3, 32, 32), (high, 3, 32, 32)),
        precision="fp16", builder_flags=("FP16",), strongly_typed=False, hardware_compat="none",
        version_compatible=False, refittable=False, weights_stripped=False, opt_level=3, workspace_mib=None,
        build_seconds=1.0, built_at="2026-01-01T00:00:00Z", trtexec="trtexec ...",
    )
    sidecar_path(engine).write_text(record.dumps(), encoding="utf-8")
    return engine


def test_tensorrt_plan_config_from_the_sidecar_profile(onnx_fp32: Path, tmp_path: Path) -> None:
    from toolkit.deploy.triton import check_batching, config_text, engine_signature, model_config

    engine = _engine_with_sidecar(tmp_path, onnx_fp32.name, 1, 16)
    signature = engine_signature(engine, onnx_fp32, 10)
    assert signature.batch == (1, 16) and not signature.fixed_batch
    preferred = check_batching(signature, 16, [8, 16])
    config = pb.ModelConfig()
    text_format.Parse(config_text(model_config(
        signature, name="digits", platform="tensorrt_plan", max_batch_size=16, preferred_batch_sizes=preferred,
        kind="gpu", instances=2, label_outputs=["logits"],
    )), config)
    assert config.platform == "tensorrt_plan" and config.max_batch_size == 16
    check_against_graph(config, onnx_fp32)
    assert [(g.kind, g.count) for g in config.instance_group] == [(pb.ModelInstanceGroup.KIND_GPU, 2)]
    with pytest.raises(InvalidArgumentError, match="beyond the artifact's largest batch 16") as info:
        check_batching(signature, 32, None)
    assert info.value.param == "max_batch_size"
    # a profile that does not start at 1 cannot take Triton's smaller batches
    (tmp_path / "late").mkdir()
    late = engine_signature(_engine_with_sidecar(tmp_path / "late", onnx_fp32.name, 4, 16), onnx_fp32, 10)
    with pytest.raises(InvalidArgumentError, match="starts at batch 4"):
        check_batching(late, 8, None)
    # without its ONNX: the profile's input and a float32 logits output of num_classes
    alone = engine_signature(engine, None, 10)
    assert [(t.name, t.data_type, t.dims) for t in alone.inputs + alone.outputs] == [
        ("images", "TYPE_FP32", (-1, 3, 32, 32)), ("logits", "TYPE_FP32", (-1, 10)),
    ]


def test_external_data_travels_with_the_graph(digits_model_dir: Path, tmp_path: Path) -> None:
    from converters import export_onnx
    from toolkit.deploy.bundle import package

    graph = tmp_path / "ext" / "model.onnx"
    export_onnx(digits_model_dir, graph, external_data=True)
    data = [p.name for p in graph.parent.iterdir() if p != graph]
    assert data, "the export wrote no external-data file"
    package(digits_model_dir, [graph], tmp_path / "bundle", latency=False, samples=4, batch_sizes=(1,))
    model = triton_repository(tmp_path / "bundle", tmp_path / "repo")
    assert sorted(p.name for p in (model / "1").iterdir()) == sorted(["model.onnx", *data])
    check_against_graph(parse(model), model / "1" / "model.onnx")
    import onnxruntime as ort  # the copied graph finds its weights under the name it records

    session = ort.InferenceSession(str(model / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_outputs()[0].shape[-1] == 10


def test_archive_bundle_leaves_no_extracted_copy(
    bundle_tar: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # this test's own temporary folder
    model = triton_repository(bundle_tar, tmp_path / "repo", max_batch_size=4)
    assert model.name == "bundle" and parse(model).max_batch_size == 4
    assert list(scratch.iterdir()) == []
