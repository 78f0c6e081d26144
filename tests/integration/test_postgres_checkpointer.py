"""DATABASE_URL switches the checkpointer and the incident registry to a real PostgreSQL server;
a plan paused by one runner is approved by another (fresh connections, as after a restart)."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest

from graphs.runner import IncidentRunner
from interfaces.toolbox_factory import make_toolbox_factory, replay_spec
from tests.conftest import recording
from tools.replay.recording import load_recorded

pytestmark = pytest.mark.integration

PG_ADMIN = os.environ.get("AIOPS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def database_url():
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"no PostgreSQL at {PG_ADMIN}: {exc}")
    name = f"aiops_test_{uuid.uuid4().hex[:8]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()


def test_pause_and_resume_on_postgres(settings, database_url):
    pg = settings.model_copy(update={"DATABASE_URL": database_url})
    rec = load_recorded(recording("crashloop"))

    async def first():
        async with IncidentRunner(pg, make_toolbox_factory(pg)) as runner:
            return await runner.analyze(rec.webhook, replay_spec(recording("crashloop"), pg))

    async def second(plan_id):
        async with IncidentRunner(pg, make_toolbox_factory(pg)) as runner:
            listed = runner.registry.list()
            return listed, await runner.decide(plan_id, approver="alice", decision="approve")

    paused = asyncio.run(first())
    assert paused.status.value == "awaiting_approval"
    assert not (settings.AIOPS_DATA_DIR / "checkpoints.sqlite").exists()  # nothing went to the SQLite default
    listed, done = asyncio.run(second(paused.plan_id))
    assert [r.incident_id for r in listed] == [paused.incident_id]
    assert done.status.value == "resolved"
