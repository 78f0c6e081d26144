"""`GET /health`: a real, bounded check of every configured component, all at once.

Unhealthy (503) when the queue cannot be reached or refuses writes (a full disk, Redis over maxmemory),
or the incident store (Postgres, when `DATABASE_URL` is set) cannot be reached: Alertmanager's webhooks
are refused then. Degraded
when another configured component fails (the service still takes alerts; runs will have less evidence).
A component whose circuit breaker is open is an error even if the probe gets through: until the
breaker lets calls through again, every caller takes its fallback (e.g. diagnosis without metrics).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlparse

import httpx

from core import resilience
from core.settings import Settings
from interfaces.api.schemas import ComponentHealth
from interfaces.notify.outbox import SPILL_FILE
from memory.failures import PENDING_FILE
from store.pending import count_lines
from store.queue import MessageQueue

TIMEOUT = 2.0
Check = Callable[[], Awaitable[str]]


async def _http(url: str, headers: dict[str, str] | None = None) -> str:
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        resp = await client.get(url, headers=headers or {})
    if resp.status_code >= 400:
        raise RuntimeError(f"HTTP {resp.status_code} from {url}")
    return f"HTTP {resp.status_code}"


async def _tcp(host: str, port: int) -> str:
    _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), TIMEOUT)
    writer.close()
    return f"{host}:{port} reachable"


def component_checks(settings: Settings, queue: MessageQueue) -> dict[str, Check | None]:
    """name -> check (None: not configured)."""

    async def check_queue() -> str:
        await queue.ping()
        await queue.writable()  # answering reads is not enough: a full disk refuses every alert
        stats = await queue.stats()
        return f"{stats.backend}, depth {stats.depth}, oldest {stats.oldest_age_seconds:.0f}s"

    async def check_redis() -> str:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(settings.REDIS_URL or "", socket_timeout=TIMEOUT,
                                         socket_connect_timeout=TIMEOUT)
        try:
            await client.ping()
        finally:
            await client.aclose()
        return "PONG"

    async def check_postgres() -> str:
        import psycopg

        conn = await psycopg.AsyncConnection.connect(settings.DATABASE_URL or "", connect_timeout=int(TIMEOUT))
        try:
            await conn.execute("SELECT 1")
        finally:
            await conn.close()
        return "SELECT 1 ok"

    async def check_prometheus() -> str:
        return await _http(f"{(settings.PROMETHEUS_URL or '').rstrip('/')}/-/ready")

    async def check_elasticsearch() -> str:
        headers = {"Authorization": f"ApiKey {settings.ELASTICSEARCH_API_KEY}"} if settings.ELASTICSEARCH_API_KEY else {}
        return await _http((settings.ELASTICSEARCH_URL or "").rstrip("/") + "/", headers)

    async def check_milvus() -> str:
        uri = settings.milvus_uri
        if "://" not in uri:  # milvus-lite: a file this process opens on first use, nothing to reach
            parent = Path(uri).expanduser().parent
            if not parent.exists() or not parent.is_dir():
                raise RuntimeError(f"data dir {parent} does not exist")
            return f"milvus-lite file {uri}"
        parsed = urlparse(uri)
        return await _tcp(parsed.hostname or "127.0.0.1", parsed.port or 19530)

    async def check_openai() -> str:
        base = (settings.OPENAI_BASE_URL or "https://api.openai.com/v1").rstrip("/")
        headers = {"Authorization": f"Bearer {settings.OPENAI_API_KEY}"} if settings.OPENAI_API_KEY else {}
        return await _http(f"{base}/models", headers)

    async def check_ollama() -> str:
        return await _http(f"{(settings.OLLAMA_BASE_URL or '').rstrip('/')}/api/tags")

    rules = settings.LLM_MODE == "rules"
    return {
        "queue": check_queue,
        "redis": check_redis if settings.REDIS_URL else None,
        "postgres": check_postgres if settings.DATABASE_URL else None,
        "prometheus": check_prometheus if settings.PROMETHEUS_URL else None,
        "elasticsearch": check_elasticsearch if settings.ELASTICSEARCH_URL else None,
        "milvus": check_milvus if settings.ENABLE_MEMORY else None,
        "llm_openai": check_openai if not rules and (settings.OPENAI_API_KEY or settings.OPENAI_BASE_URL) else None,
        "llm_ollama": check_ollama if not rules and settings.ENABLE_LLM_FALLBACK and settings.OLLAMA_BASE_URL
        else None,
    }


async def check_all(settings: Settings, queue: MessageQueue) -> tuple[str, dict[str, ComponentHealth]]:
    checks = component_checks(settings, queue)
    breakers = {b.name: b for b in resilience.all_breakers()}

    async def probe(check: Check) -> ComponentHealth:
        try:
            return ComponentHealth(status="ok", detail=await asyncio.wait_for(check(), TIMEOUT + 1))
        except Exception as exc:  # noqa: BLE001 - every failure is a finding
            text = str(exc).splitlines()[0][:200] if str(exc) else ""
            return ComponentHealth(status="error", detail=f"{type(exc).__name__}: {text}".rstrip(": "))

    async def run(name: str, check: Check | None) -> ComponentHealth:
        if check is None:
            return ComponentHealth(status="not configured")
        health = await probe(check)
        b = breakers.get(name.replace("_", "-"))  # "llm_openai" is the breaker "llm-openai"
        if b is None or b.state == "closed":
            return health
        last = f", last error {b.last_error[:160]}" if b.last_error else ""
        if b.state == "open":
            return ComponentHealth(status="error", detail=f"circuit breaker open (callers take their fallback"
                                                          f"{last}); probe: {health.detail}"[:400])
        return health.model_copy(update={"detail": f"{health.detail} (circuit breaker half-open{last})"[:400]})

    results = await asyncio.gather(*(run(n, c) for n, c in checks.items()))
    components = dict(zip(checks, results, strict=True))
    _add_backlogs(settings, components)
    # Unhealthy: alerts are refused (503) - the queue is down, or the incident store they need is.
    if components["queue"].status != "ok" or components["postgres"].status == "error":
        status = "unhealthy"
    elif any(c.status == "error" for c in components.values()):
        status = "degraded"
    else:
        status = "healthy"
    return status, components



def _add_backlogs(settings: Settings, components: dict[str, ComponentHealth]) -> None:
    """Say what waits on disk for a dependency that was down: incidents not yet in memory (Milvus or
    the embeddings endpoint), notifications not yet queued (the queue's store)."""

    for name, file, what in (("milvus", PENDING_FILE, "incident(s) waiting to be stored in memory"),
                             ("queue", SPILL_FILE, "notification(s) waiting to be queued")):
        path = settings.AIOPS_DATA_DIR / file
        n = count_lines(path)
        if n and name in components:
            c = components[name]
            components[name] = c.model_copy(update={"detail": f"{c.detail}; {n} {what} ({path})".lstrip("; ")})
