"""A local stand-in for Ollama's chat API (the wire protocol only), for the real `langchain-ollama` client.

It speaks `POST /api/chat` the way Ollama does: the request carries `model`, `messages`, `tools`
(OpenAI-style function definitions) and `stream`; the answer is NDJSON (`application/x-ndjson`), one
chunk with the assistant message (tool calls with arguments as a JSON *object*, unlike OpenAI's
string) and a final `done: true` chunk with `done_reason`, durations and the token counts
(`prompt_eval_count`, `eval_count`). With `stream: false` it answers one JSON object. `GET /api/tags`
lists the model. What the "model" says is decided by the same responder callable as the OpenAI
simulator (an OpenAI-style assistant message), converted to Ollama's shape here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.sim.loopback import loopback_http
from tests.sim.openai_server import Responder


def ollama_message(message: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI-style assistant message in Ollama's shape (arguments decoded to an object)."""
    out: dict[str, Any] = {"role": "assistant", "content": message.get("content") or ""}
    calls = message.get("tool_calls") or []
    if calls:
        out["tool_calls"] = [{"function": {"name": c["function"]["name"],
                                           "arguments": json.loads(c["function"]["arguments"] or "{}")}}
                             for c in calls]
    return out


class OllamaSim:
    def __init__(self, responder: Responder, model: str = "llama3.1:8b", fail_with: int | None = None) -> None:
        self.responder = responder
        self.model = model
        self.fail_with = fail_with
        self.requests: list[dict[str, Any]] = []

    def handler(self) -> type[BaseHTTPRequestHandler]:
        sim = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, data: bytes, ctype: str = "application/json") -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                if self.path.rstrip("/") == "/api/tags":
                    return self._send(200, json.dumps({"models": [{"name": sim.model, "model": sim.model}]}).encode())
                return self._send(404, b'{"error": "not found"}')

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if self.path.rstrip("/") != "/api/chat":
                    return self._send(404, json.dumps({"error": f"unknown path {self.path}"}).encode())
                sim.requests.append(body)
                if sim.fail_with:
                    return self._send(sim.fail_with, json.dumps({"error": "simulated failure"}).encode())
                if body.get("model") != sim.model:
                    return self._send(404, json.dumps({"error": f"model '{body.get('model')}' not found"}).encode())
                message = ollama_message(sim.responder(body))
                now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
                prompt = sum(len(json.dumps(m)) for m in body.get("messages", [])) // 4
                final = {"model": sim.model, "created_at": now, "message": {"role": "assistant", "content": ""},
                         "done": True, "done_reason": "stop", "total_duration": 1_000_000,
                         "load_duration": 1000, "prompt_eval_count": prompt, "prompt_eval_duration": 1000,
                         "eval_count": len(json.dumps(message)) // 4, "eval_duration": 1000}
                if body.get("stream", True) is False:
                    return self._send(200, json.dumps({**final, "message": message}).encode())
                chunks = [{"model": sim.model, "created_at": now, "message": message, "done": False}, final]
                data = b"".join(json.dumps(c).encode() + b"\n" for c in chunks)
                return self._send(200, data, "application/x-ndjson")

        return Handler


@contextmanager
def serve(sim: OllamaSim) -> Iterator[str]:
    """Run the simulator on a free loopback port; yields the base URL (OLLAMA_BASE_URL)."""
    with loopback_http(sim.handler()) as base:
        yield base
