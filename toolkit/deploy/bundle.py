"""Packaging: a validated model as a bundle, so that what runs on a device is provably what was validated.

``package`` validates the artifacts (or reads a JSON report of ``validate``), keeps those that
passed (all with ``force``, the manifest then says so) and publishes the bundle directory or
archive atomically. What a bundle holds and its records are in ``toolkit.deploy.manifest``; how
it is checked before it runs in ``toolkit.deploy.verification``; the report as packaging reads
it and the parity certificate each artifact gets in ``toolkit.deploy.certificate``.

Packaging alone needs the validation stack (imported inside ``package``): a bundle is verified
and run without it.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import platform
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from toolkit import _atomic
from toolkit._text import listing
from toolkit.deploy.certificate import Certificate, ValidationRecord, agreement_text, certificate, load_report
from toolkit.deploy.manifest import (
    ARTIFACTS_DIR,
    LABELS_FILE,
    MANIFEST_FILE,
    BundleArtifact,
    BundleFile,
    Manifest,
    _companions,
    check_manifest,
    check_name,
    kind_of,
)
from toolkit.errors import ArtifactError, GateFailedError, InvalidArgumentError, LineageError
from toolkit.models.model_dir import CONFIG_FILE, LoadedModel, load_model_dir, sha256_file
from toolkit.progress import Progress

#: ``agreement_text``, ``certificate``, the records and ``_companions`` stay importable from here,
#: as before this module was split into manifest, verification and certificate
__all__ = ["ARCHIVES", "BundleArtifact", "BundleFile", "Manifest", "agreement_text", "certificate", "package"]

ARCHIVES = ("tar", "zip")


# --- the report ----------------------------------------------------------------------------------------


def _read_report(path: Path, loaded: LoadedModel, artifacts: Sequence[Path]) -> ValidationRecord:
    """A JSON report of ``validate`` for this model and these artifact files, holding their
    entries in their order, or a refusal."""
    from converters.artifact import size as artifact_size
    from validation.lineage import check_lineage

    report = load_report(path)
    recorded, expected = report.weights_sha256, loaded.config.weights_sha256
    if recorded != expected:
        raise LineageError(
            f"report '{path.name}' validated weights {str(recorded)[:12]}, "
            f"the model directory holds {str(expected)[:12]}",
            hint="validate this model directory's artifacts again, or give the report of this model",
            param="report",
        )
    created = report.created_at
    chosen = []
    for artifact in artifacts:
        entry, same_path = report.match(artifact)
        if entry is None:
            raise InvalidArgumentError(
                f"report '{path.name}' has no result for '{artifact.name}'",
                hint="validate every artifact you package, in one run",
                param="report",
            )
        check_lineage(loaded.config, artifact)
        if entry.sha256 is not None and entry.sha256 != sha256_file(artifact):
            raise InvalidArgumentError(
                f"'{artifact.name}' differs from the file the report validated (sha256)", param="report"
            )
        size = artifact_size(artifact)
        if entry.size_bytes != size:
            raise InvalidArgumentError(
                f"'{artifact.name}' has {size} bytes, the file the report validated had "
                f"{entry.size_bytes}: it changed after validation",
                hint="validate the artifact again",
                param="report",
            )
        # reports record sizes, not hashes: a same-size edit of the validated file shows in its mtime
        if same_path and created is not None and artifact.stat().st_mtime > created + 1:
            raise InvalidArgumentError(
                f"'{artifact.name}' was modified after the report was written",
                hint="validate it again",
                param="report",
            )
        chosen.append(entry)
    return dataclasses.replace(report, artifacts=tuple(chosen))


def _failed(paths: Sequence[Path], report: ValidationRecord, *, force: bool) -> list[str]:
    """The names of the artifacts that did not pass; without ``force``, ``GateFailedError`` (exit 1)
    naming them and the first one's failure instead."""
    failed = [p.name for p, e in zip(paths, report.artifacts, strict=True) if not e.passed]
    if failed and not force:
        first = next(e for e in report.artifacts if not e.passed)
        raise GateFailedError(
            f"not packaging {listing(failed)}: validation "
            f"{'did not pass' if first.parity is not None else 'has no parity result'} ({first.reason})",
            hint="fix or re-export the artifact, leave it out, or package it anyway with force "
            "(the manifest then says forced)",
            param="force",
        )
    return failed


# --- package -------------------------------------------------------------------------------------------


def _check_artifacts(artifacts: Sequence[str | os.PathLike[str]]) -> list[Path]:
    if isinstance(artifacts, (str, os.PathLike)) or not artifacts:
        raise InvalidArgumentError(
            "give the artifacts to package as a list of paths", hint="artifacts=['model.onnx']", param="artifacts"
        )
    paths = [Path(a) for a in artifacts]
    seen: dict[str, Path] = {}
    for path in paths:
        if kind_of(path) is None:
            from converters import artifact

            raise InvalidArgumentError(
                f"cannot package '{path.name}': a bundle holds {', '.join(artifact.suffixes())} artifacts",
                param="artifacts",
            )
        if not path.is_file():
            raise ArtifactError(f"artifact '{path}' does not exist", hint="check the path or run 'rehead export'")
        if path.name in seen:
            raise InvalidArgumentError(
                f"two artifacts are named '{path.name}' ({seen[path.name]} and {path})",
                hint="rename one: the bundle keeps artifacts side by side under artifacts/",
                param="artifacts",
            )
        seen[path.name] = path
    return paths


def _environment(report_env: Mapping[str, Any]) -> dict[str, Any]:
    from toolkit import __version__

    return {
        "validation": dict(report_env),
        "package": {
            "rehead": __version__,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "created": _now(),
        },
    }


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def package(
    model_dir: str | os.PathLike[str],
    artifacts: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    report: str | os.PathLike[str] | None = None,
    archive: str | None = None,
    force: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    device: str = "cpu",
    data: str | os.PathLike[str] = "random",
    samples: int = 32,
    batch_sizes: Sequence[int] = (1, 8),
    preset: str | None = None,
    latency: bool = True,
    latency_settings: Any = None,
    threads: int | None = None,
) -> Manifest:
    """Package validated artifacts of ``model_dir`` into a bundle at ``output``; returns its manifest.

    Args:
        model_dir: the model directory the artifacts were exported from.
        artifacts: ``.onnx`` / ``.pt2`` / ``.engine`` / ``.plan`` files (with their external data
            or sidecar beside them).
        output: the bundle directory to write, or with ``archive`` the archive file.
        report: a JSON report of ``validate`` (``rehead validate --json``) for these artifacts of
            this model, instead of validating now; refused when it validated other weights or a
            file that changed since.
        archive: ``tar`` | ``zip``: write one archive file instead of a directory.
        force: package artifacts that failed validation too (the manifest says ``forced``).
        overwrite: replace an existing ``output``.
        progress: print progress on stderr (default False: silent).
        device: where to validate (default ``cpu``).
        data: the validation inputs (default ``random``).
        samples: how many inputs (default 32).
        batch_sizes: the batch sizes to check (default 1, 8).
        preset: the tolerance preset (default None: from each artifact's precision).
        latency: measure latency (default True).
        latency_settings: warm-up, run count and noise bound of each latency measurement.
        threads: intra-op threads (default None: PyTorch's current setting).

        The last eight are passed to ``validation.suite.validate`` when no ``report`` is given.

    Raises ``GateFailedError`` (exit 1) when an artifact failed and ``force`` is False; nothing is
    written then. The bundle (or archive) appears complete or not at all.
    """
    if archive is not None and archive not in ARCHIVES:
        raise InvalidArgumentError(f"archive must be tar or zip, not {archive!r}", param="archive")
    out = _atomic.check_output(output, overwrite=overwrite)
    paths = _check_artifacts(artifacts)
    for path in paths:  # an engine that does not match its sidecar, unsafe external data: before anything runs
        _companions(path)
    loaded = load_model_dir(model_dir)
    if report is not None:
        results = _read_report(Path(report), loaded, paths)
        source = {"source": "report", "report": str(report), "report_sha256": sha256_file(report)}
    else:
        from validation.suite import validate

        results = ValidationRecord.from_json(
            validate(
                loaded,
                [str(p) for p in paths],
                data=data if isinstance(data, str) else os.fspath(data),
                samples=samples,
                batch_sizes=batch_sizes,
                device=device,
                preset=preset,
                latency=latency,
                head_latency=False,
                latency_settings=latency_settings,
                localise=False,  # a diagnosis of a failure, not part of the certificate: rehead validate gives it
                threads=threads,
                progress=progress,
            ).to_json()
        )
        source = {"source": "run"}
    failed = _failed(paths, results, force=force)
    with Progress("packaging", total=len(paths) + 1, enabled=progress) as bar:
        if archive is None:
            with _atomic.output_dir(out, overwrite=overwrite) as stage:
                return _write_bundle(stage, loaded, paths, results, source, failed, bar)
        stage = _atomic.staging_dir(out)
        try:
            manifest = _write_bundle(stage, loaded, paths, results, source, failed, bar)
            _atomic.write_with(out, lambda tmp: _write_archive(stage, tmp, archive), overwrite=overwrite)
        except Exception as exc:
            _atomic.raise_if_out_of_room(exc, out)
            raise
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    return manifest


def _write_bundle(
    stage: Path,
    loaded: LoadedModel,
    paths: Sequence[Path],
    report: ValidationRecord,
    source: Mapping[str, Any],
    failed: Sequence[str],
    bar: Progress,
) -> Manifest:
    """Copy the artifacts, their companions, config.json and labels.txt into ``stage`` and write
    the manifest there last."""
    config = loaded.config
    (stage / ARTIFACTS_DIR).mkdir()
    copied: dict[str, str] = {}  # bundle name -> sha256 (two ONNX files may share one external file)
    records = []
    for path, entry in zip(paths, report.artifacts, strict=True):
        with bar.step(f"copy {path.name}"):
            companions = _copy_artifact(stage, path, copied)
            records.append(
                BundleArtifact(
                    file=f"{ARTIFACTS_DIR}/{path.name}",
                    kind=str(kind_of(path)),
                    precision=entry.precision,
                    passed=entry.passed,
                    forced=path.name in failed,
                    certificate=Certificate.of(entry, report).to_json(),
                    latency=entry.latency_summary(),
                    companions=tuple(companions),
                )
            )
    shutil.copyfile(loaded.path / CONFIG_FILE, stage / CONFIG_FILE)
    (stage / LABELS_FILE).write_text("".join(f"{name}\n" for name in config.class_names), encoding="utf-8")
    files = []
    for item in sorted(p for p in stage.rglob("*") if p.is_file()):
        name = item.relative_to(stage).as_posix()
        files.append(BundleFile(name, sha256_file(item), item.stat().st_size))
    manifest = Manifest(
        created=_now(),
        files=tuple(files),
        class_names=tuple(config.class_names),
        preprocessing=config.preprocessing.to_json(),
        head_spec=config.head.to_json(),
        artifacts=tuple(records),
        environment=_environment(report.environment),
        forced=bool(failed),
        model={"arch": config.arch, "num_classes": config.num_classes, "weights_sha256": config.weights_sha256},
        validation={**source, "created": report.created, "settings": report.settings, "inputs": report.inputs},
    )
    check_manifest(manifest)
    (stage / MANIFEST_FILE).write_text(manifest.dumps(), encoding="utf-8")
    bar.advance("manifest")
    return manifest


def _copy_artifact(stage: Path, path: Path, copied: dict[str, str]) -> list[str]:
    """Copy an artifact and its companions under ``artifacts/`` in ``stage``; returns the
    companions' bundle names. ``copied`` (bundle name -> sha256) lets two artifacts share a
    companion only when it is the same file."""
    companions = []
    for source_path, rel in [(path, path.name), *_companions(path)]:
        name = f"{ARTIFACTS_DIR}/{rel}"
        check_name(name)
        digest = sha256_file(source_path)
        if name in copied:
            if copied[name] != digest:
                raise InvalidArgumentError(
                    f"two artifacts need different files named '{rel}'",
                    hint="export them into separate folders with their own external data names",
                    param="artifacts",
                )
            continue
        copied[name] = digest
        shutil.copyfile(source_path, stage / name)
        if source_path != path:
            companions.append(name)
    return companions


def _write_archive(stage: Path, target: Path, kind: str) -> None:
    """The staged bundle as an archive at ``target``: regular files only, names relative, sorted,
    owner and time fixed so that the same bundle gives the same bytes (given the same manifest)."""
    names = sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*") if p.is_file())
    if kind == "tar":
        with tarfile.open(target, "w", format=tarfile.PAX_FORMAT) as tar:
            for name in names:
                info = tar.gettarinfo(str(stage / name), arcname=name)
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mtime = 0
                info.mode = 0o644
                with open(stage / name, "rb") as handle:
                    tar.addfile(info, handle)
    else:
        # weights barely compress: the fastest deflate level loses almost nothing
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
            for name in names:
                zinfo = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                zinfo.external_attr = (stat.S_IFREG | 0o644) << 16
                zinfo.compress_type = zipfile.ZIP_DEFLATED
                zinfo._compresslevel = 1  # type: ignore[attr-defined]  # ZipInfo carries no public level
                with open(stage / name, "rb") as src, zf.open(zinfo, "w") as dst:
                    shutil.copyfileobj(src, dst)
