"""Bundles: package -> verify round trip, and every kind of tampering refused naming the file."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest

from toolkit.cli import main
from toolkit.deploy.bundle import package
from toolkit.deploy.manifest import MANIFEST_FILE, Manifest
from toolkit.deploy.verification import _hash_bounded, manifest_digest, open_bundle, verify
from toolkit.errors import BundleMismatchError, GateFailedError, LineageError, OutputExistsError
from toolkit.models.model_dir import read_config, sha256_file


def _manifest(root: Path) -> dict[str, Any]:
    return json.loads((root / MANIFEST_FILE).read_text(encoding="utf-8"))


def _write_manifest(root: Path, data: dict[str, Any]) -> None:
    (root / MANIFEST_FILE).write_text(json.dumps(data), encoding="utf-8")


def _refused(path: Path, name: str, capsys: pytest.CaptureFixture[str], *words: str) -> None:
    """verify raises naming ``name``, and ``rehead verify`` exits 1 saying so."""
    with pytest.raises(BundleMismatchError) as info:
        verify(path)
    assert f"'{name}'" in info.value.message, info.value.message
    for word in words:
        assert word in info.value.message, info.value.message
    capsys.readouterr()
    assert main(["verify", str(path)]) == 1
    err = capsys.readouterr().err
    assert name in err and "hint:" in err


# --- round trip ---------------------------------------------------------------------------------------


def test_round_trip_manifest_records_what_was_validated(bundle_dir: Path, digits_model_dir: Path) -> None:
    manifest = verify(bundle_dir)
    config = read_config(digits_model_dir)
    assert manifest.schema == "rehead.bundle/1" and _manifest(bundle_dir)["schema_version"] == 1
    assert Manifest.from_json(manifest.to_json()) == manifest
    names = {f.name: f for f in manifest.files}
    assert set(names) == {"labels.txt", "config.json", "artifacts/model.onnx"}
    for name, entry in names.items():
        assert entry.sha256 == sha256_file(bundle_dir / name) and entry.size == (bundle_dir / name).stat().st_size
    assert manifest.class_names == config.class_names
    assert (bundle_dir / "labels.txt").read_text().splitlines() == list(config.class_names)
    assert manifest.preprocessing == config.preprocessing.to_json()
    assert manifest.head_spec == config.head.to_json()
    assert manifest.model["weights_sha256"] == config.weights_sha256
    assert not manifest.forced
    (artifact,) = manifest.artifacts
    assert (artifact.file, artifact.kind, artifact.precision) == ("artifacts/model.onnx", "onnx", "fp32")
    assert artifact.passed and not artifact.forced
    cert = artifact.certificate
    assert cert["preset"] == "fp32" and cert["tolerance"]["atol"] > 0
    assert cert["top1_agreement"] == 1.0 and cert["max_abs"] < 1e-3
    assert [b["batch_size"] for b in cert["batches"]] == [1, 4]
    slices = {s["slice"] for s in cert["batches"][0]["slices"]}
    assert {"all", "kept", "new"} <= slices
    assert set(artifact.latency) == {"1", "4"} and artifact.latency["4"]["p50_ms"] > 0
    assert manifest.validation["source"] == "run" and manifest.validation["settings"]["batch_sizes"] == [1, 4]
    assert manifest.environment["validation"]["versions"]["onnxruntime"]
    assert manifest.environment["package"]["rehead"]


def test_verify_cli_ok_and_pinned_manifest(bundle_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(bundle_copy)]) == 0
    out = capsys.readouterr().out
    digest = manifest_digest(bundle_copy)
    assert digest in out and digest == sha256_file(bundle_copy / MANIFEST_FILE)
    assert main(["verify", str(bundle_copy), "--sha256", digest]) == 0
    # a manifest rewritten consistently (here: only its creation time) passes the hashes, not the pin
    data = _manifest(bundle_copy)
    data["created"] = "2000-01-01T00:00:00+00:00"
    _write_manifest(bundle_copy, data)
    verify(bundle_copy)
    with pytest.raises(BundleMismatchError, match="pinned"):
        verify(bundle_copy, manifest_sha256=digest)
    assert main(["verify", str(bundle_copy), "--sha256", digest]) == 1


def test_archives_round_trip(bundle_tar: Path, bundle_zip: Path, bundle_dir: Path) -> None:
    for archive in (bundle_tar, bundle_zip):
        manifest = verify(archive)
        assert manifest.validation["source"] == "report"
        assert {f.name: f.sha256 for f in manifest.files} == {f.name: f.sha256 for f in verify(bundle_dir).files}
        root, _ = open_bundle(archive)
        try:
            assert root != archive and (root / "artifacts" / "model.onnx").is_file()
            verify(root)
        finally:
            shutil.rmtree(root)
    with tarfile.open(bundle_tar) as tar:
        assert sorted(tar.getnames()) == sorted(["manifest.json", *(f.name for f in verify(bundle_tar).files)])


# --- tampering: directories ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["artifacts/model.onnx", "labels.txt", "config.json"])
def test_changed_byte_refused(bundle_copy: Path, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = bundle_copy / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    _refused(bundle_copy, name, capsys, "sha256")


def test_changed_byte_in_manifest_refused(bundle_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the manifest is hashed by nobody but the pin; a byte changed in a recorded digest breaks that file
    data = _manifest(bundle_copy)
    entry = next(f for f in data["files"] if f["name"] == "labels.txt")
    entry["sha256"] = ("0" if entry["sha256"][0] != "0" else "1") + entry["sha256"][1:]
    _write_manifest(bundle_copy, data)
    _refused(bundle_copy, "labels.txt", capsys, "sha256")


def test_renamed_file_refused(bundle_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    os.rename(bundle_copy / "artifacts" / "model.onnx", bundle_copy / "artifacts" / "other.onnx")
    _refused(bundle_copy, "artifacts/model.onnx", capsys, "artifacts/other.onnx", "renamed")


def test_extra_file_refused(bundle_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (bundle_copy / "artifacts" / "extra.onnx").write_bytes(b"x")
    _refused(bundle_copy, "artifacts/extra.onnx", capsys, "not in the manifest")


def test_extra_directory_refused(bundle_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (bundle_copy / "empty").mkdir()
    _refused(bundle_copy, "empty", capsys, "extra directory")


def test_missing_file_refused(bundle_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (bundle_copy / "labels.txt").unlink()
    _refused(bundle_copy, "labels.txt", capsys, "missing")


@pytest.mark.parametrize("bad", ["../labels.txt", "artifacts/../../x", "/etc/passwd", "artifacts\\model.onnx"])
def test_name_leaving_the_bundle_refused(bundle_copy: Path, bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    data = _manifest(bundle_copy)
    data["files"].append({"name": bad, "sha256": "0" * 64, "size": 1})
    _write_manifest(bundle_copy, data)
    _refused(bundle_copy, bad, capsys)


def test_symlink_refused_even_with_matching_content(bundle_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = bundle_copy.parent / "labels-elsewhere.txt"
    shutil.copyfile(bundle_copy / "labels.txt", target)
    (bundle_copy / "labels.txt").unlink()
    (bundle_copy / "labels.txt").symlink_to(target)
    _refused(bundle_copy, "labels.txt", capsys, "symlink")


def test_symlinked_directory_refused(bundle_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    moved = bundle_copy.parent / "real-artifacts"
    os.rename(bundle_copy / "artifacts", moved)
    (bundle_copy / "artifacts").symlink_to(moved, target_is_directory=True)
    _refused(bundle_copy, "artifacts", capsys, "symlink")


def test_manifest_lying_about_size_refused(bundle_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _manifest(bundle_copy)
    entry = next(f for f in data["files"] if f["name"] == "artifacts/model.onnx")
    head = (bundle_copy / "artifacts" / "model.onnx").read_bytes()[:100]
    entry["size"], entry["sha256"] = 100, hashlib.sha256(head).hexdigest()  # the first 100 bytes' digest
    _write_manifest(bundle_copy, data)
    _refused(bundle_copy, "artifacts/model.onnx", capsys, "the manifest says 100")


def test_hashing_reads_at_most_the_declared_size_plus_one() -> None:
    class Endless(io.RawIOBase):
        """A stream that never ends, counting what was read from it."""

        read_total = 0

        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            assert size > 0, "an unbounded read"
            Endless.read_total += size
            return b"\0" * size

    with pytest.raises(BundleMismatchError, match="more than 10 bytes"):
        _hash_bounded(Endless(), 10, "big.bin")
    assert Endless.read_total == 11


def test_wrong_schema_refused(bundle_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _manifest(bundle_copy)
    data["schema"] = "rehead.bundle/2"
    _write_manifest(bundle_copy, data)
    _refused(bundle_copy, MANIFEST_FILE, capsys, "schema")


# --- tampering: archives ------------------------------------------------------------------------------


def _evil_tar(bundle_dir: Path, out: Path, evil: tarfile.TarInfo, data: bytes = b"") -> Path:
    with tarfile.open(out, "w") as tar:
        for path in sorted(bundle_dir.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=path.relative_to(bundle_dir).as_posix())
        tar.addfile(evil, io.BytesIO(data) if data else None)
    return out


def _escape_name() -> tuple[str, Path]:
    """A '../' member name and where extracting it into a temporary directory would land."""
    unique = f"rehead-escape-{uuid.uuid4().hex}.txt"
    return f"../{unique}", Path(tempfile.gettempdir()) / unique


def test_tar_member_leaving_the_bundle_refused_before_extraction(
    bundle_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name, landing = _escape_name()
    info = tarfile.TarInfo(name)
    info.size = 4
    archive = _evil_tar(bundle_dir, tmp_path / "evil.tar", info, b"evil")
    _refused(archive, name, capsys, "leaves the bundle")
    with pytest.raises(BundleMismatchError):
        open_bundle(archive)
    assert not landing.exists()
    assert main(["predict", str(archive), str(bundle_dir / "labels.txt")]) == 1


def test_tar_absolute_member_refused(bundle_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    info = tarfile.TarInfo("/tmp/rehead-absolute.txt")
    info.size = 4
    archive = _evil_tar(bundle_dir, tmp_path / "abs.tar", info, b"evil")
    _refused(archive, "/tmp/rehead-absolute.txt", capsys, "absolute")


@pytest.mark.parametrize("link", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_tar_link_members_refused(
    bundle_dir: Path, tmp_path: Path, link: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    info = tarfile.TarInfo("artifacts/link.onnx")
    info.type = link
    info.linkname = "/etc/passwd" if link == tarfile.SYMTYPE else "labels.txt"
    archive = _evil_tar(bundle_dir, tmp_path / "link.tar", info)
    _refused(archive, "artifacts/link.onnx", capsys, "link")


def _zip_of(bundle_dir: Path, out: Path, extra: zipfile.ZipInfo, data: bytes) -> Path:
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zf:
        for path in sorted(bundle_dir.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(bundle_dir).as_posix())
        zf.writestr(extra, data)
    return out


def test_zip_member_leaving_the_bundle_refused_before_extraction(
    bundle_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name, landing = _escape_name()
    archive = _zip_of(bundle_dir, tmp_path / "evil.zip", zipfile.ZipInfo(name), b"evil")
    _refused(archive, name, capsys, "leaves the bundle")
    with pytest.raises(BundleMismatchError):
        open_bundle(archive)
    assert not landing.exists()


def test_zip_symlink_member_refused(bundle_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    info = zipfile.ZipInfo("artifacts/link.onnx")
    info.external_attr = (0o120777 << 16)  # S_IFLNK: unzip would create a symlink to the data
    archive = _zip_of(bundle_dir, tmp_path / "link.zip", info, b"/etc/passwd")
    _refused(archive, "artifacts/link.onnx", capsys, "symlink")


def test_archive_with_changed_member_refused(
    bundle_zip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "changed.zip"
    with zipfile.ZipFile(bundle_zip) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "labels.txt":
                data = data.replace(b"0", b"O", 1)
            info.compress_type = zipfile.ZIP_STORED
            dst.writestr(info, data)
    _refused(out, "labels.txt", capsys, "sha256")


# --- package ------------------------------------------------------------------------------------------


def test_failing_artifact_refused_unless_forced(
    digits_model_dir: Path, onnx_bad_new_row: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bundle"
    with pytest.raises(GateFailedError, match=r"bad-row\.onnx") as info:
        package(digits_model_dir, [onnx_bad_new_row], out, latency=False, samples=8, batch_sizes=(4,))
    assert info.value.param == "force"
    assert not out.exists() and list(tmp_path.iterdir()) == []  # nothing written, no staging left
    code = main(["package", str(digits_model_dir), str(onnx_bad_new_row), "-o", str(out), "--no-latency",
                 "--samples", "8", "--batch-sizes", "4"])
    assert code == 1 and not out.exists()
    assert "--force" in capsys.readouterr().err


def test_forced_bundle_says_forced(forced_bundle: Path) -> None:
    manifest = verify(forced_bundle)
    assert manifest.forced
    by_file = {a.file: a for a in manifest.artifacts}
    bad, good = by_file["artifacts/bad-row.onnx"], by_file["artifacts/model.onnx"]
    assert bad.forced and not bad.passed and bad.certificate["parity_status"] == "fail"
    assert bad.certificate["failures"]
    assert good.passed and not good.forced
    assert _manifest(forced_bundle)["forced"] is True


def test_no_clobber_without_overwrite(
    digits_model_dir: Path, onnx_fp32: Path, validation_report: Path, tmp_path: Path
) -> None:
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(OutputExistsError):
        package(digits_model_dir, [onnx_fp32], out, report=validation_report)
    assert (out / "keep.txt").read_text() == "mine"
    package(digits_model_dir, [onnx_fp32], out, report=validation_report, overwrite=True)
    assert not (out / "keep.txt").exists()
    verify(out)


def test_report_of_other_weights_or_changed_file_refused(
    digits_model_dir: Path, onnx_fp32: Path, validation_report: Path, tmp_path: Path
) -> None:
    data = json.loads(validation_report.read_text())
    data["model"]["weights_sha256"] = "f" * 64
    other = tmp_path / "other.json"
    other.write_text(json.dumps(data))
    with pytest.raises(LineageError):
        package(digits_model_dir, [onnx_fp32], tmp_path / "a", report=other)
    data = json.loads(validation_report.read_text())
    data["artifacts"][0]["size_bytes"] += 1
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(data))
    with pytest.raises(Exception, match="changed after validation") as info:
        package(digits_model_dir, [onnx_fp32], tmp_path / "b", report=changed)
    assert getattr(info.value, "param", None) == "report"
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
