"""HTTP doubles of Slack incoming webhooks and the PagerDuty Events API v2, with outages on demand.

Each validates bodies the way the real service does (the rules our payloads must meet) and answers
with the real status codes and bodies, so tests drive the real httpx client:

- Slack (`POST /services/T.../B.../xxx`): JSON with `text` and/or `blocks`; at most 50 blocks of known
  types; a header's text is plain_text of at most 150 characters; section text at most 3,000, at most 10
  fields of at most 2,000; context at most 10 elements. 200 `ok`, or 400 `invalid_blocks` / `no_text` /
  `invalid_payload`, 404 `no_service` for an unknown webhook path.
- PagerDuty (`POST /v2/enqueue`): a 32-character `routing_key`, `event_action` trigger / acknowledge /
  resolve, `dedup_key` up to 255 characters; a trigger needs `payload.summary` (up to 1,024),
  `payload.source` and `payload.severity` (critical, error, warning, info), and a valid `timestamp` if
  given. 202 `{"status": "success", "message": "Event processed", "dedup_key"}`, or 400
  `{"status": "invalid event", "errors": [...]}`. It keeps each dedup_key's incident state.

`fail(n, status)` makes the next n requests answer `status` (500, 429 ...); `hang(n, seconds)` makes
them stall that long and then drop the connection without processing (a hung server); `recover()`
ends an outage early (`fail(10**6)` then `recover()` is "down until it comes back"). Only requests
that were processed are in `received`, so "exactly once" is countable.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.sim.loopback import loopback_http

SLACK_BLOCKS = {"section", "header", "context", "divider", "actions", "image", "rich_text", "input", "file",
                "video"}


class HttpDouble:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.attempts = 0
        self._faults: list[tuple[str, float]] = []
        self._lock = threading.Lock()
        self.url = ""

    def fail(self, n: int = 1, status: int = 500) -> None:
        with self._lock:
            self._faults += [("status", float(status))] * n

    def hang(self, n: int = 1, seconds: float = 2.0) -> None:
        with self._lock:
            self._faults += [("hang", seconds)] * n

    def recover(self) -> None:
        """The outage is over: drop every fault still pending."""
        with self._lock:
            self._faults.clear()

    def _fault(self) -> tuple[str, float] | None:
        with self._lock:
            self.attempts += 1
            return self._faults.pop(0) if self._faults else None

    def handle(self, path: str, body: Any) -> tuple[int, str, str]:  # status, content type, body
        raise NotImplementedError


class SlackDouble(HttpDouble):
    path = "/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"

    def handle(self, path: str, body: Any) -> tuple[int, str, str]:
        if path != self.path:
            return 404, "text/html", "no_service"
        if not isinstance(body, dict):
            return 400, "text/html", "invalid_payload"
        blocks = body.get("blocks")
        if not body.get("text") and not blocks:
            return 400, "text/html", "no_text"
        if blocks is not None and not _slack_blocks_ok(blocks):
            return 400, "text/html", "invalid_blocks"
        with self._lock:
            self.received.append(body)
        return 200, "text/html", "ok"


def _slack_text_ok(t: Any, limit: int, plain_only: bool = False) -> bool:
    if not isinstance(t, dict) or t.get("type") not in (("plain_text",) if plain_only else ("plain_text", "mrkdwn")):
        return False
    return isinstance(t.get("text"), str) and 1 <= len(t["text"]) <= limit


def _slack_blocks_ok(blocks: Any) -> bool:
    if not isinstance(blocks, list) or not 1 <= len(blocks) <= 50:
        return False
    for block in blocks:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind not in SLACK_BLOCKS:
            return False
        if kind == "header" and not _slack_text_ok(block.get("text"), 150, plain_only=True):
            return False
        if kind == "section":
            fields = block.get("fields") or []
            if "text" not in block and not fields:
                return False
            if "text" in block and not _slack_text_ok(block["text"], 3000):
                return False
            if len(fields) > 10 or not all(_slack_text_ok(f, 2000) for f in fields):
                return False
        if kind == "context":
            elements = block.get("elements") or []
            if not 1 <= len(elements) <= 10 or not all(_slack_text_ok(e, 3000) for e in elements):
                return False
    return True


class PagerDutyDouble(HttpDouble):
    path = "/v2/enqueue"

    def __init__(self) -> None:
        super().__init__()
        self.incidents: dict[str, str] = {}  # dedup_key -> triggered | acknowledged | resolved

    def handle(self, path: str, body: Any) -> tuple[int, str, str]:
        if path != self.path:
            return 404, "application/json", json.dumps({"status": "not found"})
        errors = _pd_errors(body)
        if errors:
            return 400, "application/json", json.dumps({"status": "invalid event", "message": "Event object is "
                                                        "invalid", "errors": errors})
        key = body.get("dedup_key")
        with self._lock:
            self.received.append(body)
            action = body["event_action"]
            if action == "trigger" or key in self.incidents:
                self.incidents[key] = {"trigger": "triggered", "acknowledge": "acknowledged",
                                       "resolve": "resolved"}[action]
        return 202, "application/json", json.dumps({"status": "success", "message": "Event processed",
                                                    "dedup_key": key})


def _pd_errors(body: Any) -> list[str]:
    if not isinstance(body, dict):
        return ["Event object must be a JSON object."]
    errors = []
    if not isinstance(body.get("routing_key"), str) or len(body["routing_key"]) != 32:
        errors.append("'routing_key' must be a 32 character string.")
    action = body.get("event_action")
    if action not in ("trigger", "acknowledge", "resolve"):
        errors.append("'event_action' must be one of trigger, acknowledge, resolve.")
    key = body.get("dedup_key")
    if key is not None and (not isinstance(key, str) or len(key) > 255):
        errors.append("'dedup_key' must be a string of at most 255 characters.")
    if action in ("acknowledge", "resolve") and not key:
        errors.append("'dedup_key' is required for acknowledge and resolve.")
    if action == "trigger":
        p = body.get("payload")
        if not isinstance(p, dict):
            return [*errors, "'payload' is missing or not an object."]
        if not isinstance(p.get("summary"), str) or not 1 <= len(p["summary"]) <= 1024:
            errors.append("'payload.summary' is required (at most 1024 characters).")
        if not isinstance(p.get("source"), str) or not p["source"]:
            errors.append("'payload.source' is required.")
        if p.get("severity") not in ("critical", "error", "warning", "info"):
            errors.append("'payload.severity' must be one of critical, error, warning, info.")
        if "timestamp" in p:
            try:
                datetime.fromisoformat(str(p["timestamp"]).replace("Z", "+00:00"))
            except ValueError:
                errors.append("'payload.timestamp' must be an ISO 8601 timestamp.")
        if "custom_details" in p and not isinstance(p["custom_details"], dict | str):
            errors.append("'payload.custom_details' must be an object.")
    return errors


def _handler(double: HttpDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            fault = double._fault()
            if fault and fault[0] == "hang":
                time.sleep(fault[1])
                self.close_connection = True
                return  # nothing processed, no answer
            if fault:
                data = b"internal error"
                self.send_response(int(fault[1]))
                if int(fault[1]) == 429:
                    self.send_header("Retry-After", "1")
            else:
                try:
                    body = json.loads(raw) if "json" in self.headers.get("Content-Type", "") else None
                except json.JSONDecodeError:
                    body = None
                status, ctype, text = double.handle(self.path, body)
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler


@contextmanager
def _serve(double: HttpDouble) -> Iterator[HttpDouble]:
    with loopback_http(_handler(double)) as base:
        double.url = f"{base}{getattr(double, 'path', '')}"
        yield double


@contextmanager
def slack_double() -> Iterator[SlackDouble]:
    with _serve(SlackDouble()) as d:
        yield d  # type: ignore[misc]


@contextmanager
def pagerduty_double() -> Iterator[PagerDutyDouble]:
    with _serve(PagerDutyDouble()) as d:
        yield d  # type: ignore[misc]
