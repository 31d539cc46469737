"""Hostile files (docs/bad-inputs.md rows 19, 22, 23, 32-37), through the CLI in a real
subprocess: each refused before anything is loaded or executed, with nothing written."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from reliability_util import LEDGER, assert_clean_failure, run


def _hostile(proc, out: Path | None, expect: str, exit_code: int = 2) -> str:  # type: ignore[no-untyped-def]
    line = assert_clean_failure(proc, out, expect=expect, exit_code=exit_code, kind="hostile_files")
    return line


@pytest.fixture(scope="module")
def external_onnx(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model exported with its weights in a data file beside it."""
    out = tmp_path_factory.mktemp("external") / "ext.onnx"
    proc = run(["export", "onnx", tiny_dir, "-o", out, "--external-data"])
    assert proc.returncode == 0, proc.stderr
    return out


def _relocate(src: Path, folder: Path, location: str) -> Path:
    """A copy of ``src`` (rehead's metadata kept) whose weights' location is ``location``."""
    folder.mkdir(parents=True, exist_ok=True)
    model = onnx.load(str(src), load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    path = folder / "model.onnx"
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink"])
@pytest.mark.parametrize("command", ["validate", "package", "lint"])
def test_row19_external_data_escaping_its_folder_is_refused(
    tiny_dir: Path, external_onnx: Path, tmp_path: Path, how: str, command: str
) -> None:
    data = next(p for p in external_onnx.parent.iterdir() if p.name != external_onnx.name)
    outside = tmp_path / "outside.data"
    shutil.copy(data, outside)
    folder = tmp_path / "model"
    if how == "dotdot":
        path, expect = _relocate(external_onnx, folder, "../outside.data"), "path separator"
    elif how == "absolute":
        path, expect = _relocate(external_onnx, folder, str(outside)), "absolute"
    else:
        path = _relocate(external_onnx, folder, "weights.data")
        (folder / "weights.data").symlink_to(outside)
        expect = "symlink"
    out = tmp_path / "bundle"
    args = {
        "validate": ["validate", tiny_dir, path, "--no-latency", "--report", out],
        "package": ["package", tiny_dir, path, "-o", out, "--no-latency"],
        "lint": ["lint", path],
    }[command]
    proc = run(args)
    if command == "lint":  # the linter reports it as an error finding (exit 1) and reads nothing else
        assert proc.returncode == 1 and "error external-data" in proc.stdout, proc.stdout
        assert "Traceback" not in proc.stderr
        LEDGER["hostile_files"] += 1
        return
    _hostile(proc, out, expect)


def _edit(src: Path, dst: Path, change) -> Path:  # type: ignore[no-untyped-def]
    model = onnx.load(str(src))
    change(model)
    onnx.save(model, str(dst))
    return dst


def test_row32_absurd_input_dimensions_refused_before_a_session(tiny_dir: Path, tiny_onnx: Path,
                                                                tmp_path: Path) -> None:
    def huge(model: onnx.ModelProto) -> None:
        model.graph.input[0].type.tensor_type.shape.dim[2].dim_value = 2**40

    path = _edit(tiny_onnx, tmp_path / "huge.onnx", huge)
    report = tmp_path / "report"
    _hostile(run(["validate", tiny_dir, path, "--no-latency", "--report", report]), report, "elements per call")


def test_row33_custom_domain_op_refused_before_anything_runs(tiny_dir: Path, tiny_onnx: Path,
                                                             tmp_path: Path) -> None:
    def custom(model: onnx.ModelProto) -> None:
        node = next(n for n in model.graph.node if n.op_type == "Relu")
        node.domain = "evil.ops"
        node.op_type = "Boom"
        model.opset_import.append(onnx.helper.make_opsetid("evil.ops", 1))

    path = _edit(tiny_onnx, tmp_path / "custom.onnx", custom)
    report = tmp_path / "report"
    line = _hostile(run(["validate", tiny_dir, path, "--no-latency", "--report", report]), report, "custom domain")
    assert "evil.ops::Boom" in line


def _with_config(src: Path, dst: Path, change) -> Path:  # type: ignore[no-untyped-def]
    shutil.copytree(src, dst)
    config = json.loads((dst / "config.json").read_text())
    change(config)
    (dst / "config.json").write_text(json.dumps(config))
    return dst


@pytest.mark.parametrize(
    ("field", "value", "expect"),
    [("class_names", 5, "class_names"), ("arch", 3, "arch"), ("lineage", "x", "lineage"),
     ("head.num_classes", "ten", "num_classes"), ("head.in_features", -4, "in_features"),
     ("head.bias", "yes", "bias"), ("preprocessing.input_size", [16], "input_size"),
     ("preprocessing.std", [0.2, 0.0, 0.2], "std"), ("preprocessing.mean", [0.5], "mean"),
     ("head", [], "head")],
)
def test_row34_config_with_wrong_types_is_refused(tiny_dir: Path, tmp_path: Path, field: str, value: object,
                                                  expect: str) -> None:
    def change(config: dict[str, object]) -> None:
        *parents, last = field.split(".")
        target = config
        for key in parents:
            target = target[key]  # type: ignore[assignment]
        target[last] = value  # type: ignore[index]

    model_dir = _with_config(tiny_dir, tmp_path / "model", change)
    line = _hostile(run(["inspect", model_dir]), None, expect)
    assert "config.json" in line
    out = tmp_path / "m.onnx"
    _hostile(run(["export", "onnx", model_dir, "-o", out]), out, expect)


def test_row35_unknown_schema_version_is_refused(tiny_dir: Path, tmp_path: Path) -> None:
    model_dir = _with_config(tiny_dir, tmp_path / "model", lambda c: c.update(schema_version=99))
    line = _hostile(run(["inspect", model_dir]), None, "schema_version 99")
    assert "reads 1" in line


@pytest.fixture(scope="module")
def bundle(tiny_dir: Path, tiny_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "bundle"
    proc = run(["package", tiny_dir, tiny_onnx, "-o", out, "--no-latency"])
    assert proc.returncode == 0, proc.stderr
    return out


def test_row36_manifest_lying_about_a_size_is_refused(bundle: Path, tmp_path: Path) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    entry = next(f for f in manifest["files"] if f["name"].endswith(".onnx"))
    entry["size"] = 10
    (copy / "manifest.json").write_text(json.dumps(manifest))
    line = _hostile(run(["verify", copy]), None, entry["name"], exit_code=1)
    assert "size" in line or "bytes" in line


def _tar_with(bundle: Path, path: Path, member: tarfile.TarInfo, data: bytes | None) -> Path:
    with tarfile.open(path, "w") as tar:
        for item in sorted(bundle.rglob("*")):
            tar.add(item, arcname=str(Path("bundle") / item.relative_to(bundle)), recursive=False)
        tar.addfile(member, io.BytesIO(data) if data is not None else None)
    return path


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "hardlink"])
def test_row37_tar_with_escaping_or_link_members_refused_before_extraction(bundle: Path, tmp_path: Path,
                                                                           kind: str) -> None:
    victim = tmp_path / "victim.txt"
    member = tarfile.TarInfo({"dotdot": "bundle/../../victim.txt", "absolute": str(victim),
                              "symlink": "bundle/link", "hardlink": "bundle/hard"}[kind])
    data: bytes | None = b"owned"
    if kind in ("symlink", "hardlink"):
        member.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
        member.linkname = "/etc/passwd"
        data = None
    else:
        member.size = len(b"owned")
    archive = _tar_with(bundle, tmp_path / "b.tar", member, data)
    before = sorted(os.listdir(tmp_path))
    _hostile(run(["verify", archive]), None, "", exit_code=1)
    assert not victim.exists() and sorted(os.listdir(tmp_path)) == before


def test_row37_zip_with_escaping_member_refused_before_extraction(bundle: Path, tmp_path: Path) -> None:
    archive = tmp_path / "b.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for item in sorted(bundle.rglob("*")):
            if item.is_file():
                zf.write(item, str(Path("bundle") / item.relative_to(bundle)))
        zf.writestr("bundle/../../victim.txt", b"owned")
    _hostile(run(["verify", archive]), None, "victim.txt", exit_code=1)
    assert not (tmp_path.parent / "victim.txt").exists()


def _fake_engine(folder: Path, onnx_path: Path, **changes: object) -> Path:
    """An engine file of random bytes with a sidecar as export_tensorrt writes it."""
    from converters.tensorrt.options import BuildOptions
    from converters.tensorrt.profile import resolve_profile
    from converters.tensorrt.record import EngineRecord, GpuInfo, sha256_of, sidecar_path
    from converters.tensorrt.signature import graph_signature
    from converters.tensorrt.source import read_onnx
    from converters.tensorrt.trtexec import trtexec_command

    engine = folder / "model.engine"
    engine.write_bytes(np.random.default_rng(0).bytes(4096))
    facts = read_onnx(onnx_path)
    options = BuildOptions(min_batch=1, opt_batch=8, max_batch=16)
    profile = resolve_profile(facts.input_name, facts.input_dims, options, (16, 16))
    record = EngineRecord(
        engine_sha256=sha256_of(engine), engine_bytes=engine.stat().st_size, onnx_name=onnx_path.name,
        onnx_sha256=sha256_of(onnx_path), graph_signature=graph_signature(onnx_path), tensorrt_version="10.13.3.9",
        gpu=GpuInfo(name="NVIDIA H100 80GB HBM3", compute_capability=(9, 0)),
        profile=profile, precision="fp32", builder_flags=options.builder_flags, strongly_typed=False,
        hardware_compat="none", version_compatible=False, refittable=False, weights_stripped=False, opt_level=3,
        workspace_mib=None, build_seconds=1.0, built_at="2026-11-25T00:00:00+00:00",
        trtexec=trtexec_command(onnx_path, engine, options, profile),
        model={k: v for k, v in facts.meta.items() if k in ("class_names", "head_spec", "weights_sha256")},
    )
    sidecar_path(engine).write_text(dataclasses.replace(record, **changes).dumps())  # type: ignore[arg-type]
    return engine


def test_row23_engine_whose_bytes_differ_from_its_sidecar_is_refused(tiny_dir: Path, tiny_onnx: Path,
                                                                     tmp_path: Path) -> None:
    folder = tmp_path / "e"
    folder.mkdir()
    engine = _fake_engine(folder, tiny_onnx)
    data = bytearray(engine.read_bytes())
    data[100] ^= 0xFF  # one byte of native code changed after the build
    engine.write_bytes(bytes(data))
    out = tmp_path / "bundle"
    _hostile(run(["package", tiny_dir, engine, "-o", out, "--no-latency"]), out, "does not match its sidecar")


def test_row23_bundle_file_whose_sha256_differs_is_refused(bundle: Path, tmp_path: Path) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    onnx_file = next(copy.rglob("*.onnx"))
    data = bytearray(onnx_file.read_bytes())
    data[-5] ^= 0x01
    onnx_file.write_bytes(bytes(data))
    _hostile(run(["verify", copy]), None, onnx_file.name, exit_code=1)


def test_row22_engine_of_another_tensorrt_or_gpu_says_rebuild(tiny_onnx: Path, tmp_path: Path) -> None:
    """The sidecar check itself, on the CPU: the compatibility rule every engine load applies
    before deserialising (the CLI path needs a GPU: tests/converters/tensorrt/test_gpu.py)."""
    from converters.tensorrt.record import GpuInfo, check_compatible, read_record
    from toolkit.errors import ArtifactError

    record = read_record(_fake_engine(tmp_path, tiny_onnx))
    with pytest.raises(ArtifactError) as caught:
        check_compatible(record, tensorrt_version="10.9.0.34", gpu=record.gpu)
    assert "cannot run on TensorRT 10.9.0.34" in caught.value.message and "rebuild" in caught.value.one_line()
    other = GpuInfo(name="NVIDIA A100-SXM4-80GB", compute_capability=(8, 0))
    with pytest.raises(ArtifactError) as caught:
        check_compatible(record, tensorrt_version=record.tensorrt_version, gpu=other)
    assert "compute capability 9.0" in caught.value.message and "rebuild the engine on this GPU" in caught.value.hint
    LEDGER["hostile_files"] += 2
