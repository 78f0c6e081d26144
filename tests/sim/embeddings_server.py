"""A tiny stand-in for an OpenAI-compatible `POST /v1/embeddings` server (tests only).

Vectors are deterministic functions of the text (hashed character trigrams), so similar texts get
similar vectors and tests can check ranking without a model. The server answers items in reverse
order (with correct `index` fields) to prove the client re-orders, can be told to fail the next N
requests with a status code, and records every request (path, headers, body) for assertions.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def fake_vector(text: str, dim: int) -> list[float]:
    vec = [0.0] * dim
    padded = f"  {text.lower()}  "
    for i in range(len(padded) - 2):
        h = int.from_bytes(hashlib.blake2b(padded[i : i + 3].encode(), digest_size=8).digest(), "big")
        vec[h % dim] += 1.0 if (h >> 32) & 1 else -1.0
    norm = math.sqrt(sum(x * x for x in vec)) or 1.0
    return [3.0 * x / norm for x in vec]  # deliberately not unit length: the client normalises


class EmbeddingsServer:
    def __init__(self, dim: int = 16, api_key: str | None = None) -> None:
        self.dim = dim
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []
        self.fail_next: list[int] = []  # status codes to answer with, one per coming request
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _send(self, code: int, payload: dict[str, Any]) -> None:
                body = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                if server.fail_next:
                    self._send(server.fail_next.pop(0), {"error": {"message": "injected failure"}})
                    return
                if self.path != "/v1/embeddings":
                    self._send(404, {"error": {"message": "not found"}})
                    return
                if server.api_key and self.headers.get("Authorization") != f"Bearer {server.api_key}":
                    self._send(401, {"error": {"message": "bad key"}})
                    return
                inputs = body.get("input")
                if isinstance(inputs, str):
                    inputs = [inputs]
                if not isinstance(inputs, list) or not all(isinstance(t, str) for t in inputs):
                    self._send(400, {"error": {"message": "input must be a string or list of strings"}})
                    return
                data = [{"object": "embedding", "index": i, "embedding": fake_vector(t, server.dim)}
                        for i, t in enumerate(inputs)]
                self._send(200, {"object": "list", "model": body.get("model"), "data": data[::-1],
                                 "usage": {"prompt_tokens": 0, "total_tokens": 0}})

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> EmbeddingsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
