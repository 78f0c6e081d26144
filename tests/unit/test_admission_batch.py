"""Group commit of the webhook's admissions (`service.admission_batch`) over a real correlation store
(SQLite in a temporary data dir): what each request is told, that it is committed when it is told, in
arrival order, and that a batch whose commit fails fails every request in it."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.responses import JSONResponse

import store.sql
from agents.correlation import Correlator
from core.models import AlertmanagerWebhook
from core.settings import Settings, load_settings
from service.admission import Admission
from service.admission_batch import AdmissionBatch, AdmissionFailed
from service.intake import AlertJob
from store.registry import IncidentRegistry
from tests.conftest import recording


def notification(n: int, host: str = "web-1") -> AlertmanagerWebhook:
    """A firing disk alert on `host`, a notification of its own (group key, fingerprint): the first on a
    host opens an incident, the next ones on the same host join it."""
    body = json.loads(recording("disk-full").read_text())["webhook"]
    alert = body["alerts"][0]
    alert = {**alert, "labels": {**alert["labels"], "instance": f"{host}:9100", "host": host, "n": str(n)},
             "fingerprint": f"fp-{host}-{n}"}
    body.update(groupKey=f'{{}}:{{n="{n}"}}', alerts=[alert])
    return AlertmanagerWebhook.model_validate(body)


def items(count: int, host: str = "web-1") -> list[tuple[AlertmanagerWebhook, str]]:
    out = []
    for n in range(count):
        webhook = notification(n, host)
        job, _ = AlertJob.from_webhook(webhook)
        out.append((webhook, job.incident_id))
    return out


def settings(tmp_path: Path) -> Settings:
    return load_settings(AIOPS_DATA_DIR=tmp_path, ENABLE_MEMORY=False, LLM_MODE="rules")


def admission(tmp_path: Path) -> Admission:
    s = settings(tmp_path)
    return Admission(Correlator(s), IncidentRegistry(s))


def committed(tmp_path: Path) -> dict[str, str]:
    """notification -> incident, as another connection reads it (only what was committed)."""
    with sqlite3.connect(tmp_path / "incidents.sqlite") as db:
        return dict(db.execute("SELECT notification_id, incident_id FROM aiops_corr_notifications").fetchall())


async def admit_concurrently(batch: AdmissionBatch, work: list[tuple[AlertmanagerWebhook, str]]) -> list[Any]:
    return await asyncio.gather(*(batch.admit([item]) for item in work), return_exceptions=True)


def test_concurrent_admissions_are_one_transaction_in_arrival_order_and_committed_when_answered(tmp_path: Path) -> None:
    a = admission(tmp_path / "batched")
    batch = AdmissionBatch(a.admit_many)
    work = items(20)

    async def run() -> list[Any]:
        answers = await admit_concurrently(batch, work)
        # answered means committed: another connection already reads every landing
        assert committed(tmp_path / "batched") == {incident_id: answer[0]
                                                   for (_, incident_id), answer in zip(work, answers, strict=True)}
        return answers

    answers = asyncio.run(run())
    batch.close()
    assert batch.batches == 1 and batch.admitted == 20  # all twenty arrived while none was committing
    first = work[0][1]
    assert answers == [[first]] * 20  # the first opened the incident, the rest (same host) joined it
    # exactly what admitting them one at a time decides
    one_by_one = admission(tmp_path / "sequential")
    assert [[one_by_one.admit(webhook, incident_id)] for webhook, incident_id in work] == answers


def test_a_request_s_parts_go_in_one_batch_and_later_arrivals_in_the_next(tmp_path: Path) -> None:
    a = admission(tmp_path)
    batch = AdmissionBatch(a.admit_many)
    web, db = items(2, "web-2"), items(1, "db-1")

    async def run() -> tuple[list[str], list[str]]:
        first = asyncio.ensure_future(batch.admit(web + db))  # one request of three parts
        for _ in range(2):  # its task queues the three and starts the flush, which hands them to the thread
            await asyncio.sleep(0)
        second = await batch.admit(items(1, "db-1"))  # a re-send of the db part: lands where it landed
        return await first, second

    first, second = asyncio.run(run())
    batch.close()
    assert first == [web[0][1], web[0][1], db[0][1]] and second == [db[0][1]]
    assert batch.batches == 2


def test_a_failed_commit_fails_every_admission_of_the_batch_and_records_none(tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store.sql, "BUSY_TIMEOUT_SECONDS", 0.3)
    a = admission(tmp_path)
    batch = AdmissionBatch(a.admit_many)
    work = items(5)
    holder = sqlite3.connect(tmp_path / "incidents.sqlite", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock past the busy timeout

    answers = asyncio.run(admit_concurrently(batch, work))
    assert all(isinstance(answer, AdmissionFailed) for answer in answers), answers
    assert "locked" in str(answers[0])
    holder.execute("ROLLBACK")
    holder.close()
    assert committed(tmp_path) == {}

    # the store is usable again (the failed batch left no transaction open): the re-sent ones land
    answers = asyncio.run(admit_concurrently(batch, work))
    batch.close()
    assert answers == [[work[0][1]]] * 5 and len(committed(tmp_path)) == 5


def test_an_admission_that_raises_inside_a_batch_is_undone_alone(tmp_path: Path) -> None:
    s = settings(tmp_path)
    correlator = Correlator(s)
    (kept, kept_id), (undone, undone_id) = items(1, "web-3")[0], items(1, "web-4")[0]
    with correlator.batch():
        correlator.correlate(kept, kept_id, defer_join=True)
        with pytest.raises(RuntimeError), correlator.batch():  # a savepoint of the outer transaction
            correlator.correlate(undone, undone_id, defer_join=True)
            raise RuntimeError("this notification's admission failed half-way")
    assert committed(tmp_path) == {kept_id: kept_id}


def test_the_202_body_is_the_bytes_jsonresponse_renders() -> None:
    for content in ({"accepted": 1, "queued": True, "incident_id": "inc-0123456789ab", "message_id": "17",
                     "incident_ids": ["inc-0123456789ab", "inc-ba9876543210"]},
                    {"accepted": 20, "queued": True, "incident_id": "inc-é", "message_id": "1-0", "incident_ids": []}):
        assert orjson.dumps(content) == JSONResponse(content).body
