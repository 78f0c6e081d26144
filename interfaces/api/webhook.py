"""The Alertmanager webhook's hot path: `POST /webhook/alertmanager` served ahead of FastAPI's routing.

Measured in process (cProfile over 3,000 one-alert notifications), routing, dependency resolution and
the exception middleware cost about twice the work of the request itself (parse, validate, store).
Alertmanager is the one client that sends thousands of requests a second, so its path is plain ASGI:
the same authentication (`Authenticator.webhook`), the same body limit (`BodyLimit` wraps this
middleware), the same handler (`routes.accept_webhook`) and the same one-line errors. Everything else
goes through FastAPI as before, and the route in `routes.py` stays the OpenAPI entry of this path.
Its requests are counted and timed in `IntakeCounters` (shared by every intake process).

An unexpected exception is not caught here: it reaches Starlette's server-error middleware, whose
handler is the app's `crashed` (500 with one line, logged), exactly as from a route.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse

from interfaces.api.routes import Service, accept_webhook

WEBHOOK_PATH = "/webhook/alertmanager"
_JSON = (b"content-type", b"application/json")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Any]]
Send = Callable[[Any], Awaitable[None]]


class WebhookIntake:
    def __init__(self, app: Any, path: str = WEBHOOK_PATH) -> None:
        self.app = app
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        s: Service = scope["app"].state.svc
        headers: dict[str, str] | None = None
        status = 500  # until answered: an exception below ends as the app's 500
        try:
            try:
                s.auth.webhook(Request(scope))
            except HTTPException:
                s.metrics.intake.rejected("unauthorized")
                raise
            raw = await _body(receive)
            if raw is None:
                status = 499  # the client went away before sending its body: nobody to answer
                return
            status, content = 202, await accept_webhook(s, raw)
        except HTTPException as exc:
            detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
            status, content, headers = exc.status_code, {"detail": detail.splitlines()[0] if detail else "error"}, \
                getattr(exc, "headers", None)
        finally:
            s.metrics.intake.observe(status, time.perf_counter() - started)
        if status == 202:  # the hot path's answer: JSONResponse's bytes, without building a Response
            payload = orjson.dumps(content)  # the bytes JSONResponse.render gives this content
            await send({"type": "http.response.start", "status": 202,
                        "headers": [(b"content-length", str(len(payload)).encode()), _JSON]})
            await send({"type": "http.response.body", "body": payload})
            return
        await JSONResponse(content, status_code=status, headers=headers)(scope, receive, send)


async def _body(receive: Receive) -> bytes | None:
    """The whole request body (`BodyLimit` outside this middleware has already bounded it)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)
