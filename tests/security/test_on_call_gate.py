"""Issue 19: the on-call operations and typed approvals behind the approval gate.

- The service (reader) token and a user who is not in APPROVERS change nothing: ack, assign, comment,
  snooze and close answer 403 (no token: 401), and the incident is as it was.
- A short hash is at least 12 hex digits and a prefix of the plan's current hash: fewer digits, or digits
  of another version of the plan, are refused without consuming the plan.
- A closed incident's plan never executes: not by an approval after the close (with or without a hash,
  by any channel), not by one racing the close.
- Concurrent changes of one incident never lose an update (the registry's compare-and-set).
"""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.models import utcnow
from core.settings import load_settings
from interfaces.api.app import create_app
from service.runner import DecisionRefused, PlanWithdrawn
from service.toolbox_factory import replay_spec
from store.registry import DecisionRecord, IncidentRegistry
from tests.conftest import LOCAL_CLIENT, recording
from tests.security.decision_helpers import aiops, wait_for
from tools.replay.recording import load_recorded

pytestmark = pytest.mark.integration

ALICE, BOB, SERVICE = "alice-token-0123456789", "bob-token-0123456789ab", "service-token-0123456789"
ENV = {"API_TOKENS": f"alice:{ALICE},bob:{BOB}", "APPROVERS": "alice", "AIOPS_API_TOKEN": SERVICE}
SOON = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
OPS = [("ack", None), ("assign", {"to": "bob"}), ("comments", {"text": "mine now"}),
       ("snooze", {"until": SOON}), ("close", {"reason": "not a problem"})]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def api(tmp_path: Path) -> Any:
    settings = load_settings(AIOPS_DATA_DIR=tmp_path / "var", ENABLE_MEMORY=False, LLM_MODE="rules",
                             VERIFY_SETTLE_SECONDS=0, **ENV)
    with TestClient(create_app(settings, worker=False), client=LOCAL_CLIENT) as c:
        c.settings = settings
        yield c


def paused(api: TestClient, incident_id: str | None = None) -> tuple[Any, Path]:
    """The crashloop recording through the service's runner: a plan that waits (its fix edits the stand-in
    config, so whether it ran is a file's content)."""
    runner = api.app.state.svc.runner  # type: ignore[attr-defined]
    spec = replay_spec(recording("crashloop"), api.settings)  # type: ignore[attr-defined]
    outcome = api.portal.call(lambda: runner.analyze(load_recorded(recording("crashloop")).webhook, spec,  # type: ignore[union-attr]
                                                     incident_id=incident_id))
    assert outcome.status.value == "awaiting_approval"
    return outcome, Path(spec["standins"]) / "app-02/etc/payments-api/config.yaml"


def test_reader_and_non_approvers_change_nothing(api: TestClient) -> None:
    outcome, _ = paused(api)
    base = f"/api/v1/incidents/{outcome.incident_id}"
    for op, body in OPS:
        assert api.post(f"{base}/{op}", json=body).status_code == 401, op  # nobody
        service = api.post(f"{base}/{op}", json=body, headers=auth(SERVICE))
        assert service.status_code == 403 and "cannot approve" in service.json()["detail"], (op, service.text)
        bob = api.post(f"{base}/{op}", json=body, headers=auth(BOB))
        assert bob.status_code == 403 and "not an authorised approver" in bob.json()["detail"], (op, bob.text)
    report = api.get(base, headers=auth(SERVICE)).json()
    assert report["status"] == "awaiting_approval" and report["comments"] == []
    assert all(v is None for v in report["on_call"].values())
    trail = api.get(f"{base}/audit", headers=auth(BOB)).json()["decisions"]
    assert [(d["approver"], d["decision"], d["outcome"]) for d in trail] == [
        ("bob", op, "refused") for op in ("ack", "assign", "comment", "snooze", "close")]


@pytest.mark.parametrize(("op", "body"), [("assign", {"to": "bob; rm -rf /"}), ("assign", {"to": 7}),
                                          ("comments", {"text": "x" * 2001}), ("comments", {"text": ""}),
                                          ("snooze", {"until": "tomorrow"}), ("snooze", {"until": 1767225600}),
                                          ("snooze", {"until": "2099-01-01T00:00:00"}),  # no zone
                                          ("close", {"reason": "x", "force": True}), ("close", {})])
def test_bodies_are_strict(api: TestClient, op: str, body: dict[str, Any]) -> None:
    resp = api.post(f"/api/v1/incidents/inc-000000000000/{op}", json=body, headers=auth(ALICE))
    assert resp.status_code == 422, resp.text


def test_short_hash_needs_12_digits_of_the_current_plan(api: TestClient, tmp_path: Path) -> None:
    outcome, config = paused(api)
    approve = f"/api/v1/plans/{outcome.plan_id}/approve"
    full = outcome.plan_hash
    assert api.post(approve, json={"plan_hash": full[:11]}, headers=auth(ALICE)).status_code == 422
    other = ("f" if full[0] != "f" else "e") + full[1:12]  # 12 digits of another version of the plan
    stale = api.post(approve, json={"plan_hash": other}, headers=auth(ALICE))
    assert stale.status_code == 409 and "changed since you reviewed" in stale.json()["detail"], stale.text
    stale = api.post(approve, json={"plan_hash": full[:40] + "0" * 24}, headers=auth(ALICE))
    assert stale.status_code == 409
    # the CLI's --hash goes through the same check (the runner), and is refused the same way
    cli = aiops(tmp_path, "approve", outcome.plan_id, "--by", "alice", "--hash", full[:8], env={"APPROVERS": "alice"})
    assert cli.returncode == 2 and "at least 12 hex digits" in cli.stderr, cli.stderr
    assert "pool: max" in config.read_text()  # nothing ran, nothing was consumed
    done = api.post(approve, json={"plan_hash": full[:12], "comment": "typed"}, headers=auth(ALICE))
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "resolved" and "pool: max" not in config.read_text()
    assert done.json()["report"]["approval"]["plan_hash"] == full  # the gate checked the full hash


def test_a_closed_incidents_plan_never_executes(api: TestClient, tmp_path: Path) -> None:
    outcome, config = paused(api)
    runner = api.app.state.svc.runner  # type: ignore[attr-defined]
    closed = api.post(f"/api/v1/incidents/{outcome.incident_id}/close", json={"reason": "rolled back by hand"},
                      headers=auth(ALICE))
    assert closed.status_code == 200 and closed.json()["decision_state"] == "withdrawn"
    for attempt in ({"plan_hash": outcome.plan_hash}, {"plan_hash": outcome.plan_hash[:12]}):
        resp = api.post(f"/api/v1/plans/{outcome.plan_id}/approve", json=attempt, headers=auth(ALICE))
        assert resp.status_code == 409 and "withdrawn" in resp.json()["detail"]
    for kwargs in ({"channel": "http"}, {"channel": "cli", "after_interruption": True}):  # no hash, any channel
        with pytest.raises(DecisionRefused):
            api.portal.call(lambda kw=kwargs: runner.decide(outcome.plan_id, approver="alice", decision="approve",
                                                            **kw))
    with pytest.raises(PlanWithdrawn):
        api.portal.call(lambda: runner.decide(outcome.plan_id, approver="alice", decision="approve"))
    cli = aiops(tmp_path, "approve", outcome.plan_id, "--by", "alice", env={"APPROVERS": "alice"})
    assert cli.returncode == 2 and "withdrawn" in cli.stderr
    assert "pool: max" in config.read_text()
    report = api.get(f"/api/v1/incidents/{outcome.incident_id}", headers=auth(ALICE)).json()
    assert report["status"] == "closed" and report["executions"] == [] and report["approval"] is None
    assert report["on_call"]["closed_by"] == "alice" and report["on_call"]["close_reason"] == "rolled back by hand"


def test_an_approval_racing_the_close_never_runs_a_withdrawn_plan(api: TestClient) -> None:
    for n in range(3):
        outcome, config = paused(api, incident_id=f"inc-race{n:08d}")
        answers: dict[str, Any] = {}
        go = threading.Barrier(2)

        def call(name: str, path: str, body: dict[str, Any], go: threading.Barrier = go,
                 answers: dict[str, Any] = answers) -> None:
            go.wait()
            answers[name] = api.post(path, json=body, headers=auth(ALICE))

        threads = [threading.Thread(target=call, args=("close", f"/api/v1/incidents/{outcome.incident_id}/close",
                                                       {"reason": "race"})),
                   threading.Thread(target=call, args=("approve", f"/api/v1/plans/{outcome.plan_id}/approve",
                                                       {"plan_hash": outcome.plan_hash[:12]}))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        report = api.get(f"/api/v1/incidents/{outcome.incident_id}", headers=auth(ALICE)).json()
        withdrawn = answers["close"].status_code == 200 and answers["close"].json()["decision_state"] == "withdrawn"
        if withdrawn:  # the close won: the approval was refused and nothing ran
            assert answers["approve"].status_code == 409, answers["approve"].text
            assert report["executions"] == [] and "pool: max" in config.read_text()
        else:  # the approval won: it ran once; the close waited for it (409) or came after it finished
            assert answers["approve"].status_code == 200, answers["approve"].text
            assert len(report["executions"]) == 1
        if report["status"] != "closed":  # free the fingerprint for the next round
            assert api.post(f"/api/v1/incidents/{outcome.incident_id}/close", json={"reason": "next round"},
                            headers=auth(ALICE)).status_code == 200


def test_concurrent_changes_lose_no_update(tmp_path: Path) -> None:
    """The compare-and-set itself: of two changes read at one version, exactly one applies."""
    settings = load_settings(AIOPS_DATA_DIR=tmp_path / "var", ENABLE_MEMORY=False)
    registry = IncidentRegistry(settings)
    from store.registry import IncidentRow

    now = utcnow()
    registry.upsert(IncidentRow(incident_id="inc-1", fingerprint="f", status="escalated", title="t", mode="rules",
                                source={}, created_at=now, updated_at=now))

    def rec(who: str) -> DecisionRecord:
        return DecisionRecord(at=utcnow(), incident_id="inc-1", plan_id="-", approver=who, channel="http",
                              decision="assign", outcome="done", reason=f"assigned to {who}")

    results = [registry.change("inc-1", 0, {"assignee": who}, rec(who)) for who in ("alice", "bob")]
    assert results == [True, False]
    row = registry.get("inc-1")
    assert row is not None and row.assignee == "alice" and row.version == 1
    assert [d.approver for d in registry.decisions("inc-1")] == ["alice"]  # the loser wrote no audit line


def test_concurrent_lifecycle_calls_all_apply(api: TestClient) -> None:
    """Many people at once through the lifecycle: each change is applied to the state it was checked
    against (retrying on a lost compare-and-set), none is lost."""
    outcome, _ = paused(api)
    runner = api.app.state.svc.runner  # type: ignore[attr-defined]

    async def storm() -> None:
        await asyncio.gather(*(runner.lifecycle.comment(outcome.incident_id, f"note {i}", by="alice", channel="http")
                               for i in range(8)),
                             *(runner.lifecycle.assign(outcome.incident_id, f"user{i}", by="alice", channel="http")
                               for i in range(4)))

    api.portal.call(storm)
    row = runner.registry.get(outcome.incident_id)
    report = api.get(f"/api/v1/incidents/{outcome.incident_id}", headers=auth(ALICE)).json()
    assert sorted(c["text"] for c in report["comments"]) == sorted(f"note {i}" for i in range(8))
    assert row.version == 12 and row.assignee in {f"user{i}" for i in range(4)}


def test_a_snoozed_incident_sends_no_notifications(tmp_path: Path) -> None:
    """While snoozed, an incident's events are not queued on any channel; another incident's are (and a
    channel delivers in order, so the second one's arrival proves the first one's would have too)."""
    from tests.sim.webhooks import slack_double

    with slack_double() as slack:
        settings = load_settings(AIOPS_DATA_DIR=tmp_path / "var", ENABLE_MEMORY=False, LLM_MODE="rules",
                                 VERIFY_SETTLE_SECONDS=0, ENABLE_SLACK_NOTIFICATIONS=True, SLACK_WEBHOOK_URL=slack.url,
                                 **ENV)
        with TestClient(create_app(settings, worker=False), client=LOCAL_CLIENT) as api:
            api.settings = settings  # type: ignore[attr-defined]

            def about(incident_id: str) -> list[str]:
                return [t for t in (json.dumps(b) for b in slack.received) if incident_id in t]

            first, _ = paused(api, incident_id="inc-snoozed00001")
            wait_for(lambda: any("plan_awaiting_approval" in t for t in about(first.incident_id)), 30,
                     "the first incident's notifications, queued before the snooze")
            before = len(about(first.incident_id))
            soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
            snoozed = api.post(f"/api/v1/incidents/{first.incident_id}/snooze", json={"until": soon},
                               headers=auth(ALICE))
            assert snoozed.status_code == 200 and snoozed.json()["on_call"]["snoozed_until"], snoozed.text
            done = api.post(f"/api/v1/plans/{first.plan_id}/approve", json={"plan_hash": first.plan_hash[:12]},
                            headers=auth(ALICE))
            assert done.status_code == 200 and done.json()["status"] == "resolved", done.text
            second, _ = paused(api, incident_id="inc-notsnoozed01")
            assert api.post(f"/api/v1/plans/{second.plan_id}/approve", json={"plan_hash": second.plan_hash[:12]},
                            headers=auth(ALICE)).status_code == 200
            wait_for(lambda: any("recovered" in t.lower() for t in about(second.incident_id)), 30,
                     "the second incident's verification notification")
            assert len(about(first.incident_id)) == before, about(first.incident_id)[before:]


def test_the_compare_and_set_on_postgres(tmp_path: Path) -> None:
    """The same registry SQL on PostgreSQL (DATABASE_URL): the lifecycle columns are migrated, a change
    applies once per version, a close withdraws the pending plan, and a run finishing later neither
    reopens the incident nor makes its plan pending again."""
    from store.registry import IncidentRow
    from tests.servers import pg_database

    with pg_database() as url:
        registry = IncidentRegistry(load_settings(AIOPS_DATA_DIR=tmp_path / "var", DATABASE_URL=url,
                                                  ENABLE_MEMORY=False))
        now = utcnow()
        row = IncidentRow(incident_id="inc-pg", fingerprint="f", status="awaiting_approval", title="t",
                          mode="rules", plan_id="plan-pg", plan_hash="a" * 64, source={}, created_at=now,
                          updated_at=now)
        registry.upsert(row)
        registry.set_pending("inc-pg", "plan-pg", "me")

        def rec(op: str) -> DecisionRecord:
            return DecisionRecord(at=utcnow(), incident_id="inc-pg", plan_id="plan-pg", approver="alice",
                                  channel="http", decision=op, outcome="done", reason=op)

        assert registry.change("inc-pg", 0, {"ack_by": "alice", "ack_at": utcnow()}, rec("ack"))
        assert not registry.change("inc-pg", 0, {"assignee": "bob"}, rec("assign"))  # stale version
        assert registry.change("inc-pg", 1, {"status": "closed", "closed_by": "alice", "close_reason": "done"},
                               rec("close"), withdraw=True, where="status NOT IN ('closed', 'running')")
        registry.upsert(row)  # the run's late write
        registry.set_pending("inc-pg", "plan-pg", "me")
        assert not registry.claim_decision("plan-pg", decision="approve", approver="alice", owner="me")
        assert not registry.claim_decision("plan-pg", decision="approve", approver="alice", owner="me",
                                           expected="withdrawn")
        got = registry.get("inc-pg")
        assert got is not None and (got.status, got.decision_state, got.version) == ("closed", "withdrawn", 2)
        assert got.ack_by == "alice" and got.assignee is None and got.close_reason == "done"
        assert [d.decision for d in registry.decisions("inc-pg")] == ["ack", "close"]
