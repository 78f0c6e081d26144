"""State stores stopped for real (redis-server, a private PostgreSQL): the product degrades, loses nothing.

The scenarios live in `scenarios_stores.py` (the degradation benchmark runs the same ones and prints
the times); these tests assert on behaviour only: what answered, the breaker's state, what was kept.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.faults.scenarios_stores import (
    postgres_stopped,
    redis_stopped_cache,
    redis_stopped_notify,
    redis_stopped_notify_restart,
    redis_stopped_queue,
)
from tests.servers import ServerUnavailable

pytestmark = pytest.mark.integration


def _need(binary: str) -> None:
    if shutil.which(binary) is None:
        pytest.skip(f"{binary} is not installed")


def test_redis_stopped_cache_runs_uncached(tmp_path: Path) -> None:
    _need("redis-server")
    d = redis_stopped_cache(tmp_path)
    assert d.dependency == "redis"
    assert d.details["answer"] == "computed"  # the fallback: computed fresh
    assert d.details["status"] == "awaiting_approval" and d.details["plan"]  # the incident run completed
    assert d.details["model_calls_fresh"] == 2  # nothing came from the dead cache: the model was asked
    assert d.details["cache_available"] is False
    assert d.details["cache_errors"] == 1  # one failed call, then Redis is skipped during the back-off
    assert len(d.details["warnings"]) == 1 and "continuing WITHOUT cache" in d.details["warnings"][0]
    assert d.breaker_state == "closed" and d.details["breaker_failures"] == 1  # charged to the shared breaker


def test_redis_stopped_queue_refuses_then_resumes(tmp_path: Path) -> None:
    _need("redis-server")
    d = redis_stopped_queue(tmp_path)
    assert d.details["statuses"] == [503]  # every alert offered during the outage was refused, none lost
    assert d.details["breaker_while_down"] == "open"
    assert any("circuit 'redis' is open" in line for line in d.details["details"])
    assert all(ra is not None and int(ra) >= 1 for ra in d.details["retry_after"])
    assert d.details["health_while_down"] == 503
    # after the restart: intake accepted the re-sent alert, the worker resumed and finished it
    assert d.details["incident_after"] != "running"
    assert d.details["health_after"].startswith("redis, depth 0")
    assert d.breaker_state == "closed"


def test_postgres_stopped_503_then_resumes(tmp_path: Path) -> None:
    _need("initdb")
    try:
        d = postgres_stopped(tmp_path)
    except ServerUnavailable as exc:
        pytest.skip(str(exc))
    assert d.details["health_status"] == 503 and d.details["health_postgres"]["status"] == "error"
    # queued (durable) until the worker found the store down, then refused: nothing accepted was lost
    statuses = d.details["webhook_statuses"]
    assert statuses[-1] == 503 and set(statuses[:-1]) <= {202}
    assert "postgres" in d.details["webhook_detail"] and d.details["webhook_retry_after"] is not None
    assert d.details["breaker_while_down"] == "open"
    assert d.details["approve_status"] == 503 and d.details["approve_retry_after"] is not None
    assert "postgres" in d.details["approve_detail"]
    assert d.details["listing_status"] == 503
    # after the restart: the alert queued during the outage was processed, not dead-lettered
    assert set(d.details["queued_during_outage"]) <= {d.details["crashloop_incident"]}
    assert d.details["crashloop_status"] != "running" and d.details["dead_letters"] == 0
    assert d.details["healthy_after"] and d.breaker_state == "closed"
    # the plan paused before the outage is still pending: the refused approval did not consume it
    assert d.details["plan_after"] == 200
    assert dict(d.details["incidents_after"])[d.details["first"][0]] == "awaiting_approval"


def test_redis_stopped_notify_keeps_and_delivers_once(tmp_path: Path) -> None:
    _need("redis-server")
    d = redis_stopped_notify(tmp_path)
    assert d.details["queued_while_down"] == 0 and d.details["kept"] == len(d.details["events"]) > 0
    # every event delivered once after the restart, none dropped, none twice
    assert d.details["received"] == [e.replace("_", " ") for e in d.details["events"]]
    assert d.details["slack_attempts"] == len(d.details["events"])
    assert d.details["depth_after"] == [0] and d.breaker_state == "closed"


def test_redis_down_backlog_survives_a_restart_and_is_delivered_once(tmp_path: Path) -> None:
    _need("redis-server")
    d = redis_stopped_notify_restart(tmp_path)
    assert d.details["kept"] == d.details["spilled"] == len(d.details["events"]) > 0  # on disk, not only in memory
    assert d.details["loaded"] == d.details["kept"]  # the next process found them
    assert d.details["received"] == [e.replace("_", " ") for e in d.details["events"]]  # each once, in order
    assert d.details["slack_attempts"] == len(d.details["events"])
    assert d.details["spill_left"] == 0  # queued, so no longer pending
