"""The TensorRT path on a CPU without TensorRT: options, profiles, sidecars, compatibility, the
trtexec line, the refit refusal, the parity check that judges every engine, and the CLI's
exit-3 paths. Nothing here pretends an engine ran: engines are fake bytes with real sidecars,
refused or accepted by the checks that run before TensorRT is ever touched."""

from __future__ import annotations

import dataclasses
import json
import shlex
import time
from pathlib import Path

import numpy as np
import onnx
import pytest

from converters import export_onnx
from converters.tensorrt.options import TENSORRT_10, TENSORRT_11, BuildOptions, TrtFeatures
from converters.tensorrt.parity import judge_engine
from converters.tensorrt.profile import Profile, resolve_profile
from converters.tensorrt.record import (
    EngineRecord,
    GpuInfo,
    check_compatible,
    read_record,
    sha256_of,
    sidecar_path,
    verify_engine,
)
from converters.tensorrt.refit import check_refit_source
from converters.tensorrt.runtime import require_runtime, tensorrt_version
from converters.tensorrt.session import open_engine
from converters.tensorrt.signature import graph_signature
from converters.tensorrt.source import read_onnx
from converters.tensorrt.trtexec import trtexec_command
from toolkit.cli import main
from toolkit.errors import (
    ArtifactError,
    HardwareUnavailableError,
    InvalidArgumentError,
    MissingDependencyError,
)

H100 = GpuInfo("NVIDIA H100 80GB HBM3", (9, 0))
NO_RUNTIME = tensorrt_version() is None


@pytest.fixture(scope="module")
def exports(trained_tiny_dir: Path, custom_model_dir, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """fp32 ONNX of the trained tiny model, of the same architecture untrained (other weights),
    and another graph of the same model (preprocessing baked in)."""
    out = tmp_path_factory.mktemp("trt")
    paths = {
        "trained": out / "trained.onnx",
        "untrained": out / "untrained.onnx",
        "other": out / "other.onnx",
    }
    export_onnx(trained_tiny_dir, paths["trained"])
    export_onnx(custom_model_dir("make_tiny"), paths["untrained"])
    export_onnx(trained_tiny_dir, paths["other"], bake_preprocess=True)
    return paths


def _record(engine: Path, onnx_path: Path, **changes: object) -> EngineRecord:
    """A sidecar for ``engine`` as export_tensorrt writes it, built from the real files."""
    facts = read_onnx(onnx_path)
    options = BuildOptions(min_batch=1, opt_batch=8, max_batch=16, refittable=True)
    profile = resolve_profile(facts.input_name, facts.input_dims, options, (16, 16))
    record = EngineRecord(
        engine_sha256=sha256_of(engine),
        engine_bytes=engine.stat().st_size,
        onnx_name=onnx_path.name,
        onnx_sha256=sha256_of(onnx_path),
        graph_signature=graph_signature(onnx_path),
        tensorrt_version="10.13.3.9",
        gpu=H100,
        profile=profile,
        precision="fp32",
        builder_flags=options.builder_flags,
        strongly_typed=False,
        hardware_compat="none",
        version_compatible=False,
        refittable=True,
        weights_stripped=False,
        opt_level=3,
        workspace_mib=None,
        build_seconds=1.0,
        built_at="2026-11-25T00:00:00+00:00",
        trtexec=trtexec_command(onnx_path, engine, options, profile),
        model={k: v for k, v in facts.meta.items() if k in ("class_names", "head_spec", "weights_sha256")},
    )
    return dataclasses.replace(record, **changes)  # type: ignore[arg-type]


def _fake_engine(folder: Path, onnx_path: Path, name: str = "model.engine", **changes: object) -> Path:
    engine = folder / name
    engine.write_bytes(np.random.default_rng(0).bytes(4096))
    sidecar_path(engine).write_text(_record(engine, onnx_path, **changes).dumps())
    return engine


# --- options and profiles ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"min_batch": 0}, "min_batch"),
        ({"min_batch": 8, "max_batch": 4}, "max_batch"),
        ({"opt_batch": 64, "max_batch": 32}, "opt_batch"),
        ({"min_size": (160, 160)}, "min_size"),
        ({"min_size": (224, 224), "opt_size": (160, 160), "max_size": (320, 320)}, "opt_size"),
        ({"min_size": (0, 5), "opt_size": (1, 1), "max_size": (1, 1)}, "min_size"),
        ({"strongly_typed": True, "fp16": True}, "fp16"),
        ({"fp16": True, "bf16": True}, "bf16"),
        ({"opt_level": 6}, "opt_level"),
        ({"hardware_compat": "turing+"}, "hardware_compat"),
        ({"refittable": True, "strip_weights": True}, "strip_weights"),
        ({"workspace_mib": 0}, "workspace_mib"),
    ],
)
def test_bad_build_options_name_their_argument(kwargs: dict[str, object], param: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        BuildOptions(**kwargs)  # type: ignore[arg-type]
    assert info.value.param == param


def test_build_flags_follow_the_options() -> None:
    assert BuildOptions().builder_flags == ()  # fp32: TF32 cleared, nothing set
    assert BuildOptions(fp16=True, refittable=True).builder_flags == ("REFIT",)  # precision: typing()
    assert BuildOptions(strip_weights=True).builder_flags == ("STRIP_PLAN", "REFIT_IDENTICAL")
    assert BuildOptions(tf32=True, strongly_typed=True).builder_flags == ("TF32",)  # TF32 stays in 11


@pytest.mark.parametrize("features", [TENSORRT_10, TENSORRT_11], ids=["trt10", "trt11"])
def test_precision_comes_from_the_graph_on_both_versions(features: TrtFeatures) -> None:
    """A QDQ or fp16 ONNX is built strongly typed with no precision flags, whatever the version;
    the engine's precision is the graph's."""
    for onnx_precision in ("int8", "fp16"):
        typing = BuildOptions(refittable=True).typing(onnx_precision, features)
        assert typing.strongly_typed and typing.flags == ("REFIT",) and typing.precision == onnx_precision
        assert typing.notes == ()
        with pytest.raises(InvalidArgumentError, match=f"this ONNX is {onnx_precision}") as info:
            BuildOptions(fp16=True).typing(onnx_precision, features)
        assert info.value.param == "fp16"
    fp32 = BuildOptions().typing("fp32", features)
    assert fp32.flags == () and fp32.precision == "fp32" and fp32.strongly_typed is not features.weak_typing
    assert BuildOptions(tf32=True).typing("fp32", features).precision == "tf32"
    assert BuildOptions(strongly_typed=True).typing("fp32", features).mode == "strong"


def test_fp16_flag_only_where_weak_typing_exists() -> None:
    weak = BuildOptions(fp16=True).typing("fp32", TENSORRT_10)
    assert (weak.strongly_typed, weak.flags, weak.precision) == (False, ("FP16",), "fp16")
    assert "deprecated" in weak.notes[0] and "export onnx --fp16" in weak.notes[0]
    assert BuildOptions(bf16=True).typing("fp32", TENSORRT_10).flags == ("BF16",)
    for flag in ("fp16", "bf16"):
        with pytest.raises(InvalidArgumentError, match="strongly typed") as info:
            BuildOptions(**{flag: True}).typing("fp32", TENSORRT_11)  # type: ignore[arg-type]
        assert info.value.param == flag and "rehead export onnx --fp16" in (info.value.hint or "")


def test_weak_typing_is_detected_by_feature_not_version() -> None:
    flags_10 = ("FP16", "BF16", "INT8", "TF32", "REFIT", "VERSION_COMPATIBLE")
    flags_11 = ("TF32", "REFIT", "VERSION_COMPATIBLE", "STRIP_PLAN")
    assert TrtFeatures.detect("10.16.1", flags_10).weak_typing
    assert not TrtFeatures.detect("11.4.0", flags_11).weak_typing
    assert TrtFeatures.detect("11.9", flags_10).weak_typing  # the enum decides, not the number
    assert not TrtFeatures.detect("10.99", flags_11).weak_typing


def test_profile_dynamic_batch_and_spatial() -> None:
    options = BuildOptions(min_batch=1, opt_batch=8, max_batch=32)
    profile = resolve_profile("images", ("batch", 3, 224, 224), options, None)
    assert (profile.min, profile.opt, profile.max) == ((1, 3, 224, 224), (8, 3, 224, 224), (32, 3, 224, 224))
    assert profile.contains((16, 3, 224, 224)) and not profile.contains((33, 3, 224, 224))
    spatial = resolve_profile("images", ("batch", 3, "h", "w"), options, (224, 224))
    assert spatial.min == (1, 3, 224, 224)  # the model's input size when no range is given
    sized = BuildOptions(min_size=(160, 128), opt_size=(224, 224), max_size=(320, 288))
    ranged = resolve_profile("images", ("batch", 3, "h", "w"), sized, (224, 224))
    assert ranged.min[2:] == (160, 128) and ranged.max[2:] == (320, 288)
    with pytest.raises(InvalidArgumentError) as info:
        resolve_profile("images", ("batch", 3, "h", "w"), options, None)
    assert info.value.param == "min_size"


def test_fixed_batch_onnx_needs_that_batch() -> None:
    with pytest.raises(InvalidArgumentError) as info:
        resolve_profile("images", (1, 3, 16, 16), BuildOptions(max_batch=8), None)
    assert info.value.param == "max_batch"
    fixed = resolve_profile("images", (1, 3, 16, 16), BuildOptions(min_batch=1, max_batch=1), None)
    assert fixed.min == fixed.max == (1, 3, 16, 16)


# --- graph signature and the refit refusal ------------------------------------------------------------


def test_graph_signature_ignores_weights_not_structure(exports: dict[str, Path]) -> None:
    trained, untrained = graph_signature(exports["trained"]), graph_signature(exports["untrained"])
    assert sha256_of(exports["trained"]) != sha256_of(exports["untrained"])  # other weights
    assert trained == untrained  # same architecture and head size: refittable
    assert graph_signature(exports["other"]) != trained


def test_graph_signature_sees_a_head_size_change(exports: dict[str, Path], tmp_path: Path) -> None:
    model = onnx.load(str(exports["trained"]))
    out = model.graph.output[0].type.tensor_type.shape.dim[1]
    out.dim_value = 11
    changed = tmp_path / "changed.onnx"
    onnx.save(model, str(changed))
    assert graph_signature(changed) != graph_signature(exports["trained"])


def test_refit_refuses_another_graph_and_a_fixed_engine(exports: dict[str, Path], tmp_path: Path) -> None:
    engine = _fake_engine(tmp_path, exports["trained"])
    record = read_record(engine)
    assert check_refit_source(record, exports["untrained"]) == record.graph_signature
    with pytest.raises(ArtifactError, match="not the graph the engine was built from"):
        check_refit_source(record, exports["other"])
    with pytest.raises(ArtifactError, match="not built refittable"):
        check_refit_source(dataclasses.replace(record, refittable=False), exports["untrained"])
    # a weight-stripped engine (REFIT_IDENTICAL) takes back its own weights only
    stripped = dataclasses.replace(record, weights_stripped=True)
    assert check_refit_source(stripped, exports["trained"]) == record.graph_signature
    with pytest.raises(ArtifactError, match="weight-stripped"):
        check_refit_source(stripped, exports["untrained"])


def test_refit_cli_refuses_another_graph_before_tensorrt(
    exports: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = _fake_engine(tmp_path, exports["trained"])
    code = main(["refit", str(engine), str(exports["other"]), "-o", str(tmp_path / "new.engine")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "not the graph" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "new.engine").exists()


@pytest.mark.skipif(not NO_RUNTIME, reason="TensorRT is installed: the missing-runtime path cannot be exercised")
def test_refit_cli_same_graph_reaches_the_runtime_check(
    exports: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = _fake_engine(tmp_path, exports["trained"])
    code = main(["refit", str(engine), str(exports["untrained"]), "-o", str(tmp_path / "new.engine")])
    assert code == 3
    assert "TensorRT is not installed" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.engine", "model.engine.json"]


# --- sidecar and engine verification -------------------------------------------------------------------


def test_sidecar_round_trip(exports: dict[str, Path], tmp_path: Path) -> None:
    engine = _fake_engine(tmp_path, exports["trained"])
    record = verify_engine(engine)
    assert EngineRecord.from_json(json.loads(record.dumps())) == record
    assert record.model["weights_sha256"]  # the lineage validate checks


def test_sidecar_schema_version_key_and_the_old_schema_key(exports: dict[str, Path], tmp_path: Path) -> None:
    """A sidecar says ``schema_version`` (every record's key) and still ``schema`` (what an older
    rehead reads); one written before ``schema_version`` reads by ``schema``; ``schema_version``
    decides when both are there."""
    engine = _fake_engine(tmp_path, exports["trained"])
    data = json.loads(sidecar_path(engine).read_text())
    assert data["schema_version"] == data["schema"] == 1
    record = read_record(engine)
    assert record.schema_version == 1
    old = {k: v for k, v in data.items() if k != "schema_version"}
    assert EngineRecord.from_json(old) == record
    assert EngineRecord.from_json({k: v for k, v in data.items() if k != "schema"}) == record
    assert EngineRecord.from_json({**data, "schema": 2}) == record
    with pytest.raises(ArtifactError, match="schema_version 2"):
        EngineRecord.from_json({**data, "schema_version": 2, "schema": 1})


def test_tampered_engine_is_refused_before_deserialisation(exports: dict[str, Path], tmp_path: Path) -> None:
    engine = _fake_engine(tmp_path, exports["trained"])
    data = bytearray(engine.read_bytes())
    data[100] ^= 0xFF
    engine.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="does not match its sidecar"):
        verify_engine(engine)
    # open_engine verifies before it asks for TensorRT or a GPU: exit 2 here, not 3
    with pytest.raises(ArtifactError, match="does not match its sidecar"):
        open_engine(engine)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda d: d.update(schema_version=2), "schema_version 2"),
        (lambda d: (d.pop("schema_version"), d.update(schema=2)), "schema_version 2"),  # a sidecar from before
        (lambda d: (d.pop("schema_version"), d.pop("schema")), "schema_version None"),
        (lambda d: d.pop("gpu"), "not a valid engine record"),
        (lambda d: d.update(engine_bytes="4096"), "not a valid engine record"),
        (lambda d: d.update(refittable="yes"), "not a valid engine record"),
        (lambda d: d.update(hardware_compat="everything"), "values rehead never writes"),
    ],
)
def test_lying_or_foreign_sidecars_are_refused(
    exports: dict[str, Path], tmp_path: Path, edit: object, match: str
) -> None:
    engine = _fake_engine(tmp_path, exports["trained"])
    data = json.loads(sidecar_path(engine).read_text())
    edit(data)  # type: ignore[operator]
    sidecar_path(engine).write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match=match):
        read_record(engine)


def test_missing_or_huge_sidecar_is_refused(exports: dict[str, Path], tmp_path: Path) -> None:
    engine = tmp_path / "bare.engine"
    engine.write_bytes(b"\0" * 64)
    with pytest.raises(ArtifactError, match="has no sidecar"):
        verify_engine(engine)
    sidecar_path(engine).write_text(" " * (2 << 20))
    with pytest.raises(ArtifactError, match="not an engine record"):
        verify_engine(engine)


def test_engine_sidecar_and_script_are_published_together(exports: dict[str, Path], tmp_path: Path) -> None:
    """What a build or refit writes last, without TensorRT: the plan, its sidecar and its trtexec
    script, in one staged publish; a sidecar or script left beside a missing engine is its own."""
    from converters.tensorrt._output import check_engine_path, publish_engine, sha256_bytes
    from converters.tensorrt.record import trtexec_path
    from toolkit.errors import OutputExistsError

    plan = np.random.default_rng(1).bytes(2048)
    source = _fake_engine(tmp_path, exports["trained"])
    record = dataclasses.replace(read_record(source), engine_sha256=sha256_bytes(plan), engine_bytes=len(plan))
    out = tmp_path / "out" / "new.engine"
    out.parent.mkdir()
    sidecar_path(out).write_text("stale")  # a dead engine's leftovers: replaced without overwrite
    publish_engine(check_engine_path(out, overwrite=False), plan, record, overwrite=False)
    assert sorted(p.name for p in out.parent.iterdir()) == ["new.engine", "new.engine.json", "new.engine.trtexec.sh"]
    assert verify_engine(out) == record  # the engine and its sidecar agree
    script = trtexec_path(out).read_text().splitlines()
    assert script[0] == "#!/bin/sh" and script[-1] == record.trtexec
    with pytest.raises(OutputExistsError):
        check_engine_path(out, overwrite=False)
    with pytest.raises(OutputExistsError):
        publish_engine(out, plan[::-1], record, overwrite=False)
    assert verify_engine(out) == record  # the refused run changed nothing
    with pytest.raises(InvalidArgumentError, match=r"\.engine or \.plan"):
        check_engine_path(tmp_path / "model.onnx", overwrite=False)


# --- compatibility -----------------------------------------------------------------------------------


def test_compatibility_rules(exports: dict[str, Path], tmp_path: Path) -> None:
    record = read_record(_fake_engine(tmp_path, exports["trained"]))
    assert check_compatible(record, tensorrt_version="10.13.3.9", gpu=H100) == ()
    other_h = GpuInfo("NVIDIA H200", (9, 0))
    assert "H200" in check_compatible(record, tensorrt_version="10.13.3.9", gpu=other_h)[0]  # same CC: a note
    with pytest.raises(ArtifactError, match=r"cannot run on TensorRT 10\.14"):
        check_compatible(record, tensorrt_version="10.14.1", gpu=H100)
    with pytest.raises(ArtifactError, match=r"compute capability 9\.0"):
        check_compatible(record, tensorrt_version="10.13.3.9", gpu=GpuInfo("NVIDIA A100", (8, 0)))
    portable = dataclasses.replace(record, version_compatible=True, hardware_compat="ampere+")
    assert check_compatible(portable, tensorrt_version="10.15.0", gpu=GpuInfo("NVIDIA A10", (8, 6))) != ()
    with pytest.raises(ArtifactError, match="same major version"):
        check_compatible(portable, tensorrt_version="10.12.0", gpu=H100)  # older than the builder
    # NVIDIA: a TensorRT 10 version-compatible engine runs on the TensorRT 11 runtime; not on 12
    assert check_compatible(portable, tensorrt_version="11.4.0.106", gpu=H100) == ()
    with pytest.raises(ArtifactError, match="same major version"):
        check_compatible(portable, tensorrt_version="12.0.0", gpu=H100)
    eleven = dataclasses.replace(portable, tensorrt_version="11.4.0.106")
    assert check_compatible(eleven, tensorrt_version="11.5.0", gpu=H100) == ()
    with pytest.raises(ArtifactError, match="same major version"):
        check_compatible(eleven, tensorrt_version="10.16.1", gpu=H100)  # never backwards
    with pytest.raises(ArtifactError, match=r"cannot run on TensorRT 11\.4"):
        check_compatible(record, tensorrt_version="11.4.0.106", gpu=H100)  # not version compatible
    with pytest.raises(ArtifactError, match="Ampere or newer"):
        check_compatible(portable, tensorrt_version="10.13.3.9", gpu=GpuInfo("Tesla T4", (7, 5)))


# --- the trtexec line ---------------------------------------------------------------------------------


def test_trtexec_line_says_the_same_build() -> None:
    profile = Profile("images", (1, 3, 224, 224), (8, 3, 224, 224), (32, 3, 224, 224))
    plain = shlex.split(trtexec_command("m.onnx", "m.engine", BuildOptions(max_batch=32, opt_batch=8), profile))
    assert plain[:3] == ["trtexec", "--onnx=m.onnx", "--saveEngine=m.engine"]
    assert "--minShapes=images:1x3x224x224" in plain and "--maxShapes=images:32x3x224x224" in plain
    assert "--optShapes=images:8x3x224x224" in plain and "--noTF32" in plain and "--fp16" not in plain
    options = BuildOptions(
        workspace_mib=1024, opt_level=5, timing_cache="t.cache", hardware_compat="same-compute-capability",
        version_compatible=True, strip_weights=True,
    )
    line = shlex.split(trtexec_command("dir with space/m.onnx", "m.engine", options, profile, onnx_precision="int8"))
    for flag in (
        "--onnx=dir with space/m.onnx", "--stronglyTyped", "--memPoolSize=workspace:1024M",
        "--builderOptimizationLevel=5", "--timingCacheFile=t.cache",
        "--hardwareCompatibilityLevel=sameComputeCapability", "--versionCompatible", "--stripWeights",
        "--skipInference",
    ):
        assert flag in line, flag
    assert "--int8" not in line and "--fp16" not in line  # a QDQ graph carries its own precision
    assert "--noTF32" in line and "--refit" not in line  # stripWeights alone = identical-weights refit
    refit = shlex.split(trtexec_command("m.onnx", "m.engine", BuildOptions(refittable=True, tf32=True), profile))
    assert "--refit" in refit and "--noTF32" not in refit
    typed = shlex.split(trtexec_command("m.onnx", "m.engine", BuildOptions(strongly_typed=True), profile))
    assert "--stronglyTyped" in typed and "--noTF32" in typed  # the build clears TF32 typed or not
    weak = shlex.split(trtexec_command("m.onnx", "m.engine", BuildOptions(fp16=True), profile, features=TENSORRT_10))
    assert "--fp16" in weak and "--stronglyTyped" not in weak


def test_trtexec_line_for_tensorrt_11_has_no_weak_typing_flags() -> None:
    """TensorRT 11's trtexec has no --fp16/--int8/--bf16/--best: the line comes from the same
    detected features as the build."""
    profile = Profile("images", (1, 3, 224, 224), (8, 3, 224, 224), (32, 3, 224, 224))
    for precision in ("fp32", "fp16", "int8"):
        line = shlex.split(trtexec_command("m.onnx", "m.engine", BuildOptions(), profile,
                                           onnx_precision=precision, features=TENSORRT_11))
        assert not {"--fp16", "--int8", "--bf16", "--best", "--stronglyTyped"} & set(line), line
        assert "--noTF32" in line
    with pytest.raises(InvalidArgumentError, match="strongly typed"):
        trtexec_command("m.onnx", "m.engine", BuildOptions(fp16=True), profile, features=TENSORRT_11)


# --- the check every engine gets, run with ONNX Runtime standing in for TensorRT ----------------------


def _zero_head_bias(src: Path, dst: Path) -> None:
    """The failure TensorRT documents for REFIT builds: the classifier GEMM's bias treated as zero."""
    model = onnx.load(str(src))
    gemm = [n for n in model.graph.node if n.op_type == "Gemm"][-1]
    bias = next(i for i in model.graph.initializer if i.name == gemm.input[2])
    values = onnx.numpy_helper.to_array(bias)
    bias.CopyFrom(onnx.numpy_helper.from_array(np.zeros_like(values), bias.name))
    onnx.save(model, str(dst))


def test_engine_check_catches_a_dropped_head_bias(exports: dict[str, Path], tmp_path: Path) -> None:
    from converters.onnx.ort import open_session

    facts = read_onnx(exports["trained"])
    profile = resolve_profile(facts.input_name, facts.input_dims, BuildOptions(max_batch=16, opt_batch=8), (16, 16))

    def runner(path: Path):  # type: ignore[no-untyped-def]
        session = open_session(path)
        return lambda x: np.asarray(session.run(None, {facts.input_name: x})[0], dtype=np.float32)

    good, checks = judge_engine(runner(exports["trained"]), facts, profile, "fp32")
    assert good.passed and checks["top1_agreement_b8"] == 1.0
    _zero_head_bias(exports["trained"], tmp_path / "nobias.onnx")
    bad, _ = judge_engine(runner(tmp_path / "nobias.onnx"), facts, profile, "fp32")
    assert not bad.passed
    assert {f.class_slice for f in bad.failures} >= {"all"}
    assert all(f.kind for f in bad.failures)  # records, not text
    # the fp16 preset still catches it: a bias is not rounding noise
    assert not judge_engine(runner(tmp_path / "nobias.onnx"), facts, profile, "fp16")[0].passed


# --- no TensorRT or no GPU: exit 3 within seconds, nothing written -------------------------------------


@pytest.mark.skipif(not NO_RUNTIME, reason="TensorRT is installed: the missing-runtime path cannot be exercised")
def test_require_runtime_names_what_is_missing() -> None:
    import torch

    with pytest.raises((MissingDependencyError, HardwareUnavailableError)) as info:
        require_runtime(purpose="building a TensorRT engine")
    assert "TensorRT is not installed" in info.value.message
    assert ("no CUDA GPU" in info.value.message) == (not torch.cuda.is_available())
    assert info.value.exit_code == 3


@pytest.mark.skipif(not NO_RUNTIME, reason="TensorRT is installed: the missing-runtime path cannot be exercised")
def test_export_tensorrt_cli_exits_3_quickly_and_writes_nothing(
    exports: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out" / "model.engine"
    start = time.perf_counter()
    code = main(["export", "tensorrt", str(exports["trained"]), "-o", str(out), "--max-batch", "16"])
    seconds = time.perf_counter() - start
    err = capsys.readouterr().err
    assert code == 3, err
    assert "TensorRT is not installed" in err and "pypi.nvidia.com" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert seconds < 10
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_export_tensorrt_cli_bad_arguments_exit_2_first(
    exports: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "model.engine"
    args = ["export", "tensorrt", str(exports["trained"]), "-o", str(out)]
    assert main([*args, "--min-batch", "8", "--max-batch", "4"]) == 2
    assert "--max-batch" in capsys.readouterr().err
    assert main([*args, "--min-size", "abc", "--opt-size", "1x1", "--max-size", "1x1"]) == 2
    assert "--min-size" in capsys.readouterr().err
    assert main(["export", "tensorrt", str(exports["trained"]), "-o", str(tmp_path / "model.onnx")]) == 2
    assert ".engine or .plan" in capsys.readouterr().err
    not_onnx = tmp_path / "weights.bin"
    not_onnx.write_bytes(b"\0" * 10)
    assert main(["export", "tensorrt", str(not_onnx), "-o", str(out)]) == 2
    assert not out.exists()


# --- validate with an engine on a CPU machine ------------------------------------------------------------


def test_validate_engine_paths_on_cpu(
    trained_tiny_dir: Path, exports: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bare = tmp_path / "bare.engine"
    bare.write_bytes(b"\0" * 64)
    assert main(["validate", str(trained_tiny_dir), str(bare), "--no-latency"]) == 2
    assert "has no sidecar" in capsys.readouterr().err
    engine = _fake_engine(tmp_path, exports["trained"])
    assert main(["validate", str(trained_tiny_dir), str(engine), "--no-latency"]) == 2
    assert "CUDA GPU" in capsys.readouterr().err  # engines run on cuda only
    foreign = _fake_engine(tmp_path, exports["untrained"], name="foreign.engine")
    assert main(["validate", str(trained_tiny_dir), str(foreign), "--no-latency"]) == 2
    assert "was exported from weights" in capsys.readouterr().err  # lineage from the sidecar


def test_a_stripped_engine_is_packaged_with_its_onnx_or_refused(exports: dict[str, Path], tmp_path: Path) -> None:
    """A bundle must be able to open what it holds: a weight-stripped engine is refitted from its ONNX
    when opened, so that ONNX goes in beside it; when it is missing or changed, package refuses."""
    import shutil

    from toolkit.deploy.bundle import _companions

    onnx_path = tmp_path / "trained.onnx"
    shutil.copy(exports["trained"], onnx_path)
    stripped = _fake_engine(tmp_path, onnx_path, name="stripped.engine", weights_stripped=True)
    names = [name for _, name in _companions(stripped)]
    assert names == ["stripped.engine.json", "trained.onnx"]
    full = _fake_engine(tmp_path, onnx_path, name="full.engine")
    assert [name for _, name in _companions(full)] == ["full.engine.json"]
    onnx_path.write_bytes(onnx_path.read_bytes() + b"\0")  # changed after the build
    with pytest.raises(ArtifactError, match="weight-stripped"):
        _companions(stripped)
    onnx_path.unlink()
    with pytest.raises(ArtifactError, match="not beside"):
        _companions(stripped)
