"""The FastAPI application and `aiops serve`.

    aiops serve [--host H] [--port P] [--no-worker] [--concurrency N]

One process: the API, and (unless `--no-worker`) the workers that consume the `alerts` queue. It owns
the data dir's embedded stores for its life (see `service.discovery`), so the CLI on the same
data dir goes through this API. Every error is `{"detail": "<one line>"}`: validation errors are
summarised to their first problem, and an unexpected exception is logged here and answered 500 without
a stack trace.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import json
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.events import configure_logging
from core.models import AlertmanagerWebhook
from core.resilience import DependencyUnavailable
from core.settings import Settings, get_settings
from interfaces.api.auth import Authenticator
from interfaces.api.docs import install_docs
from interfaces.api.exposure import choose_binding
from interfaces.api.intake_processes import IntakeClient
from interfaces.api.limits import BodyLimit, deadline_protocol
from interfaces.api.metrics import IntakeCounters, LatencyMiddleware, ServiceMetrics
from interfaces.api.routes import Service, router
from interfaces.api.unavailable import retry_after
from interfaces.api.webhook import WEBHOOK_PATH, WebhookIntake
from interfaces.console.routes import install_console
from service.admission import Admission
from service.discovery import ServiceRunning, announce, find_service
from service.intake import QUEUE, AlertJob
from store.errors import StoreError
from store.pg import charge
from store.queue import QueueUnavailable, open_queue

if TYPE_CHECKING:  # imported by the lifespan: an intake process never loads the graph
    from service.runner import IncidentRunner

log = logging.getLogger(__name__)
LOCAL_ANALYZE_PATH = "/api/v1/local/analyze"


# FastAPI's native OpenTelemetry instrumentation asks the global OpenTelemetry providers on every request
# whether any is configured (15 us, a twentieth of a one-alert webhook); aiops configures none (its
# figures are /metrics), so it is off (FastAPI before 0.165 has none).
_NO_OTEL: Any = ({"telemetry": {"tracing": False, "metrics": False, "logs": False}}
                 if "telemetry" in inspect.signature(FastAPI).parameters else {})


def _version() -> str:
    try:
        return version("aiops")
    except PackageNotFoundError:
        return "0.1.0"


def _start_watcher(settings: Settings, queue: Any) -> Callable[[], Awaitable[None]]:
    """Start `AnomalyWatcher.run` as a task; returns the coroutine function that stops it."""
    import asyncio

    from service.watch import build_watcher

    async def sink(hook: AlertmanagerWebhook) -> None:
        job, key = AlertJob.from_webhook(hook)
        await queue.enqueue(job.model_dump(mode="json"), key=key, dedupe=True)

    watcher = build_watcher(settings, sink)  # WatchNotConfigured (no backend) stops start-up with one line
    stop = asyncio.Event()
    task = asyncio.create_task(watcher.run(stop), name="aiops-watch")

    async def shutdown() -> None:
        stop.set()
        await task

    return shutdown


def create_app(settings: Settings | None = None, *, worker: bool = True, concurrency: int | None = None,
               announce_url: str | None = None, intake: IntakeCounters | None = None) -> FastAPI:
    """The app. With `announce_url`, it claims the data dir for the CLI (what `aiops serve` does);
    `intake` holds the webhook's figures when intake processes share them (slot 0 is this process)."""
    settings = settings or get_settings()
    metrics = ServiceMetrics(intake)
    _ = settings.api_users  # a malformed API_TOKENS fails at start-up, not at the first request

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from service.runner import IncidentRunner
        from service.toolbox_factory import make_toolbox_factory
        from service.worker import Worker

        async with contextlib.AsyncExitStack() as stack:
            local_token = None
            if announce_url:
                local_token = stack.enter_context(announce(settings, announce_url))
            runner = await stack.enter_async_context(IncidentRunner(settings, make_toolbox_factory(settings)))
            queue = open_queue(settings, QUEUE)
            stack.push_async_callback(queue.close)
            await _check_embedded_queue(queue)
            service = Service(settings=settings, app_service=runner, queue=queue,
                              auth=Authenticator(settings, local_token), metrics=metrics, version=_version(),
                              split=runner.split, admit_many=runner.admission.admit_many)
            if worker:
                service.worker = Worker(settings, runner, queue, concurrency=concurrency or settings.WORKER_CONCURRENCY,
                                        on_outcome=metrics.observe_outcome)
                service.worker.start()
                stack.push_async_callback(service.worker.stop)
            await _notifications(stack, settings, runner, service)
            if settings.watch_services:  # the anomaly watcher raises into the same queue as webhooks
                stack.push_async_callback(_start_watcher(settings, queue))
            app.state.svc = service
            # Everything imported and built so far lives as long as the process: move it out of the
            # collector's reach, so full collections (tens of ms over langgraph/pandas/torch objects)
            # stop showing up in the webhook's tail latency.
            gc.collect()
            gc.freeze()
            yield

    app = FastAPI(title="aiops", version=_version(), lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="AIOps service: Alertmanager intake, incidents, approvals, events.",
                  **_NO_OTEL)
    app.include_router(router)
    install_docs(app)  # /docs and /redoc from local assets, no CDN
    install_console(app)  # the web console at /ui/
    _document_webhook_body(app)
    _error_handlers(app, settings)
    app.add_middleware(WebhookIntake)  # the webhook's hot path, inside the body limit and the timing
    # Every body is bounded (interfaces/api/limits.py): the CLI's local analyze carries a whole alert file.
    app.add_middleware(BodyLimit, default=settings.API_MAX_BODY_BYTES, metrics=metrics,  # type: ignore[arg-type]
                       paths=_body_limits(settings), counted=WEBHOOK_PATH)
    app.add_middleware(LatencyMiddleware, metrics=metrics, skip=WEBHOOK_PATH)  # type: ignore[arg-type]
    app.add_middleware(IntakeClient)  # requests passed on by intake processes: the client they came from
    return app


async def _check_embedded_queue(queue: Any) -> None:
    """The embedded queue is a file in the data dir: one that cannot be opened (damaged) stops start-up
    with one line. A queue server (Redis) that is down is an outage instead: the service starts, answers
    503 and /health says so until it is back."""
    if queue.backend != "sqlite":
        return
    try:
        await queue.ping()
    except QueueUnavailable as exc:
        raise StoreError(str(exc)) from None


async def _notifications(stack: contextlib.AsyncExitStack, settings: Settings, runner: IncidentRunner,
                         service: Service) -> None:
    """The notification outbox (every enabled channel) and, when TELEGRAM_TOKEN is set, the Telegram bot:
    both run inside the service, which owns the data dir."""
    import asyncio

    from interfaces.notify.outbox import Outbox

    outbox = Outbox.from_settings(settings)
    outbox.attach(runner)
    outbox.on_attempt = service.metrics.count_notification
    service.outbox = outbox
    stack.push_async_callback(outbox.close)
    if outbox.channels:
        delivery = asyncio.create_task(outbox.run(), name="notify")

        async def stop_delivery() -> None:
            await outbox.stop()
            await asyncio.gather(delivery, return_exceptions=True)

        stack.push_async_callback(stop_delivery)
    if not settings.TELEGRAM_TOKEN:
        return
    from core.llm import build_llm_chain
    from interfaces.telegram.bot import TelegramBot

    chat = None
    chain = build_llm_chain(settings)
    if chain.providers:
        from graphs.chat import ChatAgent
        from interfaces.telegram.ops import on_demand_webhook

        chat = ChatAgent(runner, chain, settings, on_demand_webhook)
    bot = TelegramBot(settings, runner, outbox=outbox, chat=chat)
    service.telegram = bot
    async def polling_task() -> None:
        try:
            await bot.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the API keeps serving; the log says why there is no bot
            log.error("telegram bot stopped: %s", exc)

    polling = asyncio.create_task(polling_task(), name="telegram")

    async def stop_bot() -> None:
        await bot.stop()
        await asyncio.gather(polling, return_exceptions=True)

    stack.push_async_callback(stop_bot)


def _document_webhook_body(app: FastAPI) -> None:
    """The webhook handler reads its body itself (`core.payload.parse_webhook`); its schema is still
    the `AlertmanagerWebhook` model's, published under components for clients and fuzzers."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        body = AlertmanagerWebhook.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
        for name, definition in body.pop("$defs", {}).items():
            components.setdefault(name, definition)
        components["AlertmanagerWebhook"] = body
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _detail(exc: RequestValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "invalid request"
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
    msg = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    more = f" ({len(errors)} problems)" if len(errors) > 1 else ""
    return f"{where}: {msg}{more}"[:400]


def _error_handlers(app: FastAPI, app_settings: Settings) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # A body that is not JSON at all is a 400; JSON of the wrong shape is a 422.
        status = 400 if any(e.get("type") == "json_invalid" for e in exc.errors()) else 422
        return JSONResponse({"detail": _detail(exc)}, status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        return JSONResponse({"detail": detail.splitlines()[0] if detail else "error"}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(DependencyUnavailable)
    async def dependency_down(request: Request, exc: DependencyUnavailable) -> JSONResponse:
        # A store (Postgres) is down or its breaker open: 503 with when to try again, not a traceback.
        log.warning("%s %s: %s", request.method, request.url.path, _first_line(exc))
        line = _first_line(exc)
        detail = line if line.startswith(exc.dependency) else f"{exc.dependency} unavailable: {line}"
        return JSONResponse({"detail": f"{detail}; retry later"},
                            status_code=503, headers={"Retry-After": str(retry_after(exc.dependency))})

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        if app_settings.DATABASE_URL:
            down = charge(exc)  # the checkpointer's own connection broke (Postgres stopped under it)
            if down is not None:
                return await dependency_down(request, down)
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": f"internal error ({type(exc).__name__}); see the service log"},
                            status_code=500)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


def _body_limits(settings: Settings) -> dict[str, tuple[int, str]]:
    """The paths whose bodies have a limit of their own (the rest: API_MAX_BODY_BYTES)."""
    return {WEBHOOK_PATH: (settings.WEBHOOK_MAX_BYTES, "WEBHOOK_MAX_BYTES"),
            LOCAL_ANALYZE_PATH: (settings.MAX_PAYLOAD_BYTES + 65_536, "MAX_PAYLOAD_BYTES")}


def local_url(host: str, port: int) -> str:
    """Where a client on this machine reaches a server bound to `host`."""
    if host in ("0.0.0.0", "", "*"):
        host = "127.0.0.1"
    elif host == "::":
        host = "[::1]"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


async def serve(settings: Settings, *, host: str | None, port: int, worker: bool, concurrency: int | None,
                intake_processes: int | None = None) -> int:
    """`aiops serve`: run until SIGTERM/SIGINT, then drain the workers (and stop the intake processes,
    see `interfaces.api.intake_processes`).

    The address is `interfaces.api.exposure.choose_binding`'s (loopback unless both kinds of token are
    set; `InsecureBind` off loopback without them). The app's start-up (stores, policy, topology) runs
    here, before uvicorn, so a corrupted store or a bad file is an exception the CLI prints as one line
    (exit 2), not a traceback inside uvicorn's lifespan log."""
    import asyncio
    import signal

    import uvicorn

    from interfaces.api.intake_processes import IntakeProcesses, ServiceServer, listen
    binding = choose_binding(settings, host)
    if binding.warning:  # ALLOW_INSECURE_NO_AUTH is said at every start, loudly
        log.warning("%s", binding.warning)
        print(binding.warning, file=sys.stderr, flush=True)
    running = find_service(settings)
    if running is not None:
        raise ServiceRunning(f"another aiops serve owns {settings.AIOPS_DATA_DIR} (pid {running.pid}, {running.url})")
    extra = settings.API_INTAKE_PROCESSES if intake_processes is None else intake_processes
    counters = IntakeCounters(processes=1 + extra)
    # A signal during start-up or after uvicorn stops must not kill the process before the workers are
    # drained: uvicorn re-raises the signal it stopped on once it returns, into this handler.
    stop: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, _frame: stop.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        app = create_app(settings, worker=worker, concurrency=concurrency,
                         announce_url=local_url(binding.host, port), intake=counters)
        async with app.router.lifespan_context(app):
            config = uvicorn.Config(app, host=binding.host, port=port, log_level="debug" if settings.DEBUG else "warning",
                                    access_log=settings.DEBUG, lifespan="off", log_config=None, timeout_graceful_shutdown=30,
                                    http=deadline_protocol(settings.API_READ_TIMEOUT_SECONDS))
            server = ServiceServer(config)
            app.state.server = server  # open event streams end when it is told to exit, not 30 s later
            if stop:
                return 0
            print(f"aiops serve: http://{binding.host}:{port} (console at /ui/, docs at /docs), worker "
                  f"{'embedded x' + str(concurrency or settings.WORKER_CONCURRENCY) if worker else 'off'}"
                  f"{f', {extra} more intake processes' if extra else ''}"
                  f"{'; ' + binding.note if binding.note else ''}", flush=True)
            if not extra:
                await server.serve()
                return 0 if server.started else 1
            sock = listen(binding.host, port)
            intake = IntakeProcesses(settings, sock, extra, counters, target=intake_main)
            server.balance(sock, intake.connections, slot=0)
            intake.start()
            supervisor = asyncio.create_task(intake.supervise())
            server.before_shutdown = lambda: asyncio.to_thread(intake.stop)
            try:
                await server.serve(sockets=[intake.owner_sock])
            finally:
                supervisor.cancel()
                sock.close()
            return 0 if server.started else 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def create_intake_app(settings: Settings, owner_path: str, counters: IntakeCounters) -> FastAPI:
    """An intake process's app: the webhook's hot path in front, the service behind it for the rest.

    It runs no incident, but decides where each notification lands itself (`service.admission`, over the
    same stores as the service), so its 202 names the incident as the service's would."""
    from interfaces.api.intake_processes import OwnerProxy
    metrics = ServiceMetrics(counters)
    proxy = OwnerProxy(owner_path)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        queue = open_queue(settings, QUEUE)
        admission = Admission.over_stores(settings)
        app.state.svc = Service(settings=settings, app_service=None, queue=queue, auth=Authenticator(settings, None),
                                metrics=metrics, version=_version(),
                                split=admission.split, admit_many=admission.admit_many)
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await queue.close()
            admission.close()
            await proxy.client.aclose()

    app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None, **_NO_OTEL)
    app.mount("/", proxy)
    _error_handlers(app, settings)
    app.add_middleware(WebhookIntake)
    app.add_middleware(BodyLimit, default=settings.API_MAX_BODY_BYTES, metrics=metrics,  # type: ignore[arg-type]
                       paths=_body_limits(settings), counted=WEBHOOK_PATH)
    return app


def intake_main(settings: Settings, sock: Any, owner_path: str, shared: Any, connections: Any, slot: int) -> None:
    """One intake process (spawned by `serve` through `IntakeProcesses`): the intake app on the shared socket."""
    import os

    import uvicorn

    from interfaces.api.intake_processes import BalancedServer, die_with_parent, pin_to_one_cpu

    die_with_parent()
    if os.getppid() == 1:  # the service is already gone
        return
    if settings.API_INTAKE_PIN_CPU:
        pin_to_one_cpu(slot)
    configure_logging("DEBUG" if settings.DEBUG else settings.LOG_LEVEL or "WARNING", settings.LOG_FORMAT,
                      events_level=None if settings.DEBUG or settings.LOG_LEVEL else "INFO")
    app = create_intake_app(settings, owner_path, IntakeCounters(shared=shared, slot=slot))
    config = uvicorn.Config(app, log_level="debug" if settings.DEBUG else "warning", access_log=settings.DEBUG,
                            log_config=None,
                            lifespan="on", timeout_graceful_shutdown=10,
                            http=deadline_protocol(settings.API_READ_TIMEOUT_SECONDS))
    server = BalancedServer(config)
    server.balance(sock, connections, slot)
    server.run()
