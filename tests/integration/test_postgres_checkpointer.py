"""DATABASE_URL switches the checkpointer and the incident registry to a real PostgreSQL server;
a plan paused by one runner is approved by another (fresh connections, as after a restart)."""

from __future__ import annotations

import asyncio

import pytest

from service.runner import IncidentRunner
from service.toolbox_factory import make_toolbox_factory, replay_spec
from tests.conftest import recording
from tests.servers import pg_database
from tools.replay.recording import load_recorded

pytestmark = pytest.mark.integration



@pytest.fixture
def database_url():
    with pg_database() as url:
        yield url


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
