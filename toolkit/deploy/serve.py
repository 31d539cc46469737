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

The stub (``triton_python_backend_stub``) is linked against ``libpythonX.Y.so.1.0`` and gets
whichever file of that name the dynamic loader finds first, then runs this interpreter's
standard library on it. Found here: pyenv's Python 3.11.7 keeps its (shared) libpython in its
own prefix, where the loader does not look, so the stub loaded Debian's 3.11.2 library from
/usr/lib and failed at model load (3.11.7's ``multiprocessing`` calls ``RLock._recursion_count``,
which 3.11.2's C code lacks). ``check_libpython`` runs before anything starts: it resolves the
library the stub will load (with this interpreter's library folder put first on
``LD_LIBRARY_PATH``, which is what makes pyenv's Python work) and asks that library its version;
any other version, or no library, is ``MissingDependencyError`` (exit 3) naming the interpreter
to use instead.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import logging
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import numpy as np

from toolkit._args import positive_int
from toolkit.deploy import _serve_io
from toolkit.deploy._console import ConsoleFilter
from toolkit.errors import BadInputError, InternalError, InvalidArgumentError, MissingDependencyError

DEFAULT_HTTP_PORT = 8000
DEFAULT_GRPC_PORT = 8001
DEFAULT_METRICS_PORT = 8002
#: how long the dynamic batcher may hold a request to fill a batch, in microseconds
DEFAULT_QUEUE_DELAY_US = 500
#: seconds Triton waits for in-flight requests when it stops
EXIT_TIMEOUT_S = 3
_SHARED_FIX = (
    "run rehead from a virtual environment of a Python whose shared libpython the loader finds, e.g. "
    "Debian's: /usr/bin/python3.11 -m venv VENV && VENV/bin/pip install 'rehead[cpu,serve]'; "
    "or build the interpreter with a shared library (pyenv: PYTHON_CONFIGURE_OPTS=--enable-shared pyenv install X.Y.Z)"
)
_VERSION_PROBE = (
    "import ctypes, sys\n"
    "lib = ctypes.CDLL(sys.argv[1], mode=ctypes.RTLD_LOCAL)\n"
    "lib.Py_GetVersion.restype = ctypes.c_char_p\n"
    "print(lib.Py_GetVersion().decode().split()[0])\n"
)


@dataclasses.dataclass(frozen=True)
class LibpythonCheck:
    """What ``check_libpython`` found: the interpreter's ``version``, the ``library`` the stub will
    load (None: none found) and that library's ``library_version``; ``ld_library_path``: the value
    the server must run with."""

    version: str
    library: str | None
    library_version: str | None
    ld_library_path: str

    @property
    def ok(self) -> bool:
        return self.library is not None and self.library_version == self.version


def stub_path(version: str | None = None) -> Path:
    """PyTriton's Python-backend stub for Python ``version`` (default: this interpreter's X.Y)."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            "nvidia-pytriton is not installed (it runs the Triton server)", hint='pip install "rehead[serve]"'
        )
    minor = ".".join((version or platform.python_version()).split(".")[:2])
    root = Path(next(iter(spec.submodule_search_locations)))
    stub = root / "tritonserver" / "python_backend_stubs" / minor / "triton_python_backend_stub"
    if not stub.is_file():
        shipped = sorted(p.name for p in (root / "tritonserver" / "python_backend_stubs").glob("*"))
        raise MissingDependencyError(
            f"nvidia-pytriton ships no Python-backend stub for Python {minor} (it has {', '.join(shipped) or 'none'})",
            hint=f"run rehead serve under one of those Python versions; {_SHARED_FIX}",
        )
    return stub


def _resolve(stub: Path, soname: str, env: Mapping[str, str]) -> str | None:
    """The file the dynamic loader gives ``stub`` for ``soname`` under ``env`` (ldd's answer)."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return None
    # ldd is a shell script on glibc systems: it needs a PATH even when the environment checked has none
    run_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
    try:
        done = subprocess.run([ldd, str(stub)], env=run_env, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in done.stdout.splitlines():
        name, _, rest = line.strip().partition(" => ")
        if name == soname:
            target = rest.split(" (")[0].strip()
            return None if not target or target == "not found" else target
    return None


def library_version(library: str) -> str | None:
    """``Py_GetVersion()`` of a libpython file (in a child process, so nothing loads here)."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", _VERSION_PROBE, library], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = done.stdout.strip()
    return text if done.returncode == 0 and re.fullmatch(r"\d+\.\d+\.\d+\S*", text) else None


def check_libpython(
    *,
    version: str | None = None,
    config_vars: Mapping[str, Any] | None = None,
    stub: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> LibpythonCheck:
    """Check that PyTriton's stub will load a libpython of this interpreter's exact version.

    ``version``, ``config_vars`` (``sysconfig.get_config_vars()``) and ``environ`` default to this
    interpreter's and this process's: pass others to check another interpreter's build. Raises
    ``MissingDependencyError`` (exit 3) saying what the stub would load and which interpreter to use.
    """
    version = version or platform.python_version()
    config = sysconfig.get_config_vars() if config_vars is None else config_vars
    environ = os.environ if environ is None else environ
    stub = stub or stub_path(version)
    minor = ".".join(version.split(".")[:2])
    soname = str(config.get("INSTSONAME") or f"libpython{minor}.so.1.0")
    if ".so" not in soname:  # a static build names its .a here
        soname = f"libpython{minor}.so.1.0"
    libdir = str(config.get("LIBDIR") or "")
    shared = bool(config.get("Py_ENABLE_SHARED")) and bool(libdir) and (Path(libdir) / soname).is_file()
    ld_path = environ.get("LD_LIBRARY_PATH", "")
    library = _resolve(stub, soname, environ)
    found = library_version(library) if library else None
    parts = [p for p in ld_path.split(":") if p]
    if found != version and shared and libdir not in parts:
        # The interpreter's own folder first: what makes a Python with its libpython outside the
        # loader's default folders (pyenv's) work.
        ld_path = ":".join([libdir, *parts])
        library = _resolve(stub, soname, {**environ, "LD_LIBRARY_PATH": ld_path})
        if library is None and shutil.which("ldd") is None:
            library = str(Path(libdir) / soname)  # no ldd here: the folder put first is where it looks
        found = library_version(library) if library else None
    check = LibpythonCheck(version, library, found, ld_path)
    if check.ok:
        return check
    build = (
        f"this Python ({version}, {sys.executable}) has a shared libpython in {libdir}"
        if shared
        else f"this Python ({version}, {sys.executable}) is built without a shared libpython "
        f"(Py_ENABLE_SHARED={config.get('Py_ENABLE_SHARED')!r}, no {soname} in {libdir or 'its LIBDIR'})"
    )
    loads = (
        f"the stub would load {library} (Python {found or 'unknown'}), another Python's library, "
        "and fail when the model loads"
        if library
        else f"the stub finds no {soname} at all and cannot start"
    )
    raise MissingDependencyError(
        f"Triton's Python-backend stub (PyTriton) needs the shared libpython of the Python that runs rehead: "
        f"{build}; {loads}",
        hint=_SHARED_FIX,
    )


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
        """Block until ``stop`` is set (True) or the server dies (False)."""
        while not stop.wait(poll_s):
            if not self.is_alive():
                return False
        return True

    def log_tail(self, lines: int = 5) -> str:
        """The last ``lines`` lines of Triton's log (empty when there is none)."""
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
        port, grpc_port, metrics_port: the HTTP/REST, gRPC and Prometheus metrics ports.
        max_batch_size: the largest batch Triton's dynamic batcher forms.
        max_queue_delay_us: how long the batcher may hold a request to fill a batch, in microseconds.
        model_name: the model's name on the server.
        backend, device: passed to ``Predictor.from_bundle``.
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
