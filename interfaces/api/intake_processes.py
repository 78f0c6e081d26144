"""More processes accepting webhooks on `aiops serve`'s port: `--intake-processes N` (API_INTAKE_PROCESSES).

One Python process answers a few thousand webhook requests a second on one core; Alertmanager's
traffic can use the others. `aiops serve` binds the listening socket itself and starts N intake
processes that accept connections on that same socket (the kernel hands each new connection to one of
them). An intake process serves `POST /webhook/alertmanager` exactly as the service does (the same
`WebhookIntake`, `BodyLimit`, `accept_webhook`: parse, durable enqueue on the shared queue, 202) and
passes every other request, unchanged and streamed (server-sent events too), to the service process
over a private Unix socket: only the service process owns the data dir's stores, runs the workers and
decides plans. The webhook's figures (`IntakeCounters`) live in shared memory, so the service's
/metrics counts every process's requests. The intake process's app is `interfaces.api.app.create_intake_app`
(its entry point `intake_main`); this module is the plumbing: the shared socket, the processes, the proxy.

An intake process dies with the service (PR_SET_PDEATHSIG) and is restarted if it dies alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import shutil
import signal
import socket
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from multiprocessing import get_context
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from core.settings import Settings
from interfaces.api.metrics import IntakeCounters

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Any]]
Send = Callable[[Any], Awaitable[None]]
# Not passed on (RFC 9110 7.6.1). Host is: the service sees the request as the client sent it (origin checks).
_HOP_BY_HOP = {b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te", b"trailer",
               b"transfer-encoding", b"upgrade"}
# The address of the client an intake process passes a request on for: the service's own Unix socket has
# no peer address, and who may call what depends on it (anonymous callers only from loopback).
CLIENT_HEADER = b"x-aiops-intake-client"


def listen(host: str, port: int) -> socket.socket:
    """The service's listening socket, bound before the processes that share it start."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class IntakeProcesses:
    """The N intake processes of one `aiops serve`, and the private socket they reach it by."""

    def __init__(self, settings: Settings, sock: socket.socket, count: int, counters: IntakeCounters,
                 target: Callable[[Settings, socket.socket, str, Any, int], None]) -> None:
        """`target(settings, sock, owner_path, shared counters, slot)` runs one intake process (it must be
        importable by name: the processes are spawned)."""
        self.settings, self.sock, self.count, self.counters, self.target = settings, sock, count, counters, target
        self._dir = Path(tempfile.mkdtemp(prefix="aiops-serve-"))  # 0700: only this user reaches the service
        self.owner_path = str(self._dir / "service.sock")
        self.owner_sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.owner_sock.bind(self.owner_path)
        self.owner_sock.listen(512)
        self._procs: dict[int, BaseProcess] = {}
        self._stopping = False

    def start(self) -> None:
        for slot in range(1, self.count + 1):
            self._spawn(slot)

    def _spawn(self, slot: int) -> None:
        proc = get_context("spawn").Process(  # type: ignore[attr-defined]
            target=self.target, name=f"aiops-intake-{slot}", daemon=True,
            args=(self.settings, self.sock, self.owner_path, self.counters.shared, slot))
        proc.start()
        self._procs[slot] = proc

    async def supervise(self) -> None:
        """Restart an intake process that died while the service runs (its slot's counts are kept)."""
        while not self._stopping:
            await asyncio.sleep(1.0)
            for slot, proc in list(self._procs.items()):
                if not self._stopping and not proc.is_alive():
                    log.warning("intake process %s exited with %s; starting it again", proc.name, proc.exitcode)
                    self._spawn(slot)

    def stop(self, grace: float = 10.0) -> None:
        self._stopping = True
        for proc in self._procs.values():
            if proc.is_alive():
                proc.terminate()  # SIGTERM: uvicorn finishes the requests in progress
        for proc in self._procs.values():
            proc.join(grace)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
        self.owner_sock.close()
        shutil.rmtree(self._dir, ignore_errors=True)


class ServiceServer(uvicorn.Server):
    """`aiops serve`'s uvicorn server, with a first step in its shutdown. After a SIGTERM uvicorn re-raises
    the signal as soon as `serve()` returns, so what must stop with the service (its intake processes:
    first, so that nothing is accepted on the port while the service drains) stops inside the shutdown."""

    before_shutdown: Callable[[], Awaitable[None]] | None = None

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.before_shutdown is not None:
            await self.before_shutdown()
        await super().shutdown(sockets)


class IntakeClient:
    """The service side of `OwnerProxy`: a request that arrived on the service's Unix socket (reachable by
    its intake processes only: a 0700 directory) is from the client the intake process names; a TCP
    request keeps the peer uvicorn saw, whatever headers it sends."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server")
        if scope["type"] == "http" and scope.get("client") is None and server and server[1] is None:
            named = dict(scope.get("headers") or []).get(CLIENT_HEADER)
            if named:
                host, _, port = named.decode("latin-1").rpartition(":")
                scope["client"] = (host, int(port) if port.isdigit() else 0)
        await self.app(scope, receive, send)


class OwnerProxy:
    """Every request an intake process does not serve itself, passed to the service process as is."""

    def __init__(self, owner_path: str) -> None:
        self.client = httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=owner_path),
                                        base_url="http://aiops", timeout=httpx.Timeout(None, connect=5.0))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        disconnected = asyncio.Event()

        async def body() -> AsyncIterator[bytes]:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    disconnected.set()
                    return
                yield message.get("body", b"")
                if not message.get("more_body"):
                    return

        path = scope.get("raw_path") or scope["path"].encode()
        url = path.decode("latin-1") + (f"?{scope['query_string'].decode('latin-1')}" if scope["query_string"] else "")
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in _HOP_BY_HOP and k.lower() != CLIENT_HEADER]
        client = scope.get("client")
        if client:  # as uvicorn saw it in this process (X-Forwarded-For already applied by its rules)
            headers.append((CLIENT_HEADER, f"{client[0]}:{client[1]}".encode("latin-1")))
        request = self.client.build_request(scope["method"], url, headers=headers, content=body())
        try:
            response = await self.client.send(request, stream=True)
        except httpx.TransportError as exc:
            await _json(send, 503, f"the aiops service process is not answering ({type(exc).__name__}); retry later")
            return
        try:
            await send({"type": "http.response.start", "status": response.status_code,
                        "headers": [(k, v) for k, v in response.headers.raw if k.lower() not in _HOP_BY_HOP]})
            await self._relay(response, receive, send, disconnected)
        finally:
            await response.aclose()

    async def _relay(self, response: httpx.Response, receive: Receive, send: Send, disconnected: asyncio.Event) -> None:
        """Stream the answer until it ends or the client goes away (an event stream never ends by itself)."""

        async def client_gone() -> None:
            while not disconnected.is_set():
                if (await receive())["type"] == "http.disconnect":
                    return

        watcher = asyncio.create_task(client_gone())
        try:
            async for chunk in response.aiter_raw():
                if watcher.done():
                    return
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher


async def _json(send: Send, status: int, detail: str) -> None:
    import json

    payload = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                            (b"retry-after", b"1")]})
    await send({"type": "http.response.body", "body": payload})


def die_with_parent() -> None:
    """PR_SET_PDEATHSIG: a SIGKILLed service takes its intake processes with it."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
