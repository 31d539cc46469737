"""A live ``rehead serve`` (a real Triton server through PyTriton) on loopback, started once for the
module: HTTP and gRPC answers equal the Predictor's logits, for preprocessed tensors and for
encoded image files (with top-k class names), concurrent clients get batched, a bounded load test
reports throughput and p99, malformed requests get errors while the server keeps serving, and
SIGTERM stops it cleanly with none of tritonserver's CPU-host noise on the console. A second
server is polled from its first instant: ``/v2/health/ready`` says 200 only when an inference
succeeds. The libpython preflight is checked against real builds."""

from __future__ import annotations

import os
import platform
import queue
import re
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("pytriton", reason="needs the serve extra: pip install 'rehead[serve]'")
httpclient = pytest.importorskip("tritonclient.http")
grpcclient = pytest.importorskip("tritonclient.grpc")
from tritonclient.utils import InferenceServerException  # noqa: E402

from toolkit.deploy.serve import check_libpython  # noqa: E402
from toolkit.errors import MissingDependencyError  # noqa: E402

pytestmark = pytest.mark.timeout(300)
MODEL = "digits"
#: the load test stops at whichever comes first
LOAD_REQUESTS, LOAD_SECONDS, LOAD_CLIENTS = 300, 10.0, 4


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def port_free(port: int) -> bool:
    """Nothing listens on ``port`` and a server could bind it (connections in TIME_WAIT aside, as
    SO_REUSEADDR, which every server sets, allows)."""
    with socket.socket() as probe:
        probe.settimeout(2)
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            return False
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def alive(pid: int) -> bool:
    """A running (not zombie) process."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


class Live:
    def __init__(
        self, proc: subprocess.Popen[str], ports: list[int], lines: queue.Queue[str], startup: list[str]
    ) -> None:
        self.proc, self.lines = proc, lines
        #: every line rehead serve printed so far (the startup, then what rest_of drained)
        self.console = list(startup)
        self.http, self.grpc, self.metrics = (f"127.0.0.1:{p}" for p in ports)
        self.ports = ports


def start(bundle: Path) -> Live:
    """``rehead serve`` in a subprocess on free loopback ports, once it printed its ready line."""
    ports = free_ports(3)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "toolkit.cli", "serve", str(bundle), "--port", str(ports[0]),
         "--grpc-port", str(ports[1]), "--metrics-port", str(ports[2]), "--model-name", MODEL,
         "--max-batch-size", "8", "--max-queue-delay-us", "20000", "--device", "cpu"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    stdout = proc.stdout
    threading.Thread(target=lambda: [lines.put(line) for line in stdout], daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        if line.startswith("serving model"):
            break
    if not seen or not seen[-1].startswith("serving model"):
        proc.kill()
        pytest.fail("rehead serve did not become ready:\n" + "".join(seen[-30:]))
    assert f"http://127.0.0.1:{ports[0]}" in seen[-1] and f"127.0.0.1:{ports[1]}" in seen[-1]
    return Live(proc, ports, lines, seen)


def children(pid: int) -> list[int]:
    done = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(p) for p in done.stdout.split()]


def rest_of(live: Live) -> list[str]:
    out = []
    while not live.lines.empty():
        out.append(live.lines.get())
    live.console.extend(out)
    return out


@pytest.fixture(scope="module")
def server(bundle_dir: Path) -> Iterator[Live]:
    live = start(bundle_dir)
    try:
        yield live
    finally:
        stop(live)


def stop(live: Live) -> None:
    """SIGTERM (so that PyTriton removes its workspace), SIGKILL if that does not end it."""
    if live.proc.poll() is None:
        live.proc.terminate()
        try:
            live.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            live.proc.kill()
            live.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def predictor(bundle_dir: Path) -> Iterator[Any]:
    from toolkit.deploy.predictor import Predictor

    with Predictor.from_bundle(bundle_dir, device="cpu") as pred:
        yield pred


def images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, 32, 32)).astype(np.float32)


def http_infer(client: Any, batch: np.ndarray, name: str = "images", datatype: str = "FP32") -> Any:
    tensor = httpclient.InferInput(name, list(batch.shape), datatype)
    tensor.set_data_from_numpy(batch)
    return client.infer(MODEL, [tensor])


def grpc_infer(client: Any, batch: np.ndarray) -> Any:
    tensor = grpcclient.InferInput("images", list(batch.shape), "FP32")
    tensor.set_data_from_numpy(batch)
    return client.infer(MODEL, [tensor])


def encoded(files: list[Path]) -> np.ndarray:
    """The files' bytes as a BYTES batch [N, 1], as a client sends them."""
    return np.array([[path.read_bytes()] for path in files], dtype=object)


def bytes_infer(module: Any, client: Any, files: list[Path]) -> Any:
    data = encoded(files)
    tensor = module.InferInput("image_bytes", list(data.shape), "BYTES")
    tensor.set_data_from_numpy(data)
    return client.infer(MODEL, [tensor])


@pytest.fixture(scope="module")
def encoded_files(image_files: list[Path], tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """PNGs of several sizes (one grey), a JPEG, and a BMP whose last bytes are zeros (a transport
    that trimmed trailing NULs, as numpy's fixed-width bytes do, would break it)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("encoded")
    rng = np.random.default_rng(11)
    jpeg, bmp = root / "photo.jpg", root / "dark.bmp"
    Image.fromarray(rng.integers(0, 256, size=(48, 40, 3), dtype=np.uint8)).save(jpeg, quality=85)
    pixels = rng.integers(0, 256, size=(30, 27, 3), dtype=np.uint8)
    pixels[:4] = 0  # a BMP stores rows bottom-up: the top rows come last, and its file ends in zeros
    Image.fromarray(pixels).save(bmp)
    assert bmp.read_bytes().endswith(b"\0" * 8)
    return [*image_files[:4], jpeg, bmp]


def test_http_and_grpc_answer_the_predictors_logits(server: Live, predictor: Any) -> None:
    batch = images(3, seed=1)
    expected = predictor.logits(batch)
    http = httpclient.InferenceServerClient(server.http)
    grpc = grpcclient.InferenceServerClient(server.grpc)
    try:
        assert http.is_server_ready() and http.is_model_ready(MODEL)
        meta = http.get_model_metadata(MODEL)
        assert [(i["name"], i["datatype"], i["shape"]) for i in meta["inputs"]] == [
            ("images", "FP32", [-1, 3, 32, 32]), ("image_bytes", "BYTES", [-1, 1])]
        assert [(o["name"], o["datatype"], o["shape"]) for o in meta["outputs"]] == [
            ("logits", "FP32", [-1, 10]), ("probabilities", "FP32", [-1, 10]),
            ("top_k_labels", "BYTES", [-1, 5]), ("top_k_scores", "FP32", [-1, 5])]
        for answer in (http_infer(http, batch), grpc_infer(grpc, batch)):
            logits = answer.as_numpy("logits")
            assert logits.dtype == np.float32 and logits.shape == (3, 10)
            np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)
            probs = answer.as_numpy("probabilities")
            np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
            assert (probs.argmax(axis=1) == expected.argmax(axis=1)).all()
    finally:
        http.close()
        grpc.close()


def test_encoded_images_answer_the_predictors_logits_and_top_k(
    server: Live, predictor: Any, encoded_files: list[Path]
) -> None:
    """PNG, JPEG and BMP files sent as bytes: the served logits are the Predictor's for the same
    files (decoded and preprocessed as validation and ``rehead predict`` do), the top-k names and
    scores are ``Predictor.predict``'s."""
    expected = predictor.logits(predictor.preprocess(encoded_files))
    predicted = predictor.predict(encoded_files, top_k=5)
    http = httpclient.InferenceServerClient(server.http)
    grpc = grpcclient.InferenceServerClient(server.grpc)
    try:
        for answer in (bytes_infer(httpclient, http, encoded_files), bytes_infer(grpcclient, grpc, encoded_files)):
            logits = answer.as_numpy("logits")
            assert logits.shape == (len(encoded_files), 10)
            np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)
            labels, scores = answer.as_numpy("top_k_labels"), answer.as_numpy("top_k_scores")
            assert labels.shape == scores.shape == (len(encoded_files), 5)
            assert [[name.decode() for name in row] for row in labels] == [[n for n, _ in row] for row in predicted]
            np.testing.assert_allclose(scores, [[p for _, p in row] for row in predicted], atol=1e-6)
        # one file alone, and a preprocessed tensor batched beside it by concurrent clients
        one = bytes_infer(httpclient, http, encoded_files[4:5]).as_numpy("logits")
        np.testing.assert_allclose(one, expected[4:5], rtol=1e-5, atol=1e-5)
    finally:
        http.close()
        grpc.close()


def test_mixed_tensor_and_encoded_requests_batch_together(
    server: Live, predictor: Any, encoded_files: list[Path]
) -> None:
    tensors = [images(1, seed=200 + i) for i in range(8)]
    before = _counts(server)

    def one(i: int) -> np.ndarray:
        client = httpclient.InferenceServerClient(server.http)
        try:
            if i % 2:
                return bytes_infer(httpclient, client, encoded_files[i % len(encoded_files):][:1]).as_numpy("logits")
            return http_infer(client, tensors[i]).as_numpy("logits")
        finally:
            client.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(one, range(8)))
    for i, logits in enumerate(answers):
        want = (predictor.logits(predictor.preprocess(encoded_files[i % len(encoded_files):][:1])) if i % 2
                else predictor.logits(tensors[i]))
        np.testing.assert_allclose(logits, want, rtol=1e-5, atol=1e-5)
    after = _counts(server)
    print(f"\n8 mixed requests: {after[1] - before[1]} model executions")
    assert after[0] - before[0] == 8


def _counts(server: Live) -> tuple[int, int]:
    """(inferences, executions) of the model from Triton's Prometheus metrics (PyTriton keeps the
    statistics API behind an access token; the metrics endpoint is open)."""
    import urllib.request

    with urllib.request.urlopen(f"http://{server.metrics}/metrics", timeout=10) as response:
        text = response.read().decode()
    values = {}
    for name in ("nv_inference_count", "nv_inference_exec_count"):
        found = re.search(rf'^{name}{{[^}}]*model="{MODEL}"[^}}]*}} (\S+)$', text, re.MULTILINE)
        assert found, f"{name} for {MODEL} not in the metrics"
        values[name] = int(float(found.group(1)))
    return values["nv_inference_count"], values["nv_inference_exec_count"]


def test_concurrent_clients_are_batched(server: Live, predictor: Any) -> None:
    before = _counts(server)
    requests = [images(1, seed=100 + i) for i in range(32)]

    def one(batch: np.ndarray) -> np.ndarray:
        client = httpclient.InferenceServerClient(server.http)
        try:
            return http_infer(client, batch).as_numpy("logits")
        finally:
            client.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(one, requests))
    for batch, logits in zip(requests, answers, strict=True):
        np.testing.assert_allclose(logits, predictor.logits(batch), rtol=1e-5, atol=1e-5)
    after = _counts(server)
    inferences, executions = after[0] - before[0], after[1] - before[1]
    print(f"\n32 single-image requests from 8 clients: {executions} model executions")
    assert inferences == 32
    assert executions < inferences, "no two requests were batched together"


def test_bounded_load_reports_throughput_and_p99(server: Live, record_property: Any) -> None:
    batch = images(1, seed=7)
    latencies: list[float] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + LOAD_SECONDS

    def worker() -> None:
        client = grpcclient.InferenceServerClient(server.grpc)
        try:
            while time.monotonic() < stop_at:
                with lock:
                    if len(latencies) >= LOAD_REQUESTS:
                        return
                start = time.perf_counter()
                grpc_infer(client, batch)
                with lock:
                    latencies.append(time.perf_counter() - start)
        finally:
            client.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(LOAD_CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=LOAD_SECONDS + 30)
    elapsed = time.perf_counter() - started
    assert latencies, "no request completed"
    p50, p99 = (float(np.percentile(latencies, q)) * 1000 for q in (50, 99))
    throughput = len(latencies) / elapsed
    record_property("serve_throughput_rps", round(throughput, 1))
    record_property("serve_p99_ms", round(p99, 2))
    print(f"\nload: {len(latencies)} requests, {LOAD_CLIENTS} gRPC clients, {elapsed:.1f} s: "
          f"{throughput:.1f} req/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    assert len(latencies) <= LOAD_REQUESTS + LOAD_CLIENTS and elapsed < LOAD_SECONDS + 30
    assert 0 < p50 <= p99


def _input(name: str, data: np.ndarray, datatype: str) -> Any:
    tensor = httpclient.InferInput(name, list(data.shape), datatype)
    tensor.set_data_from_numpy(data)
    return tensor


def test_malformed_requests_get_errors_and_the_server_keeps_serving(
    server: Live, predictor: Any, image_files: list[Path]
) -> None:
    client = httpclient.InferenceServerClient(server.http)
    try:
        cases = {
            "wrong shape": lambda: http_infer(client, images(1, 0)[:, :, :16, :16]),
            "wrong dtype": lambda: http_infer(client, images(1, 0).astype(np.float64), datatype="FP64"),
            "wrong input name": lambda: http_infer(client, images(1, 0), name="pixels"),
            "missing input": lambda: client.infer(MODEL, []),
            "too large a batch": lambda: http_infer(client, images(9, 0)),
            "bytes that are no image": lambda: http_infer(client, np.array([[b"GIF89a not really"]], dtype=object),
                                                          name="image_bytes", datatype="BYTES"),
            "empty bytes": lambda: http_infer(client, np.array([[b""]], dtype=object), name="image_bytes",
                                              datatype="BYTES"),
            "both inputs": lambda: client.infer(MODEL, [_input("images", images(1, 0), "FP32"),
                                                       _input("image_bytes", encoded(image_files[:1]), "BYTES")]),
        }
        messages = {}
        for what, call in cases.items():
            with pytest.raises(InferenceServerException) as info:
                call()
            messages[what] = str(info.value.message())
            print(f"\n{what}: {messages[what]}")
        for what in ("bytes that are no image", "empty bytes"):
            assert "request 0, image 0: " in messages[what] and "are not an image PIL can decode" in messages[what]
        assert "expected exactly one of 'images' (float32" in messages["both inputs"]
        time.sleep(0.5)  # the reader thread drains the pipe
        meanwhile = rest_of(server)
        assert not [line for line in meanwhile if "Traceback" in line or "RequestError" in line], (
            "a client's bad request is not the server's failure: nothing on its console\n" + "".join(meanwhile))
        batch = images(2, seed=3)
        np.testing.assert_allclose(http_infer(client, batch).as_numpy("logits"), predictor.logits(batch),
                                   rtol=1e-5, atol=1e-5)
        assert client.is_server_live() and client.is_model_ready(MODEL)
    finally:
        client.close()


def test_sigterm_stops_cleanly_and_releases_the_ports(server: Live) -> None:
    pids = children(server.proc.pid)
    assert pids, "rehead serve runs tritonserver as a child process"
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=60) == 0
    elapsed = time.monotonic() - started
    rest = rest_of(server)
    assert rest and rest[-1].strip() == "stopped", rest[-10:]
    # tritonserver's console noise on a CPU host stays out of rehead serve's output (item 7)
    noise = [line for line in server.console if "initialize NVML" in line or re.match(r"Signal \(\d+\)", line)]
    assert noise == [], noise
    assert [p for p in server.ports if not port_free(p)] == []
    deadline = time.monotonic() + 10
    while [p for p in pids if alive(p)] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [p for p in pids if alive(p)] == [], "tritonserver outlived rehead serve"
    print(f"\nSIGTERM to exit 0: {elapsed:.1f} s")


def test_a_server_that_dies_exits_4(bundle_dir: Path) -> None:
    live = start(bundle_dir)
    try:
        (tritonserver,) = [
            p for p in children(live.proc.pid) if b"tritonserver" in Path(f"/proc/{p}/cmdline").read_bytes()
        ]
        os.kill(tritonserver, signal.SIGKILL)
        assert live.proc.wait(timeout=60) == 4
    finally:
        stop(live)
    time.sleep(0.5)  # the reader thread drains the pipe
    errors = [line for line in rest_of(live) if line.startswith("rehead: error:")]
    assert errors and "the Triton server stopped on its own" in errors[0], errors


def test_ready_only_when_an_inference_succeeds(bundle_dir: Path, image_files: list[Path], tmp_path: Path) -> None:
    """``/v2/health/ready`` polled every 20 ms from the instant ``rehead serve`` starts: no 200
    before the model answers, and the first inference after the first 200 succeeds, unretried.
    (PyTriton's default loads the model after the server is up, and that request got
    "Request for unknown model".)"""
    import urllib.error
    import urllib.request

    ports = free_ports(3)
    log = tmp_path / "serve.out"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "toolkit.cli", "serve", str(bundle_dir), "--port", str(ports[0]),
             "--grpc-port", str(ports[1]), "--metrics-port", str(ports[2]), "--model-name", MODEL, "--device", "cpu"],
            stdout=out, stderr=subprocess.STDOUT, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
    statuses: list[int | str] = []
    try:
        started = time.monotonic()
        while time.monotonic() - started < 180 and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{ports[0]}/v2/health/ready", timeout=5) as response:
                    status: int | str = response.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            except OSError as exc:
                status = type(exc).__name__
            if not statuses or statuses[-1] != status:
                statuses.append(status)
            if status == 200:
                client = httpclient.InferenceServerClient(f"127.0.0.1:{ports[0]}")
                try:
                    answer = bytes_infer(httpclient, client, image_files[:2])
                finally:
                    client.close()
                assert answer.as_numpy("logits").shape == (2, 10)
                break
            time.sleep(0.02)
        print(f"\nready states from the start: {statuses} in {time.monotonic() - started:.1f} s")
        assert statuses and statuses[-1] == 200, (statuses, log.read_text())
        assert statuses[0] != 200, "the first poll came too late to see the server not ready"
    finally:
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


# --- the preflight -------------------------------------------------------------------------------


def test_preflight_passes_for_this_interpreter() -> None:
    check = check_libpython()
    assert check.ok and check.library_version == platform.python_version()


def test_preflight_refuses_a_python_without_its_shared_libpython(tmp_path: Path) -> None:
    """A build without a shared library (Py_ENABLE_SHARED 0, no .so in LIBDIR) of a version no
    installed libpython has: the stub would load another Python's library (or none): exit 3."""
    major, minor = sys.version_info[:2]
    config = {**sysconfig.get_config_vars(), "Py_ENABLE_SHARED": 0, "LIBDIR": str(tmp_path),
              "INSTSONAME": f"libpython{major}.{minor}.a"}
    started = time.monotonic()
    with pytest.raises(MissingDependencyError) as info:
        check_libpython(version=f"{major}.{minor}.999", config_vars=config, environ={})
    assert time.monotonic() - started < 20
    error = info.value
    assert error.exit_code == 3
    assert "without a shared libpython" in error.message and f"{major}.{minor}.999" in error.message
    assert "/usr/bin/python3" in error.hint and "--enable-shared" in error.hint


def test_a_port_in_use_is_refused_before_anything_starts(bundle_dir: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        grpc, metrics = free_ports(2)
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "toolkit.cli", "serve", str(bundle_dir), "--port", str(port),
             "--grpc-port", str(grpc), "--metrics-port", str(metrics)],
            capture_output=True, text=True, timeout=120, check=False,
        )
    assert done.returncode == 2, done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "flag: --port" in done.stderr
    assert time.monotonic() - started < 60


def test_a_top_k_below_one_is_refused_before_anything_starts(bundle_dir: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "toolkit.cli", "serve", str(bundle_dir), "--top-k", "0"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("rehead: error: --top-k must be a positive integer, got 0; hint: e.g. 5"), line
    assert "--top-k" in line.split("hint:")[1], "the flag at fault is named"
