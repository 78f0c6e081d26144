"""The webhook with its admissions group-committed (`service.admission_batch`), in-process (the real app,
runner, SQLite queue and stores): concurrent notifications are answered 202 only once committed, and when
the batch's commit fails every one of them is a 503 (Alertmanager re-sends), never a 202, with nothing
lost: each is in the queue, and the re-send is deduplicated there."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

import store.sql
from core.settings import load_settings
from interfaces.api.app import create_app
from tests.conftest import recording
from tests.servers import pg_database

pytestmark = pytest.mark.integration

TOKEN = "webhook-token-0123456789"


def body(n: int) -> bytes:
    hook = json.loads(recording("disk-full").read_text())["webhook"]
    alert = hook["alerts"][0]
    hook.update(groupKey=f'{{}}:{{n="{n}"}}', alerts=[{**alert, "labels": {**alert["labels"], "n": str(n)},
                                                       "fingerprint": f"fp-{n}"}])
    return json.dumps(hook).encode()


async def post_all(tmp_path: Path, count: int, *, locked: bool, database_url: str | None = None,
                   ) -> tuple[list[httpx.Response], list[httpx.Response], Any]:
    settings = load_settings(AIOPS_DATA_DIR=tmp_path, ENABLE_MEMORY=False, LLM_MODE="rules", WEBHOOK_TOKEN=TOKEN,
                             DATABASE_URL=database_url)
    app = create_app(settings, worker=False)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://aiops") as client:
        async def send_all() -> list[httpx.Response]:
            return list(await asyncio.gather(*(client.post("/webhook/alertmanager", content=body(n), headers=headers)
                                               for n in range(count))))

        holder = None
        if locked:  # another process holds the incident store's write lock past the busy timeout
            holder = sqlite3.connect(tmp_path / "incidents.sqlite", isolation_level=None)
            holder.execute("BEGIN IMMEDIATE")
        first = await send_all()
        if holder is not None:
            holder.execute("ROLLBACK")
            holder.close()
        again = await send_all()  # Alertmanager's re-send
        svc = app.state.svc
        return first, again, (await svc.queue.stats(), svc.admissions)


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_concurrent_webhooks_share_commits_and_are_answered_once_committed(tmp_path: Path, store: str) -> None:
    with pg_database() if store == "postgres" else contextlib.nullcontext() as url:
        first, again, (stats, admissions) = asyncio.run(post_all(tmp_path, 30, locked=False, database_url=url))
        if url:
            import psycopg

            with psycopg.connect(url) as db:
                landed = db.execute("SELECT COUNT(*) FROM aiops_corr_notifications").fetchone()
        else:
            with sqlite3.connect(tmp_path / "incidents.sqlite") as db:
                landed = db.execute("SELECT COUNT(*) FROM aiops_corr_notifications").fetchone()
    assert [r.status_code for r in first + again] == [202] * 60
    assert admissions.batches < 60  # concurrent requests shared transactions
    opened = first[0].json()["incident_id"]
    assert {r.json()["incident_id"] for r in first + again} == {opened}  # one host: one incident, joined
    assert [r.json()["message_id"] for r in again] == [r.json()["message_id"] for r in first]  # deduplicated
    assert stats.depth == 30
    assert landed is not None and landed[0] == 30  # committed, as another connection reads it


def test_a_failed_batch_commit_is_a_503_for_each_of_its_requests_and_loses_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store.sql, "BUSY_TIMEOUT_SECONDS", 0.3)
    first, again, (stats, _) = asyncio.run(post_all(tmp_path, 10, locked=True))
    assert [r.status_code for r in first] == [503] * 10  # none is told 202
    assert all(r.headers["retry-after"] == "1" and "incident store unavailable" in r.json()["detail"] for r in first)
    assert stats.depth == 10  # each stored durably before its admission: the re-send is deduplicated
    assert [r.status_code for r in again] == [202] * 10
    assert len({r.json()["message_id"] for r in again}) == 10
