"""State stores down: Redis (the response cache, the alert queue) and Postgres (the incident store).

Each scenario stops the real server under the product, in process (the API through Starlette's
TestClient, the runner called directly), and measures from the first call after the fault to the
product's degraded answer: an uncached fresh analysis, a 503 with Retry-After that makes Alertmanager
re-send, a paused worker that resumes. Nothing accepted may be lost, and nothing is done twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from core import resilience
from core.settings import Settings, load_settings
from tests.conftest import LOCAL_CLIENT
from tests.faults.scenario import Degradation, degradation

ALICE = "alice-token-0123456789"
HEADERS = {"Authorization": f"Bearer {ALICE}"}
REPO = Path(__file__).resolve().parents[2]


def _settings(tmp: Path, **extra: Any) -> Settings:
    """Small breaker and back-off figures, so an outage opens and recovers within a second or two."""
    base: dict[str, Any] = {"AIOPS_DATA_DIR": tmp / "var", "VERIFY_SETTLE_SECONDS": 0, "ENABLE_MEMORY": False,
                            "LLM_MODE": "rules", "CB_FAILURE_THRESHOLD": 3, "CB_TIMEOUT": 1,
                            "CB_SUCCESS_THRESHOLD": 2, "RETRY_BASE_DELAY": 0.01, "RETRY_MAX_DELAY": 0.2,
                            "WORKER_CLAIM_IDLE_SECONDS": 30, "API_TOKENS": f"alice:{ALICE}", "APPROVERS": "alice",
                            "REDIS_URL": None, "DATABASE_URL": None, "PROMETHEUS_URL": None,
                            "ELASTICSEARCH_URL": None, "OPENAI_API_KEY": None, "OPENAI_BASE_URL": None}
    settings = load_settings(_env_file=None, **{**base, **extra})
    resilience.configure(settings)
    return settings


def _recording(name: str) -> Path:
    return REPO / "tools" / "replay" / "incidents" / f"{name}.json"


def _webhook(name: str) -> dict[str, Any]:
    return dict(json.loads(_recording(name).read_text())["webhook"])


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


# ------------------------------------------------------------------------------- redis: cache --
@degradation("redis-stopped-cache")
def redis_stopped_cache(tmp: Path) -> Degradation:
    """The analysis cache's Redis is killed: the next incident run computes its answers fresh."""
    from memory.cache import cached_call
    from service.runner import IncidentRunner
    from service.toolbox_factory import make_toolbox_factory, replay_spec
    from tests.conftest import scripted_chain
    from tests.scripted_model import crashloop_model
    from tests.servers import start_redis
    from tools.replay.recording import load_recorded

    rec = load_recorded(_recording("crashloop"))
    with start_redis() as redis:
        s = _settings(tmp, REDIS_URL=redis.url)

        spec = replay_spec(_recording("crashloop"), s)

        async def analyze(factory: Any) -> tuple[Any, float]:
            async with IncidentRunner(s, factory) as runner:
                start = time.perf_counter()
                out = await runner.analyze(rec.webhook, spec)
                took = _ms(start)
                assert out.plan_id is not None
                await runner.decide(out.plan_id, approver="alice", decision="reject")  # closes it
                return out, took

        async def fresh() -> str:
            return "computed"

        warm_model = crashloop_model()
        _, uncached_ms = asyncio.run(analyze(make_toolbox_factory(s, llm=scripted_chain(warm_model))))
        fresh_model = crashloop_model()
        factory = make_toolbox_factory(s, llm=scripted_chain(fresh_model))
        cache = factory(spec).cache  # the one cache of this "process" (what the run below uses)
        assert cache is not None
        redis.stop(kill=True)
        handler = _Warnings()
        logging.getLogger("memory.cache").addHandler(handler)
        try:
            # the first cached lookup after the fault: the miss and the freshly computed answer
            start = time.perf_counter()
            answer = asyncio.run(cached_call(cache, "nl", {"q": "why is cart down"}, fresh))
            fallback_ms = _ms(start)
            out, run_ms = asyncio.run(analyze(factory))  # a whole incident run on the dead cache
        finally:
            logging.getLogger("memory.cache").removeHandler(handler)
    b = resilience.breaker("redis")
    stats = cache.stats()
    return Degradation(
        dependency="redis", fault="redis-server killed (SIGKILL) under the response cache",
        behaviour="cache bypassed after one failed call (one warning, then no Redis calls during the "
                  "back-off); answers are computed fresh and the incident run completes",
        fallback_ms=fallback_ms, breaker_state=b.state,
        details={"status": out.report.status.value, "plan": bool(out.report.plan),
                 "model_calls_fresh": len(fresh_model.requests), "model_calls_warm": len(warm_model.requests),
                 "cache_errors": sum(k["errors"] for k in stats.values()),
                 "cache_available": getattr(cache, "available", None), "warnings": handler.lines,
                 "answer": answer, "breaker_failures": b.total_failures, "run_ms": round(run_ms, 1),
                 "uncached_healthy_run_ms": round(uncached_ms, 1)})


# ------------------------------------------------------------------------------- redis: queue --
def _wait(predicate: Any, timeout: float = 60.0, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout}s")


def _incident(c: Any, incident_id: str, *, settled: bool = True) -> dict[str, Any] | None:
    resp = c.get("/api/v1/incidents", headers=HEADERS)
    if resp.status_code != 200:
        return None
    row = next((r for r in resp.json()["incidents"] if r["incident_id"] == incident_id), None)
    if row is None or (settled and row["status"] == "running"):
        return None
    return dict(row)


@degradation("redis-stopped-queue")
def redis_stopped_queue(tmp: Path) -> Degradation:
    """The alert queue's Redis is killed under the API and its worker, then started again."""
    from fastapi.testclient import TestClient

    from interfaces.api.app import create_app
    from tests.servers import start_redis

    with start_redis() as redis:
        s = _settings(tmp, REDIS_URL=redis.url)
        with TestClient(create_app(s, worker=True, concurrency=1), raise_server_exceptions=False,
                        client=LOCAL_CLIENT) as c:
            before = c.post("/webhook/alertmanager", json=_webhook("disk-full"))
            assert before.status_code == 202, before.text
            _wait(lambda: _incident(c, before.json()["incident_id"]))

            redis.stop(kill=True)
            start = time.perf_counter()
            first = c.post("/webhook/alertmanager", json=_webhook("crashloop"))
            fallback_ms = _ms(start)
            refused = [first]
            while resilience.breaker("redis").state != "open" and len(refused) < 50:
                refused.append(c.post("/webhook/alertmanager", json=_webhook("crashloop")))
            open_ms: list[float] = []
            for _ in range(5):  # once open: refused without touching the network
                t = time.perf_counter()
                refused.append(c.post("/webhook/alertmanager", json=_webhook("crashloop")))
                open_ms.append(_ms(t))
            state_open = resilience.breaker("redis").state
            health = c.get("/health")

            redis.start()  # the same port, empty (no persistence): the re-sent alert must still arrive
            start = time.perf_counter()
            accepted = _wait(lambda: (r := c.post("/webhook/alertmanager", json=_webhook("crashloop"))).status_code
                             == 202 and r)
            resumed_ms = _ms(start)
            after = _wait(lambda: _incident(c, accepted.json()["incident_id"]))
            _wait(lambda: resilience.breaker("redis").state == "closed", timeout=30)
            depth = _wait(lambda: (h := c.get("/health").json())["status"] == "healthy" and h)
            metrics = c.get("/metrics").text
    b = resilience.breaker("redis")
    return Degradation(
        dependency="redis", fault="redis-server killed (SIGKILL) under the webhook and the worker, then restarted",
        behaviour="webhook answers 503 + Retry-After (Alertmanager re-sends), worker backs off; after the "
                  "restart intake and worker resume and the re-sent alert is processed",
        fallback_ms=fallback_ms, breaker_state=b.state,
        details={"statuses": sorted({r.status_code for r in refused}), "refused": len(refused),
                 "retry_after": [r.headers.get("retry-after") for r in refused[-5:]],
                 "details": sorted({r.json().get("detail", "")[:80] for r in refused}),
                 "breaker_while_down": state_open, "open_503_ms_median": round(statistics.median(open_ms), 2),
                 "health_while_down": health.status_code, "resumed_ms": round(resumed_ms, 1),
                 "incident_after": after["status"], "health_after": depth["components"]["queue"]["detail"],
                 "rejected_metric": [line for line in metrics.splitlines()
                                     if line.startswith("aiops_alerts_rejected_total{")]})


# ------------------------------------------------------------------------------------ postgres --
@degradation("postgres-stopped")
def postgres_stopped(tmp: Path) -> Degradation:
    """A private PostgreSQL (registry + checkpoints) is stopped (immediate: connections cut) under the
    API and its worker, then started again."""
    from fastapi.testclient import TestClient

    from interfaces.api.app import create_app
    from tests.servers import start_postgres

    with start_postgres() as pg:
        s = _settings(tmp, DATABASE_URL=pg.url)
        with TestClient(create_app(s, worker=True, concurrency=1), raise_server_exceptions=False,
                        client=LOCAL_CLIENT) as c:
            first = c.post("/webhook/alertmanager", json=_webhook("disk-full"))
            assert first.status_code == 202, first.text
            row = _wait(lambda: _incident(c, first.json()["incident_id"]))
            report = c.get(f"/api/v1/incidents/{row['incident_id']}", headers=HEADERS).json()
            plan = report["plan"]

            pg.stop("immediate")
            start = time.perf_counter()
            health = c.get("/health")
            health_ms = _ms(start)
            answers: list[Any] = []
            while len(answers) < 200:  # queued (durable) until the worker finds the store down; then 503
                answers.append(c.post("/webhook/alertmanager", json=_webhook("crashloop")))
                if answers[-1].status_code == 503:
                    break
                time.sleep(0.02)
            fallback_ms = _ms(start)
            state_down = resilience.breaker("postgres").state
            approve = c.post(f"/api/v1/plans/{plan['id']}/approve", headers=HEADERS,
                             json={"plan_hash": plan["content_hash"]})
            listing = c.get("/api/v1/incidents", headers=HEADERS)
            queued_ids = {a.json()["incident_id"] for a in answers if a.status_code == 202}

            pg.start()
            start = time.perf_counter()
            accepted = _wait(lambda: (r := c.post("/webhook/alertmanager", json=_webhook("crashloop"))).status_code
                             == 202 and r, timeout=60)
            resumed_ms = _ms(start)
            crash = _wait(lambda: _incident(c, accepted.json()["incident_id"]), timeout=60)
            _wait(lambda: resilience.breaker("postgres").state == "closed", timeout=30)
            healthy = _wait(lambda: c.get("/health").json()["status"] == "healthy", timeout=30)
            dead = c.get("/api/v1/dead-letters", headers=HEADERS).json()["dead_letters"]
            still_pending = c.get(f"/api/v1/plans/{plan['id']}", headers=HEADERS)
            rows = c.get("/api/v1/incidents", headers=HEADERS).json()["incidents"]
    b = resilience.breaker("postgres")
    return Degradation(
        dependency="postgres", fault="PostgreSQL stopped (pg_ctl -m immediate) under the API and the worker, "
                                     "then started again",
        behaviour="/health unhealthy (postgres error); webhook and decisions answer 503 + Retry-After; the "
                  "worker keeps its message and waits; after the restart the queued alert is processed",
        fallback_ms=fallback_ms, breaker_state=b.state,
        details={"first": (row["incident_id"], row["status"]), "health_status": health.status_code, "health_ms": round(health_ms, 1),
                 "health_postgres": health.json()["components"]["postgres"],
                 "webhook_statuses": [a.status_code for a in answers], "queued_during_outage": sorted(queued_ids),
                 "webhook_retry_after": answers[-1].headers.get("retry-after"),
                 "webhook_detail": answers[-1].json().get("detail"), "breaker_while_down": state_down,
                 "approve_status": approve.status_code, "approve_detail": approve.json().get("detail"),
                 "approve_retry_after": approve.headers.get("retry-after"), "listing_status": listing.status_code,
                 "resumed_ms": round(resumed_ms, 1), "crashloop_status": crash["status"],
                 "crashloop_incident": crash["incident_id"], "healthy_after": bool(healthy),
                 "dead_letters": len(dead), "plan_after": still_pending.status_code,
                 "incidents_after": sorted((r["incident_id"], r["status"]) for r in rows)})


# ------------------------------------------------------------------------------- redis: outbox --
@contextmanager
def _notify_over_redis(tmp: Path) -> Iterator[tuple[Any, Any, Settings]]:
    """A real redis-server for the outbox's queues and ledger, and the Slack double it delivers to."""
    from tests.servers import start_redis
    from tests.sim.webhooks import slack_double

    with start_redis() as redis, slack_double() as slack:
        yield redis, slack, _settings(tmp, REDIS_URL=redis.url, ENABLE_SLACK_NOTIFICATIONS=True,
                                      SLACK_WEBHOOK_URL=slack.url, NOTIFY_BACKOFF_SECONDS=0.05,
                                      NOTIFY_BACKOFF_MAX_SECONDS=0.2, NOTIFY_TIMEOUT=2.0)


async def _analyze_with_redis_killed(s: Settings, redis: Any) -> Any:
    """The crash-loop incident run to its outcome, with Redis killed as it starts."""
    from service.runner import IncidentRunner
    from service.toolbox_factory import make_toolbox_factory, replay_spec
    from tools.replay.recording import load_recorded

    rec = load_recorded(_recording("crashloop"))
    async with IncidentRunner(s, make_toolbox_factory(s)) as runner:
        redis.stop(kill=True)
        return await runner.analyze(rec.webhook, replay_spec(_recording("crashloop"), s))


async def _deliver_until_done(outbox: Any, expected: int) -> float:
    """Run the service's delivery loop until the backlog is queued and `expected` notifications went
    out (30 s at most), give a duplicate time to show, stop; returns ms until done."""
    delivery = asyncio.create_task(outbox.run())
    start = time.perf_counter()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (outbox.backlog or len(outbox.delivered) < expected):
        await asyncio.sleep(0.02)
    done_ms = _ms(start)
    await asyncio.sleep(0.3)  # a duplicate, if any, would go out now
    await outbox.stop()
    await delivery
    return round(done_ms, 1)


def _slack_titles(slack: Any) -> list[str]:
    return [b["blocks"][0]["text"]["text"].split(":")[0] for b in slack.received]


@degradation("redis-stopped-notify")
def redis_stopped_notify(tmp: Path) -> Degradation:
    """The notification queue's Redis is killed while an incident run publishes its events, then
    started again: the events are kept, queued and delivered once each, none dropped."""
    from interfaces.notify.outbox import Outbox

    with _notify_over_redis(tmp) as (redis, slack, s):

        async def main() -> dict[str, Any]:
            outbox = Outbox.from_settings(s)
            out = await _analyze_with_redis_killed(s, redis)
            start = time.perf_counter()
            queued = await outbox.publish_outcome(out)  # the outcome again: kept, not raised or dropped
            publish_ms = _ms(start)
            kept = len(outbox.backlog)
            redis.start()
            delivered_ms = await _deliver_until_done(outbox, kept)
            depth = [(await q.stats()).depth for q in outbox.queues.values()]
            await outbox.close()
            return {"publish_ms": publish_ms, "queued_while_down": queued, "kept": kept, "depth_after": depth,
                    "delivered_ms": delivered_ms, "events": [n.event.value for n in outbox_events(out)]}

        result = asyncio.run(main())
        received = _slack_titles(slack)
    return Degradation(
        dependency="redis", fault="redis-server killed (SIGKILL) while an incident's notifications are published, "
                                  "then restarted",
        behaviour="the events are kept in the outbox's backlog (one warning), queued once Redis answers and "
                  "delivered once each",
        fallback_ms=result["publish_ms"], breaker_state=resilience.breaker("redis").state,
        details={**result, "received": received, "slack_attempts": slack.attempts})


@degradation("redis-stopped-notify-restart")
def redis_stopped_notify_restart(tmp: Path) -> Degradation:
    """Redis is down while an incident's notifications are published and the process then exits
    before Redis is back: a new process (a new outbox on the same data dir) queues and delivers them."""
    from interfaces.notify.outbox import Outbox

    with _notify_over_redis(tmp) as (redis, slack, s):

        async def first_process() -> dict[str, Any]:
            outbox = Outbox.from_settings(s)
            out = await _analyze_with_redis_killed(s, redis)
            await outbox.publish_outcome(out)
            # the process exits here, Redis still down: nothing delivered, no close() (a crash)
            return {"kept": len(outbox.backlog), "spilled": outbox.spill.count(),
                    "events": [n.event.value for n in outbox_events(out)]}

        async def second_process() -> dict[str, Any]:
            redis.start()
            outbox = Outbox.from_settings(s)
            loaded = len(outbox.backlog)
            delivered_ms = await _deliver_until_done(outbox, loaded)
            left = outbox.spill.count()
            await outbox.close()
            return {"loaded": loaded, "delivered_ms": delivered_ms, "spill_left": left}

        first = asyncio.run(first_process())
        second = asyncio.run(second_process())
        received = _slack_titles(slack)
    return Degradation(
        dependency="redis", fault="redis-server killed while notifications are published, and the process exits "
                                  "before Redis is back",
        behaviour="the backlog is on disk (notify-pending.jsonl); the next process queues it once Redis answers "
                  "and delivers each once",
        fallback_ms=second["delivered_ms"], breaker_state=resilience.breaker("redis").state,
        details={**first, **second, "received": received, "slack_attempts": slack.attempts})


def outbox_events(outcome: Any) -> list[Any]:
    from interfaces.notify.events import events_for

    return list(events_for(outcome.report))
