"""Row 41 of docs/bad-inputs.md: the live server (``rehead serve``, a real Triton server through
PyTriton, on loopback) under bad requests and a burst above capacity. Every bad request gets an
error answer, the server keeps serving, and no answer it gives is wrong (each is compared with the
Predictor's logits). The burst is bounded in count and in time; nothing leaves 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("pytriton", reason="needs the serve extra: pip install 'rehead[serve]'")
httpclient = pytest.importorskip("tritonclient.http")
grpcclient = pytest.importorskip("tritonclient.grpc")
from reliability_util import LEDGER  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402

from tests.deploy.test_serve import MODEL, Live, http_infer, start, stop  # noqa: E402

pytestmark = pytest.mark.timeout(300)
#: the burst: this many clients, each sending until the count or the time is used up
BURST_CLIENTS, BURST_REQUESTS, BURST_SECONDS = 24, 600, 8.0


@pytest.fixture(scope="module")
def bundle(tiny_dir: Path, tiny_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from toolkit.deploy.bundle import package
    from validation.latency import LatencySettings

    out = tmp_path_factory.mktemp("serve") / "bundle"
    package(tiny_dir, [tiny_onnx], out, samples=4, batch_sizes=(1,),
            latency_settings=LatencySettings(warmup_s=0.01, min_runs=3, min_duration_s=0.02, max_cv=10.0))
    return out


@pytest.fixture(scope="module")
def server(bundle: Path) -> Iterator[Live]:
    live = start(bundle)
    try:
        yield live
    finally:
        stop(live)


@pytest.fixture(scope="module")
def predictor(bundle: Path) -> Iterator[Any]:
    from toolkit.deploy.predictor import Predictor

    with Predictor.from_bundle(bundle, device="cpu") as pred:
        yield pred


def _images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, 16, 16)).astype(np.float32)


_infer = http_infer


def _answers_right(client: Any, predictor: Any, seed: int = 3) -> None:
    batch = _images(2, seed)
    np.testing.assert_allclose(_infer(client, batch).as_numpy("logits"), predictor.logits(batch),
                               rtol=1e-5, atol=1e-5)
    LEDGER["server_requests"] += 1


def test_row41_bad_requests_get_errors_and_the_server_keeps_serving(server: Live, predictor: Any) -> None:
    client = httpclient.InferenceServerClient(server.http)
    try:
        cases = {
            "wrong shape": lambda: _infer(client, _images(1, 0)[:, :, :8, :8]),
            "wrong rank": lambda: _infer(client, _images(1, 0)[0]),
            "fp64": lambda: _infer(client, _images(1, 0).astype(np.float64), datatype="FP64"),
            "int32": lambda: _infer(client, _images(1, 0).astype(np.int32), datatype="INT32"),
            "uint8": lambda: _infer(client, _images(1, 0).astype(np.uint8), datatype="UINT8"),
            "wrong input name": lambda: _infer(client, _images(1, 0), name="pixels"),
            "missing input": lambda: client.infer(MODEL, []),
            "oversize batch": lambda: _infer(client, _images(9, 0)),
            "unknown model": lambda: client.infer("no-such-model", []),
        }
        for what, call in cases.items():
            with pytest.raises(InferenceServerException):
                call()
            LEDGER["server_requests"] += 1
            LEDGER["server_errors_answered"] += 1
            _answers_right(client, predictor, seed=len(what))  # and right after it, a right answer
    finally:
        client.close()


def test_row41_clients_that_disconnect_mid_request(server: Live, predictor: Any) -> None:
    host, port = server.http.split(":")
    body = b'{"inputs":[{"name":"images","shape":[1,3,16,16],"datatype":"FP32","data":[' + b"0.5," * 300
    for cut in (0, 40, len(body) // 2, len(body)):
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            head = (f"POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: {host}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body) + 1000}\r\n\r\n").encode()
            sock.sendall(head + body[:cut])  # then gone: the body never completes
        LEDGER["server_requests"] += 1
    # a client that sends a whole request and leaves before the answer
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        data = ",".join(["0.1"] * (3 * 16 * 16)).encode()
        whole = b'{"inputs":[{"name":"images","shape":[1,3,16,16],"datatype":"FP32","data":[' + data + b"]}]}"
        sock.sendall((f"POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json"
                      f"\r\nContent-Length: {len(whole)}\r\n\r\n").encode() + whole)
    LEDGER["server_requests"] += 1
    time.sleep(0.5)
    client = httpclient.InferenceServerClient(server.http)
    try:
        assert client.is_server_live() and client.is_model_ready(MODEL)
        _answers_right(client, predictor)
    finally:
        client.close()


def test_row41_a_bounded_burst_above_capacity(server: Live, predictor: Any) -> None:
    """24 gRPC clients at once against a model instance that batches at most 8: every answer that
    comes back is the Predictor's, the rest are errors (a timeout or a refusal), never wrong."""
    batches = {seed: _images(1, seed) for seed in range(8)}
    expected = {seed: predictor.logits(batch) for seed, batch in batches.items()}
    counts = {"sent": 0, "right": 0, "wrong": 0, "errors": 0}
    lock = threading.Lock()
    stop_at = time.monotonic() + BURST_SECONDS

    def client_loop(index: int) -> None:
        client = grpcclient.InferenceServerClient(server.grpc)
        try:
            i = 0
            while time.monotonic() < stop_at:
                with lock:
                    if counts["sent"] >= BURST_REQUESTS:
                        return
                    counts["sent"] += 1
                seed = (index + i) % len(batches)
                i += 1
                tensor = grpcclient.InferInput("images", [1, 3, 16, 16], "FP32")
                tensor.set_data_from_numpy(batches[seed])
                try:
                    got = client.infer(MODEL, [tensor], client_timeout=2.0).as_numpy("logits")
                except InferenceServerException:
                    with lock:
                        counts["errors"] += 1
                    continue
                right = np.allclose(got, expected[seed], rtol=1e-5, atol=1e-5)
                with lock:
                    counts["right" if right else "wrong"] += 1
        finally:
            client.close()

    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(BURST_CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=BURST_SECONDS + 60)
    print(f"\nburst: {counts}")
    LEDGER["server_requests"] += counts["sent"]
    LEDGER["server_errors_answered"] += counts["errors"]
    LEDGER["server_wrong_answers"] += counts["wrong"]
    assert counts["wrong"] == 0 and counts["right"] > 0
    assert counts["sent"] <= BURST_REQUESTS and counts["right"] + counts["errors"] == counts["sent"]
    client = httpclient.InferenceServerClient(server.http)
    try:
        assert client.is_server_live()
        _answers_right(client, predictor)
    finally:
        client.close()
