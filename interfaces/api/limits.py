"""What one request may cost the service: how large its body, how long it may take to arrive.

- `BodyLimit` (ASGI): every request body is bounded before anything parses it, on every path: the
  webhook by `WEBHOOK_MAX_BYTES`, the CLI's local analyze by `MAX_PAYLOAD_BYTES` (it carries an alert
  file), everything else by `API_MAX_BODY_BYTES`. The body is read up to the limit and replayed to the
  app, so a chunked upload without Content-Length is limited as well: 413.
- `deadline_protocol()` (uvicorn's HTTP protocol, httptools or h11): a request's headers and body must arrive within
  `API_READ_TIMEOUT_SECONDS` of its first byte (or of the connection opening), else the connection is
  closed (408 when no request started yet). uvicorn itself only times out idle keep-alive connections,
  so a client dribbling a byte at a time would hold a connection, and a worker slot, for ever.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from interfaces.api.metrics import ServiceMetrics

Scope = MutableMapping[str, Any]
Send = Callable[[Any], Awaitable[None]]
_TIMEOUT_BODY = b'{"detail": "request not received within API_READ_TIMEOUT_SECONDS"}'
_TIMED_OUT = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
              b"content-length: " + str(len(_TIMEOUT_BODY)).encode() + b"\r\n\r\n" + _TIMEOUT_BODY)


class BodyLimit:
    """413 for a body over its path's limit, before anything parses it."""

    def __init__(self, app: Any, default: int, paths: dict[str, tuple[int, str]], metrics: ServiceMetrics,
                 counted: str) -> None:
        self.app = app
        self.default = default
        self.paths = paths  # path -> (limit, the setting that sets it)
        self.metrics = metrics
        self.counted = counted  # the path whose refusals are counted as rejected alerts

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]], send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, setting = self.paths.get(scope["path"], (self.default, "API_MAX_BODY_BYTES"))
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._too_large(scope, send, limit, setting)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > limit:
                await self._too_large(scope, send, limit, setting)
                return
            if not message.get("more_body"):
                break
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, send: Send, limit: int, setting: str) -> None:
        if scope["path"] == self.counted:
            self.metrics.intake.rejected("too_large")
        payload = json.dumps({"detail": f"body larger than {setting} ({limit} bytes)"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"connection", b"close"),
                                (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})


class _ReadDeadline:
    """The deadline itself, shared by both HTTP implementations: armed when a connection opens and when
    a request starts, disarmed once the whole request is in. On expiry the connection is closed; a 408
    is written first when not even the request line and headers arrived (the app never saw a request)."""

    seconds: float
    _deadline: asyncio.TimerHandle | None = None
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    logger: logging.Logger

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_pending(self) -> bool:
        raise NotImplementedError

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._headers_pending():
            self.logger.info("closing a connection that sent no complete request in %s s", self.seconds)
            self.transport.write(_TIMED_OUT)
        else:  # the body is still dribbling in: the app sees a disconnect and stops waiting for it
            self.logger.info("closing a connection whose request body did not arrive in %s s", self.seconds)
        self.transport.close()


class DeadlineH11Protocol(_ReadDeadline, H11Protocol):
    """h11 (no parser callbacks): the connection's state says whether a request is arriving."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # a connection that never sends a request does not stay open either

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch()  # a pipelined request may have started

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _watch(self) -> None:
        state = self.conn.their_state
        if state is h11.SEND_BODY or (state is h11.IDLE and self.conn.trailing_data[0]):
            self._arm()
        elif state is not h11.IDLE:
            self._disarm()  # the request is in: the keep-alive timeout takes over after the response

    def _headers_pending(self) -> bool:
        return self.conn.their_state is h11.IDLE and self.conn.our_state is h11.IDLE


def deadline_protocol(seconds: float) -> type[asyncio.Protocol]:
    """The HTTP protocol class uvicorn would choose (httptools when installed, else h11), with the
    read deadline (for `uvicorn.Config(http=...)`)."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # httptools is optional
        return type("DeadlineH11", (DeadlineH11Protocol,), {"seconds": seconds})

    class DeadlineHttpToolsProtocol(_ReadDeadline, HttpToolsProtocol):
        """httptools: its parser's callbacks say when a request starts, has its headers, and ends."""

        _headers_done = False

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_message_begin(self) -> None:
            self._headers_done = False
            self._arm()
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            self._headers_done = True
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._disarm()
            super().on_message_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _headers_pending(self) -> bool:
            return not self._headers_done

    DeadlineHttpToolsProtocol.seconds = seconds
    return DeadlineHttpToolsProtocol
