"""The correlation index and the self-healing history on a real PostgreSQL (DATABASE_URL): the same
semantics as SQLite, including the exclusive transaction (advisory lock) across connections."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from agents.correlation import Correlator, Topology
from store.autonomy import SelfHealingStore
from tests.integration.test_postgres_checkpointer import database_url  # noqa: F401 - fixture
from tests.unit.test_correlation import TOPOLOGY, hook

pytestmark = pytest.mark.integration
T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def test_correlation_on_postgres(settings, database_url):  # noqa: F811
    pg = settings.model_copy(update={"DATABASE_URL": database_url})
    corr = Correlator(pg, topology=Topology(TOPOLOGY), clock=lambda: T0)
    assert not corr.correlate(hook("PostgresDown", service="pg-primary"), "inc-db").joined
    c = corr.correlate(hook("HighErrorRate", service="checkout"), "inc-2")
    assert c.joined_to == "inc-db" and c.reason == "topology: checkout calls pg-primary"
    assert corr.resolve(hook("HighErrorRate", status="resolved", service="checkout")) == (["inc-db"], [])
    assert corr.resolve(hook("PostgresDown", status="resolved", service="pg-primary")) == (["inc-db"], ["inc-db"])
    related, total = corr.store.related("inc-db")
    assert total == 1 and related[0].status == "resolved"

    opened = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        c = Correlator(pg, topology=Topology(TOPOLOGY), clock=lambda: T0 + timedelta(minutes=1))
        for j in range(10):
            out = c.correlate(hook("SlowQueries", service="payments", instance=f"p-{i}-{j}"), f"inc-{i}-{j}")
            if not out.joined:
                with lock:
                    opened.append(out.incident_id)
        c.store.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(opened) == 1
    corr.store.close()


def test_self_healing_history_and_switch_on_postgres(settings, database_url):  # noqa: F811
    pg = settings.model_copy(update={"DATABASE_URL": database_url})
    store = SelfHealingStore(pg)

    def allow(history, switch):  # type: ignore[no-untyped-def]
        return (len(history) < 2 and switch.enabled, "r", "ok")

    for i in range(3):
        store.decide_and_record(incident_id=f"inc-{i}", plan_id=f"plan-{i}", fingerprint="fp", now=T0,
                                actions=[("cleanup_rotated_logs", "h", "path=/var/log")], decide=allow)
    history = store.history(T0)
    assert [h.plan_id for h in history] == ["plan-0", "plan-1"]
    assert [h.key for h in history] == [("cleanup_rotated_logs", "h", "path=/var/log")] * 2
    store.set_verified("plan-1", False)
    assert [h.verified for h in store.history(T0)] == [None, False]
    assert store.set_switch(False, "alice", T0).enabled is False
    assert SelfHealingStore(pg).switch().changed_by == "alice"
    store.close()
