"""More processes accepting webhooks on `aiops serve`'s port: `--intake-processes N` (API_INTAKE_PROCESSES).

One Python process answers a few thousand webhook requests a second on one core; Alertmanager's
traffic can use the others. `aiops serve` binds the listening socket itself and starts N intake
processes that accept connections on that same socket. Which process takes a new connection is
balanced (`BalancedAccept`): each counts its open connections in shared memory, and one that holds more
than another leaves a waiting connection to the others for a moment. Without it the first process
awake at a burst of connections takes most of them (an event loop accepts all it can at once) and keeps
them as long as they are kept alive: 48 of Alertmanager's 64 on one process and 16 on the other, a
different split each run. One socket, not a socket per process (SO_REUSEPORT): a process that stalls
(a long pause, SIGSTOP) leaves its share of new connections to the others instead of holding them in
its own queue, and no other program of the same user can bind the port alongside. An intake process serves `POST /webhook/alertmanager` exactly as the service does (the same
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
import os
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


class BalancedAccept:
    """Accepts connections on the listening socket that every process of one `aiops serve` shares, so that
    they end up spread evenly over the processes (`connections`: the open connections of each process,
    a slot each, in shared memory; this process writes only its own).

    Every process is woken by a new connection. One that holds more connections than another process
    steps back for `DEFER` seconds, so that the other accepts it; if the connection is still waiting then
    (the other process is busy or stopped), it takes it after all: a connection waits at most that long.
    One connection per wake-up, then the counts are looked at again. It stands in uvicorn's list of
    servers (`close`, `wait_closed`): on shutdown it stops accepting, as uvicorn's own server would."""

    DEFER = 0.002

    def __init__(self, sock: socket.socket, connections: Any, slot: int,
                 protocol: Callable[[], asyncio.Protocol]) -> None:
        self.sock, self.connections, self.slot, self.protocol = sock, connections, slot, protocol
        self.sock.setblocking(False)
        self.loop = asyncio.get_running_loop()
        self.connections[slot] = 0  # a restarted intake process: its predecessor's connections died with it
        self._deferred = False
        self._resume: asyncio.TimerHandle | None = None
        self._closed = False
        self.loop.add_reader(self.sock.fileno(), self._readable)

    def _readable(self) -> None:
        if not self._deferred and self.connections[self.slot] > min(self.connections):
            self._pause(self.DEFER, deferred=True)  # another process holds fewer: its turn
            return
        self._deferred = False
        try:
            conn, _ = self.sock.accept()
        except (BlockingIOError, InterruptedError):  # another process took it
            return
        except OSError as exc:  # out of file descriptors, or the like: try again a little later
            log.warning("accepting a connection failed: %s", exc)
            self._pause(0.1, deferred=False)
            return
        self.connections[self.slot] += 1
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.loop.create_task(self._serve(conn))

    async def _serve(self, conn: socket.socket) -> None:
        try:
            await self.loop.connect_accepted_socket(self.protocol, conn)
        except Exception as exc:  # noqa: BLE001 - the peer went away before the transport existed
            self.closed_one()
            conn.close()
            log.debug("an accepted connection could not be served: %s", exc)

    def closed_one(self) -> None:
        self.connections[self.slot] -= 1

    def _pause(self, seconds: float, *, deferred: bool) -> None:
        self.loop.remove_reader(self.sock.fileno())
        self._deferred = deferred
        self._resume = self.loop.call_later(seconds, self._listen_again)

    def _listen_again(self) -> None:
        self._resume = None
        if not self._closed:
            self.loop.add_reader(self.sock.fileno(), self._readable)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._resume is not None:
            self._resume.cancel()
        self.loop.remove_reader(self.sock.fileno())

    async def wait_closed(self) -> None:
        return None


class BalancedServer(uvicorn.Server):
    """A uvicorn server that, once `balance` named the listening socket shared with the other processes of
    one `aiops serve`, accepts on it through `BalancedAccept` (as process `slot` of `connections`). The
    `sockets` given to `serve` are served as uvicorn does (the service's private Unix socket); with no
    shared socket it is uvicorn's server as is."""

    listener: socket.socket | None = None
    connections: Any = None
    slot = 0

    def balance(self, listener: socket.socket, connections: Any, slot: int) -> None:
        self.listener, self.connections, self.slot = listener, connections, slot

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        if self.listener is None:
            await super().startup(sockets=sockets)
            return
        await super().startup(sockets=sockets or [])
        if self.should_exit:
            return
        listener = self.listener
        accept: BalancedAccept | None = None

        class Counted(self.config.http_protocol_class):  # type: ignore[name-defined,misc]
            def connection_lost(self, exc: Exception | None) -> None:
                try:
                    super().connection_lost(exc)
                finally:
                    if accept is not None:
                        accept.closed_one()

        def protocol() -> asyncio.Protocol:
            return Counted(config=self.config, server_state=self.server_state,  # type: ignore[no-any-return]
                           app_state=self.lifespan.state)

        accept = BalancedAccept(listener, self.connections, self.slot, protocol)
        self.servers.append(accept)  # type: ignore[arg-type]


class IntakeProcesses:
    """The N intake processes of one `aiops serve`, and the private socket they reach it by."""

    def __init__(self, settings: Settings, sock: socket.socket, count: int, counters: IntakeCounters,
                 target: Callable[[Settings, socket.socket, str, Any, Any, int], None]) -> None:
        """`target(settings, sock, owner_path, shared counters, connections, slot)` runs one intake process
        (it must be importable by name: the processes are spawned); `connections` is `BalancedAccept`'s,
        slot 0 the service's."""
        self.settings, self.sock, self.count, self.counters, self.target = settings, sock, count, counters, target
        self.connections = get_context("spawn").RawArray("i", 1 + count)
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
            args=(self.settings, self.sock, self.owner_path, self.counters.shared, self.connections, slot))
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


class ServiceServer(BalancedServer):
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


def pin_to_one_cpu(slot: int) -> int | None:
    """Intake process `slot` (1..N) on one CPU of those it may use (the N-th after the first: the service
    process, unpinned, has the rest to itself when N is below the CPUs), so its three threads (the event
    loop, the queue's, the admissions') hand the GIL to each other without waking a thread on another
    CPU. Measured with one intake process on 2 CPUs: ~15 % less CPU per one-alert request and ~20 % more
    requests a second (docs/benchmarks.md). The CPU, or None where affinity cannot be set."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            return None
        cpu = cpus[slot % len(cpus)]
        os.sched_setaffinity(0, {cpu})  # before any thread starts: they inherit it
    except (AttributeError, OSError):  # not Linux, or not allowed: it runs unpinned, as before
        return None
    return cpu


def die_with_parent() -> None:
    """PR_SET_PDEATHSIG: a SIGKILLed service takes its intake processes with it."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
