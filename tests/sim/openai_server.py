"""A local stand-in for an OpenAI-compatible chat completions server (the wire protocol only).

It speaks `POST /v1/chat/completions` with the request and response bodies of the OpenAI API
(tools, tool_choice, tool_calls with JSON-string arguments, usage), so tests drive the real
`langchain-openai` client end to end. What the "model" answers is decided by a responder callable.
It can also fail on purpose (HTTP 500/429) or hang (accept the request and answer nothing for
`hang_for` seconds, or until the server stops) to exercise fallbacks, timeouts and circuit breakers.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.sim.loopback import loopback_http

Responder = Callable[[dict[str, Any]], dict[str, Any]]  # request body -> assistant message


def function_call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"role": "assistant", "content": None, "tool_calls": [{
        "id": f"call_{uuid.uuid4().hex[:12]}", "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)}}]}


class OpenAISim:
    def __init__(self, responder: Responder, fail_with: int | None = None, hang_for: float | None = None) -> None:
        self.responder = responder
        self.fail_with = fail_with
        self.hang_for = hang_for
        self.released = threading.Event()  # set when the server stops, so hanging handlers return
        self.requests: list[dict[str, Any]] = []

    def handler(self) -> type[BaseHTTPRequestHandler]:
        sim = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if self.path.rstrip("/") != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": f"unknown path {self.path}", "type": "invalid_request_error"}})
                sim.requests.append(body)
                if sim.hang_for:
                    sim.released.wait(sim.hang_for)
                    if sim.released.is_set():
                        return None  # the server is stopping: drop the connection unanswered
                if sim.fail_with:
                    return self._send(sim.fail_with, {"error": {"message": "simulated failure", "type": "server_error",
                                                                "code": None}})
                message = sim.responder(body)
                prompt = sum(len(json.dumps(m)) for m in body.get("messages", [])) // 4
                completion = len(json.dumps(message)) // 4
                self._send(200, {
                    "id": f"chatcmpl-{uuid.uuid4().hex[:20]}", "object": "chat.completion", "created": int(time.time()),
                    "model": body.get("model", "sim"), "system_fingerprint": "fp_sim",
                    "choices": [{"index": 0, "message": message, "logprobs": None,
                                 "finish_reason": "tool_calls" if message.get("tool_calls") else "stop"}],
                    "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                              "total_tokens": prompt + completion}})

        return Handler


@contextmanager
def serve(sim: OpenAISim) -> Iterator[str]:
    """Run the simulator on a free loopback port; yields the base URL (…/v1)."""
    with loopback_http(sim.handler(), on_close=sim.released.set) as base:
        yield f"{base}/v1"
