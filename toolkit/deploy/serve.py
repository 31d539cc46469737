"""A live Triton Inference Server for a bundle, through PyTriton: ``serve`` and the ``Server`` context.

PyTriton runs the real ``tritonserver`` binary (shipped in the ``nvidia-pytriton`` wheel) with a
Python-backend model whose stub process hands each dynamic batch back to this process, where the
bundle's ``Predictor.logits`` runs it. Inputs: ``images`` float32 [N, C, H, W] (preprocessed) or
``image_bytes`` BYTES [N, 1] (encoded image files, preprocessed here as ``rehead predict`` does);
outputs ``logits``, ``probabilities`` and the top-k class names and scores (``_serve_io``).

Readiness: the model is written into PyTriton's local model store before tritonserver starts, so
Triton loads it while it starts and ``/v2/health/ready`` (strict readiness) answers 200 only once
the model is loaded; with PyTriton's default (the model loaded through the API after the server
is up) the server said ready while the model was still unknown. tritonserver's console lines pass
through ``_console.ConsoleFilter``, which drops what is noise on a CPU host.

Before anything starts, ``_libpython.check_libpython`` makes sure PyTriton's Python-backend stub
will load this interpreter's own libpython (``MissingDependencyError``, exit 3, when it would not).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import threading
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import numpy as np

from toolkit._args import positive_int
from toolkit.deploy import _serve_io
from toolkit.deploy._console import ConsoleFilter
from toolkit.deploy._libpython import LibpythonCheck, check_libpython, library_version, stub_path
from toolkit.errors import BadInputError, InternalError, InvalidArgumentError

DEFAULT_HTTP_PORT = 8000
DEFAULT_GRPC_PORT = 8001
DEFAULT_METRICS_PORT = 8002
#: how long the dynamic batcher may hold a request to fill a batch, in microseconds
DEFAULT_QUEUE_DELAY_US = 500
#: seconds Triton waits for in-flight requests when it stops
EXIT_TIMEOUT_S = 3


# --- the server -----------------------------------------------------------------------------------


class RequestError(ValueError):
    """A request the served model cannot run (undecodable image bytes, both inputs or neither):
    what the client reads as the error's last line."""


@dataclasses.dataclass(frozen=True)
class Endpoints:
    """Where the server listens: ``http`` and ``grpc`` as host:port, ``metrics`` as a URL; ``model``: its name."""

    model: str
    http: str
    grpc: str
    metrics: str

    def one_line(self) -> str:
        return (
            f"serving model '{self.model}' on http://{self.http} (HTTP/REST), {self.grpc} (gRPC), "
            f"metrics {self.metrics}"
        )


def _port(value: object, name: str) -> int:
    port = positive_int(value, name, example="8000")
    if port > 65535:
        raise InvalidArgumentError(f"{name} must be at most 65535, got {port}", param=name)
    return port


def _check_free(host: str, port: int, name: str) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise InvalidArgumentError(
                f"cannot listen on {host}:{port} ({exc.strerror})",
                hint="choose a free port (or stop what holds it)",
                param=name,
            ) from exc


class Server:
    """A running Triton server for one bundle; ``with Server(bundle, ...) as server:``.

    Entering runs the preflight (``check_libpython``), opens the bundle's ``Predictor``, starts
    Triton and waits until the model is ready; leaving stops Triton and closes the predictor.
    ``batch_sizes`` counts the batch sizes the model was called with (dynamic batching at work).
    Server logs go to ``log_file`` (a temporary file unless given), not to the console; what
    tritonserver prints outside its log goes to ``console`` (default: this process's stderr) less
    the lines that are noise on a CPU host (``_console``). ``top_k``: how many classes the
    ``top_k_labels``/``top_k_scores`` outputs hold (capped at the number of classes).
    """

    def __init__(
        self,
        bundle: str | os.PathLike[str],
        *,
        host: str = "127.0.0.1",
        http_port: int = DEFAULT_HTTP_PORT,
        grpc_port: int = DEFAULT_GRPC_PORT,
        metrics_port: int = DEFAULT_METRICS_PORT,
        max_batch_size: int = 8,
        max_queue_delay_us: int = DEFAULT_QUEUE_DELAY_US,
        model_name: str = "rehead",
        backend: str | None = None,
        device: str | None = None,
        log_file: str | os.PathLike[str] | None = None,
        top_k: int = _serve_io.DEFAULT_TOP_K,
        console: Callable[[str], None] | None = None,
    ) -> None:
        self.bundle = bundle
        self.host = host
        self.ports = {
            "port": _port(http_port, "port"),
            "grpc_port": _port(grpc_port, "grpc_port"),
            "metrics_port": _port(metrics_port, "metrics_port"),
        }
        if len(set(self.ports.values())) != 3:
            raise InvalidArgumentError(
                f"the HTTP, gRPC and metrics ports must differ, got {sorted(self.ports.values())}", param="grpc_port"
            )
        self.max_batch_size = positive_int(max_batch_size, "max_batch_size", example="8")
        if isinstance(max_queue_delay_us, bool) or not isinstance(max_queue_delay_us, int) or max_queue_delay_us < 0:
            raise InvalidArgumentError(
                f"max_queue_delay_us must be an integer ≥ 0, got {max_queue_delay_us!r}", param="max_queue_delay_us"
            )
        self.max_queue_delay_us = max_queue_delay_us
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", model_name):
            raise InvalidArgumentError(f"'{model_name}' is not a usable model name", param="model_name")
        self.model_name = model_name
        self.backend = backend
        self.device = device
        self.log_file = Path(log_file) if log_file is not None else None
        self.top_k = positive_int(top_k, "top_k", example="5")
        self.console = console if console is not None else _to_stderr
        self.batch_sizes: Counter[int] = Counter()
        self.endpoints = Endpoints(
            model_name,
            f"{host}:{self.ports['port']}",
            f"{host}:{self.ports['grpc_port']}",
            f"http://{host}:{self.ports['metrics_port']}/metrics",
        )
        self._lock = threading.Lock()
        self._stack = contextlib.ExitStack()
        self._triton: Any = None
        self.predictor: Any = None

    def __enter__(self) -> Server:
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stack.close()

    def _start(self) -> None:
        check = check_libpython()
        for name, port in self.ports.items():
            _check_free(self.host, port, name)
        from toolkit.deploy.predictor import Predictor

        self.predictor = self._stack.enter_context(
            Predictor.from_bundle(self.bundle, backend=self.backend, device=self.device, max_batch=self.max_batch_size)
        )
        triton_mod: Any = _require("pytriton.triton")
        config_mod: Any = _require("pytriton.model_config")
        if self.log_file is None:
            folder = Path(tempfile.mkdtemp(prefix="rehead-serve-"))
            self._stack.callback(shutil.rmtree, folder, True)
            self.log_file = folder / "tritonserver.log"
        self._stack.enter_context(_environment("LD_LIBRARY_PATH", check.ld_library_path))
        self._stack.enter_context(_quiet_loggers())
        on_gpu = str(self.predictor.device).startswith("cuda")
        config = triton_mod.TritonConfig(
            http_address=self.host,
            http_port=self.ports["port"],
            grpc_address=self.host,
            grpc_port=self.ports["grpc_port"],
            metrics_address=self.host,
            metrics_port=self.ports["metrics_port"],
            log_file=self.log_file,
            log_verbose=0,
            exit_timeout_secs=EXIT_TIMEOUT_S,
            # without a GPU, GPU metrics only print "Failed to initialize NVML"
            allow_gpu_metrics=on_gpu,
            strict_readiness=True,
        )
        channels, height, width = self.predictor.input_shape
        classes = len(self.predictor.class_names)
        k = min(self.top_k, classes)
        # the model goes into the local store before the server starts: ready means loaded
        policy = triton_mod.TritonLifecyclePolicy(launch_triton_on_startup=True, local_model_store=True)
        triton = triton_mod.Triton(config=config, triton_lifecycle_policy=policy)
        self._stack.callback(triton.stop)
        console = ConsoleFilter(self.console, cpu=not on_gpu)
        self._stack.callback(console.close)
        _route_console(triton, console)
        triton.bind(
            model_name=self.model_name,
            infer_func=self._infer,
            inputs=[
                config_mod.Tensor(
                    name=_serve_io.TENSOR_INPUT, dtype=np.float32, shape=(channels, height, width), optional=True
                ),
                config_mod.Tensor(name=_serve_io.BYTES_INPUT, dtype=np.bytes_, shape=(1,), optional=True),
            ],
            outputs=[
                config_mod.Tensor(name="logits", dtype=np.float32, shape=(classes,)),
                config_mod.Tensor(name="probabilities", dtype=np.float32, shape=(classes,)),
                config_mod.Tensor(name="top_k_labels", dtype=np.bytes_, shape=(k,)),
                config_mod.Tensor(name="top_k_scores", dtype=np.float32, shape=(k,)),
            ],
            config=config_mod.ModelConfig(
                max_batch_size=self.max_batch_size,
                batcher=config_mod.DynamicBatcher(max_queue_delay_microseconds=self.max_queue_delay_us),
            ),
            strict=True,
        )
        triton.run()
        self._triton = triton

    def _infer(self, requests: list[Any]) -> list[dict[str, np.ndarray]]:
        try:
            answers, size = _serve_io.run_requests(requests, self.predictor, self.top_k)
        except BadInputError as exc:
            # the client gets PyTriton's traceback of this: keep it to our frames and one line; the
            # console stays quiet (a client's bad request is not the server's failure)
            raise RequestError(exc.one_line()) from None
        except Exception:
            # PyTriton's own report of it is silenced with the client errors (_quiet_loggers)
            self.console(f"rehead serve: inference failed: {traceback.format_exc()}")
            raise
        with self._lock:
            self.batch_sizes[size] += 1
        return answers

    def is_alive(self) -> bool:
        return self._triton is not None and bool(self._triton.is_alive())

    def wait(self, stop: threading.Event, *, poll_s: float = 1.0) -> bool:
        """Block until ``stop`` is set (True) or the server dies (False).

        Args:
            stop: the event that ends the wait.
            poll_s: how often, in seconds, the server is checked (default 1).
        """
        while not stop.wait(poll_s):
            if not self.is_alive():
                return False
        return True

    def log_tail(self, lines: int = 5) -> str:
        """The last ``lines`` lines of Triton's log (empty when there is none).

        Args:
            lines: how many lines (default 5).
        """
        if self.log_file is None or not self.log_file.is_file():
            return ""
        text = self.log_file.read_text(encoding="utf-8", errors="replace").splitlines()
        return " | ".join(line.strip() for line in text[-lines:])


def _to_stderr(line: str) -> None:
    sys.stderr.write(line)
    sys.stderr.flush()


def _route_console(triton: Any, console: ConsoleFilter) -> bool:
    """Send tritonserver's console output through ``console`` instead of PyTriton's ``print`` to
    stdout. PyTriton (0.5 to 0.7) has no option for it: its ``TritonServer`` copies the output with
    ``_record_logs`` and prints it when ``_verbose``; this builds that object as ``run`` would and
    wraps the method. False (PyTriton's own printing left as it is) where those names are absent."""
    initialize = getattr(triton, "_initialize_server", None)
    if initialize is None:
        return False
    initialize()
    server = getattr(triton, "_triton_server", None)
    record = getattr(server, "_record_logs", None)
    if server is None or record is None or not hasattr(server, "_verbose"):
        return False

    def record_and_filter(line: str | bytes) -> None:
        record(line)
        console(line)

    server._verbose = False
    server._record_logs = record_and_filter
    return True


def _require(module: str) -> object:
    from toolkit.errors import require

    return require(module, extra="serve", purpose="rehead serve")


@contextlib.contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    """Set one environment variable for the block (the server's child processes inherit it); an
    empty ``value`` leaves it alone (an empty LD_LIBRARY_PATH entry would mean the current folder)."""
    old = os.environ.get(name)
    if value:
        os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


@contextlib.contextmanager
def _quiet_loggers() -> Iterator[None]:
    """PyTriton logs its progress at INFO: keep to warnings while serving, then restore. Its
    inference handler warns with a traceback for every request that fails, a client's bad image
    included: keep that one to errors (``Server._infer`` reports failures that are not the client's)."""
    levels = {"pytriton": logging.WARNING, "pytriton.proxy.inference": logging.ERROR}
    loggers = {name: logging.getLogger(name) for name in levels}
    before = {name: logger.level for name, logger in loggers.items()}
    for name, logger in loggers.items():
        logger.setLevel(levels[name])
    try:
        yield
    finally:
        for name, logger in loggers.items():
            logger.setLevel(before[name])


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set ``stop`` (main thread only); the previous handlers come back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def serve(
    bundle: str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_HTTP_PORT,
    grpc_port: int = DEFAULT_GRPC_PORT,
    metrics_port: int = DEFAULT_METRICS_PORT,
    max_batch_size: int = 8,
    max_queue_delay_us: int = DEFAULT_QUEUE_DELAY_US,
    model_name: str = "rehead",
    backend: str | None = None,
    device: str | None = None,
    top_k: int = _serve_io.DEFAULT_TOP_K,
    on_ready: Callable[[Endpoints], None] | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Serve ``bundle`` until SIGTERM or SIGINT (or ``stop`` is set), then shut down cleanly.

    Args:
        bundle: a bundle directory or archive (verified first).
        host: the address to listen on (loopback by default; ``0.0.0.0`` for every interface).
        port: the HTTP/REST port.
        grpc_port: the gRPC port.
        metrics_port: the Prometheus metrics port.
        max_batch_size: the largest batch Triton's dynamic batcher forms.
        max_queue_delay_us: how long the batcher may hold a request to fill a batch, in microseconds.
        model_name: the model's name on the server.
        backend: ``tensorrt`` | ``onnxruntime`` | ``pt2``, passed to ``Predictor.from_bundle``
            (default None: the best present).
        device: ``cpu`` | ``cuda`` | ``cuda:N``, passed to ``Predictor.from_bundle`` (default None:
            the GPU when the chosen backend can use one).
        top_k: how many classes the ``top_k_labels`` and ``top_k_scores`` outputs hold (default 5).
        on_ready: called once with the ``Endpoints`` when the model is ready.
        stop: an event that stops the server when set (signals set it too, from the main thread).

    Raises ``MissingDependencyError`` (exit 3) when PyTriton is missing or cannot run under this
    interpreter (``check_libpython``), ``InvalidArgumentError`` (exit 2) for a port in use, and
    ``InternalError`` (exit 4) when the server stops on its own.
    """
    stop = stop or threading.Event()
    with (
        _stop_on_signals(stop),
        Server(
            bundle, host=host, http_port=port, grpc_port=grpc_port, metrics_port=metrics_port,
            max_batch_size=max_batch_size, max_queue_delay_us=max_queue_delay_us, model_name=model_name,
            backend=backend, device=device, top_k=top_k,
        ) as server,
    ):
        if on_ready is not None:
            on_ready(server.endpoints)
        if server.wait(stop):
            return
        tail = server.log_tail()
    raise InternalError(
        f"the Triton server stopped on its own while serving{': ' + tail if tail else ''}",
        hint="rerun it; if it stops again, report this with Triton's log lines above",
    )


__all__ = [
    "Endpoints",
    "LibpythonCheck",
    "RequestError",
    "Server",
    "check_libpython",
    "library_version",
    "serve",
    "stub_path",
]
