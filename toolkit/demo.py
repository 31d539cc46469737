"""``rehead demo``: every stage of rehead on the bundled digits, in one call, with no network.

1. pretrain a resnet18 (32x32 input) on digits 0-6 from random weights;
2. extend its head to all ten digits with a strategy;
3. fine-tune it with the two-phase policy (head only, then everything);
4. export ONNX fp32, ONNX INT8 (calibrated on digits), an AOTInductor ``.pt2`` and, with OpenVINO
   installed, both ONNX graphs as OpenVINO IRs;
5. validate parity (kept vs new classes) and latency of each artifact against eager;
6. write the HTML/JSON/JUnit report and return a summary table.

Every stage writes under one output folder and records, in ``demo-state.json``, a hash of its
recipe (settings plus the hashes of its inputs) and the sha256 of each file it wrote. A second
run reuses a stage whose recipe and files still match, and redoes it (and everything after it)
otherwise; ``fresh=True`` redoes everything. Like ``rehead validate``, this module orchestrates
stages: it may import converters and validation, and nothing in the toolkit base imports it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from toolkit import _atomic
from toolkit.errors import InvalidArgumentError
from toolkit.progress import Progress

STATE_FILE = "demo-state.json"
OLD_DIGITS = tuple(range(7))
ALL_DIGITS = tuple(range(10))
#: Chosen from benchmarks/results/head_strategies.json: imprint with 20 examples per new digit had
#: the best new-digit top-1 after the full two-phase budget (see the README's study section).
DEFAULT_STRATEGY = "imprint"
IMPRINT_SHOTS = 20


@dataclasses.dataclass(frozen=True)
class DemoSettings:
    """Budgets of the demo. ``quick`` shrinks them for CI: fewer epochs, samples and timing."""

    arch: str = "resnet18"
    input_size: int = 32
    pretrain_epochs: int = 5
    finetune_epochs: int = 6
    freeze_epochs: int = 1
    seed: int = 0
    calib_samples: int = 128
    validate_samples: int = 64
    batch_sizes: tuple[int, ...] = (1, 8)
    latency_duration_s: float = 1.0
    pt2: bool = True
    threads: int = 2

    @classmethod
    def quick(cls) -> DemoSettings:
        return cls(pretrain_epochs=2, finetune_epochs=2, calib_samples=32, validate_samples=16,
                   latency_duration_s=0.3)


@dataclasses.dataclass
class DemoResult:
    """Where everything went, the summary rows, and which stages were reused."""

    output: Path
    rows: list[dict[str, Any]]
    reused: list[str]
    report_dir: Path
    strategy: str
    status: str
    #: the bundle of the artifacts that passed, the Triton model repository made from it, and the
    #: live ``rehead serve`` round trip: ``{"status": "ok"|"skipped", "detail": ..., ...}``
    bundle: Path | None = None
    triton: Path | None = None
    serve: dict[str, Any] = dataclasses.field(default_factory=dict)


def _sha(path: Path) -> str:
    from toolkit.models.model_dir import sha256_file

    return sha256_file(path)


def _files(target: Path) -> list[Path]:
    return sorted(p for p in target.rglob("*") if p.is_file()) if target.is_dir() else [target]


class _Stages:
    """Recipe-hash caching of stage outputs in ``demo-state.json``."""

    def __init__(self, root: Path, fresh: bool, progress: Progress) -> None:
        self.root = root
        self.state_path = root / STATE_FILE
        self.fresh = fresh
        self.progress = progress
        self.reused: list[str] = []
        self.invalidated = False
        self.state: dict[str, Any] = {}
        if self.state_path.is_file() and not fresh:
            try:
                self.state = json.loads(self.state_path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError):
                self.say(f"ignoring unreadable {STATE_FILE}: every stage runs again")

    def say(self, text: str) -> None:
        """Print ``text`` after the demo's title (only when progress is enabled).

        Args:
            text: the message.
        """
        self.progress.message(f"{self.progress.title}: {text}")

    def outputs_hash(self, name: str) -> str:
        """The digest recorded for stage ``name``'s output ('' when there is none).

        Args:
            name: the stage's name.
        """
        return str(self.state.get(name, {}).get("digest", ""))

    def run(self, name: str, recipe: dict[str, Any], target: Path, build: Callable[[Path], None]) -> str:
        """Reuse ``target`` if its recipe and files match the record, else ``build(target)``.

        Args:
            name: the stage's name, its key in ``demo-state.json``.
            recipe: what changes the stage's output (its hash is recorded).
            target: the stage's output file or folder.
            build: writes the output at the path it is given.
        """
        key = hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode()).hexdigest()
        record = self.state.get(name)
        if not self.invalidated and record and record.get("recipe") == key and target.exists():
            files = {str(p.relative_to(self.root)): _sha(p) for p in _files(target)}
            if files == record.get("files"):
                self.reused.append(name)
                self.say(f"[{name}] reused {target.relative_to(self.root)} (recipe and sha256 match)")
                return str(record["digest"])
        self.invalidated = True  # every later stage depends on this one
        if target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        with self.progress.step(name):
            build(target)
        files = {str(p.relative_to(self.root)): _sha(p) for p in _files(target)}
        digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
        self.state[name] = {"recipe": key, "files": files, "digest": digest}
        _atomic.write_text(self.state_path, json.dumps(self.state, indent=2) + "\n")
        return digest


def run_demo(
    output: str | os.PathLike[str] = "rehead-demo",
    *,
    strategy: str | None = None,
    fresh: bool = False,
    settings: DemoSettings | None = None,
    progress: bool = False,
) -> DemoResult:
    """Run the whole pipeline on digits into ``output`` and return the summary.

    Raises ``GateFailedError`` (exit 1) at the end if an artifact failed parity.

    Args:
        output: the demo's folder (default ``rehead-demo``).
        strategy: the head strategy (default None: ``DEFAULT_STRATEGY``, the study's winner).
        fresh: ignore what a previous run left (default False: stages whose recipe matches are reused).
        settings: the demo's sizes, epochs and seeds (default None: ``DemoSettings()``).
        progress: report each stage and its time, and the stages' own progress, on stderr (default
            False: silent).
    """
    import torch

    from toolkit.heads.strategies import STRATEGIES

    settings = settings or DemoSettings()
    strategy = strategy or DEFAULT_STRATEGY
    if strategy not in STRATEGIES:
        raise InvalidArgumentError(
            f"unknown strategy '{strategy}'", hint=f"one of {', '.join(STRATEGIES)}", param="strategy"
        )
    root = Path(output)
    if root.exists() and not root.is_dir():
        raise InvalidArgumentError(f"'{root}' exists and is not a folder", hint="choose another output", param="output")
    root.mkdir(parents=True, exist_ok=True)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)  # the stages' timings and bit-identical reruns assume it
    try:
        return _run_stages(root, strategy, fresh, settings, progress)
    finally:
        torch.set_num_threads(previous_threads)


def _run_stages(root: Path, strategy: str, fresh: bool, s: DemoSettings, progress: bool) -> DemoResult:
    stages = _Stages(root, fresh, Progress("rehead demo", enabled=progress))
    pretrained, extended, tuned = root / "pretrained", root / "extended", root / "finetuned"
    artifacts, report_dir, summary_path = root / "artifacts", root / "report", root / "summary.json"
    # Each recipe names only what changes that stage's output, plus the digest of its input.
    d_pre = stages.run("pretrain", {"arch": s.arch, "size": s.input_size, "epochs": s.pretrain_epochs,
                                    "seed": s.seed}, pretrained, lambda t: _pretrain(t, s, progress))
    d_ext = stages.run("extend", {"strategy": strategy, "input": d_pre, "seed": s.seed + 1}, extended,
                       lambda t: _extend(pretrained, t, strategy, s))
    d_tune = stages.run("finetune", {"epochs": s.finetune_epochs, "freeze": s.freeze_epochs, "seed": s.seed,
                                     "input": d_ext}, tuned, lambda t: _finetune(extended, t, s, progress))
    d_art = stages.run("export", {"calib": s.calib_samples, "pt2": s.pt2, "openvino": _openvino_installed(),
                                  "input": d_tune}, artifacts,
                       lambda t: _export(tuned, t, s, progress))
    stages.run("validate", {"samples": s.validate_samples, "batch_sizes": s.batch_sizes, "threads": s.threads,
                            "duration": s.latency_duration_s, "input": d_art}, report_dir,
               lambda t: _validate(tuned, artifacts, t, summary_path, s, progress))
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    bundle, repository = root / "bundle", root / "triton"
    d_bundle = stages.run("package", {"input": stages.outputs_hash("validate"), "artifacts": d_art}, bundle,
                          lambda t: _package(tuned, artifacts, report_dir, t))
    stages.run("triton", {"input": d_bundle}, repository, lambda t: _triton(bundle, t))
    served = _serve_round_trip(bundle, progress=stages.progress)
    return DemoResult(root, summary["rows"], stages.reused, report_dir, strategy, summary["status"],
                      bundle=bundle, triton=repository, serve=served)


def _pretrain(target: Path, settings: DemoSettings, progress: bool) -> None:
    import warnings

    from toolkit.finetune import PRETRAIN_CONFIG, pretrain
    from toolkit.models.pretrained import RandomInitialisationWarning

    config = PRETRAIN_CONFIG.replace(epochs=settings.pretrain_epochs, seed=settings.seed, plot=False)
    with warnings.catch_warnings():
        # The demo pretrains on digits from a random backbone on purpose (it runs offline).
        warnings.simplefilter("ignore", RandomInitialisationWarning)
        pretrain(settings.arch, "digits", [str(d) for d in OLD_DIGITS], config, output=target,
                 input_size=settings.input_size, digits=OLD_DIGITS, progress=progress)
    shutil.rmtree(Path(f"{target}.ckpt"), ignore_errors=True)


def imprint_examples(prep: Any, digits: Sequence[int], shots: int, seed: int) -> dict[str, Any]:
    """``shots`` train-split images per digit in ``digits`` (a seeded draw), for ``imprint``.

    Args:
        prep: the model's preprocessing, applied to the images.
        digits: the digits to draw images of.
        shots: how many images per digit.
        seed: the draw's seed.
    """
    import torch

    from toolkit.data.digits import digits_tensors

    images, labels = digits_tensors("train", prep, digits)
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for d in digits:
        idx = torch.nonzero(labels == d).flatten()
        pick = idx[torch.randperm(len(idx), generator=gen)[:shots]]
        out[str(d)] = images[pick]
    return out


def _extend(source: Path, target: Path, strategy: str, settings: DemoSettings) -> None:
    from toolkit.extension import extend
    from toolkit.models.model_dir import read_config

    new = [d for d in ALL_DIGITS if d not in OLD_DIGITS]
    examples = (
        imprint_examples(read_config(source).preprocessing, new, IMPRINT_SHOTS, settings.seed)
        if strategy == "imprint" else None
    )
    # A seed other than pretraining's: with the same seed a fresh head would redraw the pretrained
    # head's initial rows (see benchmarks/head_strategies.py).
    extend(strategy=strategy, model_dir=source, num_classes=len(ALL_DIGITS),
           class_names=[str(d) for d in ALL_DIGITS], examples=examples, seed=settings.seed + 1, output=target)


def _finetune(source: Path, target: Path, settings: DemoSettings, progress: bool) -> None:
    from toolkit.finetune import FinetuneConfig, finetune

    config = FinetuneConfig(epochs=settings.finetune_epochs, freeze_epochs=settings.freeze_epochs,
                            seed=settings.seed, plot=True)
    finetune(source, "digits", config, output=target, progress=progress)
    shutil.rmtree(Path(f"{target}.ckpt"), ignore_errors=True)


def _export(model_dir: Path, target: Path, settings: DemoSettings, progress: bool) -> None:
    from converters import export_onnx, export_pt2

    with _atomic.output_dir(target, overwrite=True) as stage:
        export_onnx(model_dir, stage / "model.onnx", progress=progress)
        export_onnx(model_dir, stage / "model-int8.onnx", int8=True, calib="digits",
                    calib_samples=settings.calib_samples, progress=progress)
        if settings.pt2:
            export_pt2(model_dir, stage / "model.pt2", progress=progress)
        if _openvino_installed():  # the same two graphs as OpenVINO IRs (Intel CPUs, iGPUs, NPUs)
            from converters.openvino.export import export_openvino

            for name in ("model", "model-int8"):
                export_openvino(stage / f"{name}.onnx", stage / f"{name}.xml", model_dir=model_dir, progress=progress)


def _openvino_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


def _validate(model_dir: Path, artifacts: Path, target: Path, summary_path: Path, settings: DemoSettings,
              progress: bool) -> None:
    from validation import validate, write_reports
    from validation.latency import LatencySettings

    names = ("model.onnx", "model-int8.onnx", "model.xml", "model-int8.xml", "model.pt2")
    files = [artifacts / name for name in names if (artifacts / name).is_file()]
    report = validate(model_dir, [str(p) for p in files], data="digits", samples=settings.validate_samples,
                      batch_sizes=settings.batch_sizes, threads=settings.threads,
                      latency_settings=LatencySettings(warmup_s=0.2, min_duration_s=settings.latency_duration_s),
                      progress=progress)
    write_reports(report, report_dir=target, overwrite=True)
    rows = _summary_rows(model_dir, files, report, settings)
    _atomic.write_text(summary_path, json.dumps({"status": report.status, "rows": rows}, indent=2) + "\n")


def _package(model_dir: Path, artifacts: Path, report_dir: Path, target: Path) -> None:
    """A bundle of the artifacts that passed validation, certified by the report just written."""
    from toolkit.deploy.bundle import package

    report = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))
    passed = [a["path"] for a in report["artifacts"] if a.get("path") and a.get("parity_status") == "pass"]
    package(model_dir, passed, target, report=report_dir / "report.json", overwrite=True)


def _triton(bundle: Path, target: Path) -> None:
    from toolkit.deploy.triton import triton_repository

    triton_repository(bundle, target, name="digits", overwrite=True)


def _free_ports(count: int) -> list[int]:
    import socket

    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _png_digits(n: int) -> list[bytes]:
    """The first ``n`` test digits as PNG files' bytes (what a client of ``rehead serve`` sends)."""
    import io

    from PIL import Image

    from toolkit.data.digits import digits_uint8

    files = []
    for pixels in digits_uint8("test")[0][:n]:
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        files.append(buffer.getvalue())
    return files


def _serve_round_trip(bundle: Path, *, progress: Progress) -> dict[str, Any]:
    """Start ``rehead serve``'s Triton server on loopback, send 8 digits over HTTP twice, as
    preprocessed tensors and as PNG files, and compare both answers with the bundle's Predictor.
    Skipped, saying why and how to get it, when the serve extra or a usable libpython is missing
    (exit-3 conditions of ``rehead serve``)."""
    import io

    import numpy as np
    from PIL import Image

    from toolkit.data import load_samples
    from toolkit.errors import MissingDependencyError, ReheadError

    try:
        import tritonclient.http as http

        from toolkit.deploy.serve import Server
    except ImportError as exc:
        progress.message(f"live serve skipped: {exc}; pip install '.[serve]'")
        return {"status": "skipped", "detail": f"{exc}; pip install '.[serve]'"}
    http_port, grpc_port, metrics_port = _free_ports(3)
    try:
        with Server(bundle, http_port=http_port, grpc_port=grpc_port, metrics_port=metrics_port,
                    max_batch_size=8) as server:
            images = load_samples("digits", server.predictor.preprocessing, split="test", n=8)[0].numpy()
            client = http.InferenceServerClient(server.endpoints.http)
            request = http.InferInput("images", list(images.shape), "FP32")
            request.set_data_from_numpy(np.ascontiguousarray(images, dtype=np.float32))
            answer = client.infer(server.model_name, [request]).as_numpy("logits")
            expected = server.predictor.logits(images)
            pngs = _png_digits(8)
            encoded = http.InferInput("image_bytes", [len(pngs), 1], "BYTES")
            encoded.set_data_from_numpy(np.array([[png] for png in pngs], dtype=object))
            from_png = client.infer(server.model_name, [encoded])
            decoded = [Image.open(io.BytesIO(png)) for png in pngs]
            png_expected = server.predictor.logits(server.predictor.preprocess(decoded))
            png_diff = float(np.max(np.abs(from_png.as_numpy("logits").astype(np.float64) - png_expected)))
            top_labels = [row[0].decode() for row in from_png.as_numpy("top_k_labels")]
            client.close()
    except (MissingDependencyError, ReheadError) as exc:
        if getattr(exc, "exit_code", 0) != 3:
            raise
        progress.message(f"live serve skipped: {exc.one_line()}")
        return {"status": "skipped", "detail": exc.one_line()}
    diff = float(np.max(np.abs(np.asarray(answer, dtype=np.float64) - expected)))
    top1 = float(np.mean(np.asarray(answer).argmax(1) == expected.argmax(1)))
    if not max(diff, png_diff) <= 1e-5:
        from toolkit.errors import InternalError

        raise InternalError(
            f"the live server answered differently from the bundle's Predictor "
            f"(max |diff| {diff:.3g} for tensors, {png_diff:.3g} for PNG files)"
        )
    progress.message(
        f"live serve round trip: 8 digits over HTTP as tensors and as PNG files, max |diff| vs the Predictor "
        f"{max(diff, png_diff):.2g}; top-1 of the PNGs: {' '.join(top_labels)}"
    )
    return {"status": "ok", "endpoint": server.endpoints.http, "images": 8, "max_abs_diff": max(diff, png_diff),
            "top1_agreement_all_classes": top1, "png_top1_labels": top_labels}


def _summary_rows(model_dir: Path, files: list[Path], report: Any, settings: DemoSettings) -> list[dict[str, Any]]:
    """One row per artifact (eager first): size, test top-1 (all / old / new digits), parity, p50, speedup."""
    import numpy as np

    from converters import artifact
    from toolkit.data.digits import digits_tensors
    from toolkit.models.model_dir import load_model_dir
    from validation import open_runner
    from validation.report import speedup_text

    loaded = load_model_dir(model_dir)
    images, labels = digits_tensors("test", loaded.config.preprocessing)
    x, y = images.numpy(), labels.numpy()
    bs = settings.batch_sizes[0]
    by_name = {a.path: a for a in report.artifacts}
    rows = []
    for name, path in [("eager", None), *[(p.name, p) for p in files]]:
        with open_runner(
            str(path) if path else "eager:fp32", module=loaded.module, threads=settings.threads,
            prep=loaded.config.preprocessing,
        ) as runner:
            preds = np.concatenate([runner.run(x[i : i + 64])["logits"].argmax(1) for i in range(0, len(x), 64)])
        old = np.isin(y, OLD_DIGITS)
        result = by_name.get(str(path)) if path else None
        latency = result.latency.get(bs) if result else report.reference_latency.get(bs)
        rows.append({
            "artifact": name,
            "size_bytes": artifact.size(path) if path else (model_dir / "model.safetensors").stat().st_size,
            "test_top1": float((preds == y).mean()),
            "test_top1_old": float((preds[old] == y[old]).mean()),
            "test_top1_new": float((preds[~old] == y[~old]).mean()),
            "parity": result.parity_status if result else "reference",
            "status": result.status if result else "reference",
            "p50_ms": latency.p50_ms if latency else None,
            "speedup": (result.speedup.get(bs) if result else 1.0),
            # the speed-up as the reports show it: marked, with its reason, when too noisy to decide
            "speedup_text": speedup_text(report, result, bs) if result else "1.00×",
            "batch_size": bs,
        })
    return rows


def format_rows(rows: Sequence[dict[str, Any]]) -> list[list[str]]:
    """Summary rows as table cells (strings) for the console.

    Args:
        rows: the summary's rows (``DemoResult.rows``).
    """
    cells = []
    for r in rows:
        cells.append([
            r["artifact"],
            f"{r['size_bytes'] / 2**20:.1f} MiB",
            f"{100 * r['test_top1']:.1f}% ({100 * r['test_top1_old']:.1f} / {100 * r['test_top1_new']:.1f})",
            r["parity"],
            f"{r['p50_ms']:.2f}" if r["p50_ms"] is not None else "-",
            r.get("speedup_text") or (f"{r['speedup']:.2f}×" if r.get("speedup") is not None else "-"),
        ])
    return cells
