"""``rehead package``, ``rehead verify`` and ``rehead predict``: flags copied into ``toolkit.deploy``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from toolkit.cli._app import app
from toolkit.cli._parse import int_list


@app.command()
def package(
    model_dir: Path = typer.Argument(..., metavar="MODEL_DIR", help="Model directory the artifacts came from."),
    artifacts: list[Path] = typer.Argument(
        ..., metavar="ARTIFACT", help="Artifacts to package (.onnx, .pt2, .engine/.plan, with their sidecars)."
    ),
    output: Path = typer.Option(..., "-o", "--output", help="Bundle directory (or archive file) to write."),
    archive: str | None = typer.Option(None, "--archive", help="Write one archive instead: tar | zip."),
    report: Path | None = typer.Option(
        None, "--report", help="JSON report of 'rehead validate --json' for these artifacts (default: validate now)."
    ),
    force: bool = typer.Option(
        False, "--force", help="Package artifacts that failed validation (the manifest says so)."
    ),
    data: str = typer.Option("random", "--data", help="Validation inputs: random | digits | DIR | FILE.npz."),
    samples: int = typer.Option(32, "--samples", help="Number of parity inputs."),
    batch_sizes: str = typer.Option("1,8", "--batch-sizes", help="Batch sizes to validate, e.g. 1,8."),
    device: str = typer.Option("cpu", "--device", help="Validation device: cpu | cuda."),
    no_latency: bool = typer.Option(False, "--no-latency", help="Validate parity only (no latency summary)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
) -> None:
    """Validate ARTIFACTs of MODEL_DIR and package those that passed, with labels.txt, config.json and a
    manifest (sha256 of every file, parity certificates, latency). Exit 1 when one failed (unless --force)."""
    from toolkit.deploy.bundle import package as run_package
    from toolkit.deploy.certificate import agreement_text

    manifest = run_package(
        model_dir,
        artifacts,
        output,
        report=report,
        archive=archive,
        force=force,
        overwrite=overwrite,
        progress=True,
        device=device,
        data=data,
        samples=samples,
        batch_sizes=int_list(batch_sizes, flag="--batch-sizes") or [1],
        latency=not no_latency,
    )
    for artifact in manifest.artifacts:
        cert = artifact.certificate
        state = "FORCED (failed validation)" if artifact.forced else "passed"
        typer.echo(
            f"{artifact.file}: {artifact.kind} {artifact.precision}, {state}, "
            f"{agreement_text(cert)}; max abs error, all classes: {cert.get('max_abs')}"
        )
    typer.echo(f"wrote bundle {output} ({len(manifest.files) + 1} files, {len(manifest.class_names)} classes)")


@app.command()
def verify(
    bundle: Path = typer.Argument(..., metavar="BUNDLE", help="Bundle directory or .tar/.zip archive."),
    manifest_sha256: str | None = typer.Option(
        None, "--sha256", help="Refuse the bundle unless manifest.json has this sha256 (as printed here before)."
    ),
) -> None:
    """Check BUNDLE against its manifest: schema, sha256 and size of every file, no symlinks, no path
    leaving the bundle, nothing extra or missing. Exit 1 naming the file on any mismatch."""
    from toolkit.deploy.verification import manifest_digest
    from toolkit.deploy.verification import verify as run_verify

    manifest = run_verify(bundle, manifest_sha256=manifest_sha256)
    forced = " (holds FORCED artifacts that failed validation)" if manifest.forced else ""
    typer.echo(f"ok: {bundle}: {len(manifest.files) + 1} files match {manifest.schema}{forced}")
    typer.echo(f"manifest sha256 {manifest_digest(bundle)}")


@app.command()
def predict(
    bundle: Path = typer.Argument(..., metavar="BUNDLE", help="Bundle directory or .tar/.zip archive."),
    images: list[Path] = typer.Argument(..., metavar="IMAGE", help="Image files."),
    top_k: int = typer.Option(5, "--top-k", help="How many classes to print per image."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
    backend: str | None = typer.Option(
        None, "--backend", help="tensorrt | onnxruntime | openvino | pt2 (default: the best this machine runs)."
    ),
    device: str | None = typer.Option(None, "--device", help="cpu | cuda (default: the GPU when usable)."),
) -> None:
    """Verify BUNDLE, then print the top-k classes of each IMAGE with their probabilities."""
    from toolkit.deploy.predictor import Predictor

    with Predictor.from_bundle(bundle, backend=backend, device=device) as predictor:
        results = predictor.predict([str(p) for p in images], top_k=top_k)
        if as_json:
            payload = {
                "bundle": str(bundle),
                "backend": predictor.backend,
                "device": predictor.device,
                "artifact": predictor.entry.file,
                "why": list(predictor.notes),
                "predictions": [
                    {"image": str(path), "top_k": [{"label": label, "probability": prob} for label, prob in top]}
                    for path, top in zip(images, results, strict=True)
                ],
            }
            typer.echo(json.dumps(payload, indent=2))
            return
        typer.echo(f"{predictor.entry.file} on {predictor.backend} ({predictor.device})")
        for note in predictor.notes:  # why this artifact and runtime (a CPU runtime chosen by timing says how)
            typer.echo(f"  {note}", err=True)
        for path, top in zip(images, results, strict=True):
            typer.echo(f"{path}: " + ", ".join(f"{label} {prob:.4f}" for label, prob in top))
