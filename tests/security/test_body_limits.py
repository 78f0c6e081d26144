"""Issue 16, finding 6c: every body is bounded, and a slow one is cut off.

Before, only the webhook had a size limit: any other endpoint read whatever it was sent, and uvicorn
waits for ever on a request that dribbles in a byte at a time (it only times out idle keep-alive
connections), so a few such clients hold the service's connections. Now every body-bearing endpoint
answers 413 above its limit (checked on the declared length and while reading, chunked or not), and a
request whose headers and body do not arrive within API_READ_TIMEOUT_SECONDS is cut off. The slow
clients are real sockets against a real `aiops serve`.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from core.settings import load_settings
from interfaces.api.app import create_app
from tests.conftest import LOCAL_CLIENT, cli_env, recording
from tests.servers import aiops_serve

pytestmark = pytest.mark.e2e

ALICE = "alice-token-0123456789"


def _big(n: int) -> bytes:
    return json.dumps({"service_name": "checkout", "comment": "x" * n, "plan_hash": "0" * 64}).encode()


@pytest.mark.parametrize("path", ["/api/v1/analyze", "/api/v1/plans/plan-x/approve", "/api/v1/plans/plan-x/reject",
                                  "/api/v1/self-healing", "/api/v1/local/analyze", "/api/v1/no-such-endpoint"])
def test_every_body_has_a_limit(tmp_path: Path, path: str) -> None:
    settings = load_settings(AIOPS_DATA_DIR=tmp_path / "var", ENABLE_MEMORY=False, LLM_MODE="rules",
                             API_TOKENS=f"alice:{ALICE}", API_MAX_BODY_BYTES=4096, MAX_PAYLOAD_BYTES=8192)
    headers = {"Authorization": f"Bearer {ALICE}", "content-type": "application/json"}
    big = _big(100_000)
    with TestClient(create_app(settings, worker=False), client=LOCAL_CLIENT) as c:
        declared = c.post(path, content=big, headers=headers)
        assert declared.status_code == 413, declared.text
        setting = "MAX_PAYLOAD_BYTES" if path.endswith("local/analyze") else "API_MAX_BODY_BYTES"
        assert setting in declared.json()["detail"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: limited while it streams in
            for i in range(0, len(big), 1000):
                yield big[i:i + 1000]

        assert c.post(path, content=chunks(), headers=headers).status_code == 413
        if path.endswith("/analyze") and "local" not in path:  # under the limit: the endpoint itself answers
            assert c.post(path, content=b'{"service_name": "checkout"}', headers=headers).status_code == 202


def _open(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=30)


def _closed_while_dribbling(sock: socket.socket, data: bytes, every: float = 0.2, give_up: float = 20.0) -> int:
    """Send `data` a byte at a time; return how many bytes went out before the server closed or answered."""
    sock.settimeout(every)
    start = time.monotonic()
    for sent, byte in enumerate(data):
        try:
            sock.sendall(bytes([byte]))
            sock.recv(4096, socket.MSG_PEEK)  # closed (b"") or answered (a 408): the server cut us off
            return sent
        except TimeoutError:
            pass  # nothing to read yet: the server is still waiting for us
        except (BrokenPipeError, ConnectionResetError):
            return sent
        if time.monotonic() - start > give_up:
            break
    raise AssertionError(f"the server was still reading after {time.monotonic() - start:.0f} s of dribbling")


def _answer(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return out


def test_slow_clients_are_cut_off(tmp_path: Path) -> None:
    env = cli_env(tmp_path, LLM_MODE="rules", API_READ_TIMEOUT_SECONDS="2")
    body = json.dumps(json.loads(recording("disk-full").read_text())["webhook"]).encode()
    with aiops_serve(env, tmp_path / "serve.log") as svc:
        # a slow body: the headers are in, the body never completes in time
        slow_body = _open(svc.url)
        slow_body.sendall(b"POST /webhook/alertmanager HTTP/1.1\r\nHost: aiops\r\nContent-Type: application/json\r\n"
                          b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
        sent = _closed_while_dribbling(slow_body, body)
        assert sent < len(body) // 4
        slow_body.close()
        # slow headers: never a complete request line and headers
        slow_headers = _open(svc.url)
        slow_headers.sendall(b"GET /health HTTP/1.1\r\nHost: aiops\r\n")
        sent = _closed_while_dribbling(slow_headers, b"X-Slow: " + b"a" * 2000 + b"\r\n\r\n")
        assert sent < 500
        slow_headers.close()
        # silent: connects and sends nothing
        silent = _open(svc.url)
        answer = _answer(silent)
        assert answer.startswith(b"HTTP/1.1 408") and b"API_READ_TIMEOUT_SECONDS" in answer, answer
        silent.close()
        # a huge declared body is refused at once, without waiting for it
        huge = _open(svc.url)
        huge.sendall(b"POST /api/v1/analyze HTTP/1.1\r\nHost: aiops\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000000000\r\n\r\n{")
        answer = _answer(huge)
        assert answer.startswith(b"HTTP/1.1 413") and b"API_MAX_BODY_BYTES" in answer, answer
        huge.close()
        # everyone else was served all along, and still is
        assert httpx.get(f"{svc.url}/health").json()["status"] == "healthy"
        assert httpx.post(f"{svc.url}/webhook/alertmanager", content=body,
                          headers={"content-type": "application/json"}).status_code == 202


def test_the_h11_protocol_has_the_same_deadline(tmp_path: Path) -> None:
    """`aiops serve` uses httptools when it is installed (as here), else h11: the h11 protocol class is
    exercised too, under a real uvicorn server on a real socket."""
    import threading

    import uvicorn

    from interfaces.api.limits import DeadlineH11Protocol
    from tests.servers import free_port

    async def app(scope: dict, receive: Any, send: Any) -> None:  # reads the whole body, then answers
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False) and message["type"] == "http.request"
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    port = free_port()
    protocol = type("H11TwoSeconds", (DeadlineH11Protocol,), {"seconds": 2.0})
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, http=protocol, lifespan="off",
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port}"
        slow = _open(url)
        slow.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        assert _closed_while_dribbling(slow, b"x" * 1000) < 250
        slow.close()
        silent = _open(url)
        assert _answer(silent).startswith(b"HTTP/1.1 408")
        silent.close()
        assert httpx.post(url, content=b"x" * 1000).text == "ok"  # a request that arrives in time is served
    finally:
        server.should_exit = True
        thread.join(10)
