"""``rehead triton`` (a Triton model repository from a bundle) and ``rehead serve`` (a live Triton server)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from toolkit.cli._app import app
from toolkit.cli._parse import int_list


@app.command("triton")
def triton_command(
    bundle: Path = typer.Argument(..., metavar="BUNDLE", help="Bundle directory or archive (verified first)."),
    output: Path = typer.Option(..., "-o", "--output", help="Model repository folder (created if missing)."),
    name: str | None = typer.Option(None, "--name", help="Model name in Triton (default: the bundle's name)."),
    max_batch_size: int = typer.Option(
        8, "--max-batch-size", help="Triton's max_batch_size; 0 turns batching off (needed for a fixed batch)."
    ),
    preferred_batch_sizes: str | None = typer.Option(
        None, "--preferred-batch-sizes", help="Dynamic batcher's preferred sizes, e.g. 4,8."
    ),
    max_queue_delay_us: int = typer.Option(
        500, "--max-queue-delay-us", help="How long the batcher may wait to fill a batch (microseconds)."
    ),
    instances: int = typer.Option(1, "--instances", help="Model instances (instance group count)."),
    kind: str = typer.Option("cpu", "--kind", help="cpu (ONNX Runtime) | gpu (TensorRT engine when present)."),
    artifact: str | None = typer.Option(None, "--artifact", help="Artifact file to serve (default: by --kind)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing model of that name."),
) -> None:
    """Write BUNDLE as a Triton model: <name>/config.pbtxt, <name>/1/model.onnx or model.plan, labels.txt."""
    from toolkit.deploy.triton import triton_repository

    model = triton_repository(
        bundle,
        output,
        name=name,
        max_batch_size=max_batch_size,
        preferred_batch_sizes=int_list(preferred_batch_sizes, flag="--preferred-batch-sizes"),
        max_queue_delay_us=max_queue_delay_us,
        instances=instances,
        kind=kind,
        artifact=artifact,
        overwrite=overwrite,
    )
    typer.echo(f"wrote Triton model {model} (start: tritonserver --model-repository {model.parent})")


@app.command("serve")
def serve_command(
    bundle: Path = typer.Argument(..., metavar="BUNDLE", help="Bundle directory or archive (verified first)."),
    port: int = typer.Option(8000, "--port", help="HTTP/REST port."),
    grpc_port: int = typer.Option(8001, "--grpc-port", help="gRPC port."),
    metrics_port: int = typer.Option(8002, "--metrics-port", help="Prometheus metrics port."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)."),
    max_batch_size: int = typer.Option(8, "--max-batch-size", help="Largest batch the dynamic batcher forms."),
    max_queue_delay_us: int = typer.Option(
        500, "--max-queue-delay-us", help="How long the batcher may wait to fill a batch (microseconds)."
    ),
    model_name: str = typer.Option("rehead", "--model-name", help="Model name on the server."),
    backend: str | None = typer.Option(None, "--backend", help="tensorrt | onnxruntime | pt2 (default: best)."),
    device: str | None = typer.Option(None, "--device", help="cpu | cuda (default: the backend's best)."),
    top_k: int = typer.Option(5, "--top-k", help="Classes in the top_k_labels / top_k_scores outputs."),
) -> None:
    """Serve BUNDLE with a real Triton Inference Server (PyTriton) until SIGTERM or Ctrl-C: inputs
    'image_bytes' BYTES [N, 1] (JPEG/PNG files, preprocessed as rehead predict does) or 'images'
    float32 [N, C, H, W] (preprocessed); outputs 'logits', 'probabilities', 'top_k_labels', 'top_k_scores'."""
    from toolkit.deploy.serve import Endpoints, serve

    def ready(endpoints: Endpoints) -> None:
        typer.echo(endpoints.one_line())
        sys.stdout.flush()

    serve(
        bundle,
        host=host,
        port=port,
        grpc_port=grpc_port,
        metrics_port=metrics_port,
        max_batch_size=max_batch_size,
        max_queue_delay_us=max_queue_delay_us,
        model_name=model_name,
        backend=backend,
        device=device,
        top_k=top_k,
        on_ready=ready,
    )
    typer.echo("stopped")
