"""The on-call workflow against a real `aiops serve` (a bare machine: no telemetry, rules mode), with the
Telegram bot on the simulator: acknowledge, comment, assign, approve by the short hash the card shows;
close with a reason an incident whose plan then never runs, whoever approves it afterwards; the same from
Telegram; and every step in the audit trail, with people's names.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import cli_env, recording
from tests.security.decision_helpers import wait_for
from tests.servers import aiops_serve
from tests.sim.telegram import SentMessage, TelegramSim, telegram_sim

pytestmark = pytest.mark.e2e
ALICE = "alice-oncall-token-0123456789"  # an approver (APPROVERS)
BOB = "bob-oncall-token-0123456789ab"  # a user, not an approver
READER = "reader-service-token-0123456789"  # the service token: reads only
CAROL = 111  # Telegram: TELEGRAM_APPROVER_IDS=carol:111


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def disk_alert(host: str, starts: str = "2026-03-10T03:45:00.000Z") -> dict[str, Any]:
    """The recorded HostOutOfDiskSpace notification, for `host` (its own group, its own fingerprint)."""
    hook = copy.deepcopy(json.loads(recording("disk-full").read_text())["webhook"])
    text = json.dumps(hook).replace("backup-01", host)
    hook = json.loads(text)
    hook["alerts"][0]["fingerprint"] = hashlib.sha256(host.encode()).hexdigest()[:16]
    hook["alerts"][0]["startsAt"] = starts
    return dict(hook)


def wait(predicate: Any, what: str = "condition") -> Any:
    return wait_for(predicate, 120, what)  # a Telegram round trip beside a real service: a longer bound


def awaiting(url: str, incident_id: str) -> dict[str, Any]:
    def row() -> dict[str, Any] | None:
        listed = httpx.get(f"{url}/api/v1/incidents", headers=auth(READER), timeout=10).json()["incidents"]
        found = next((r for r in listed if r["incident_id"] == incident_id), None)
        return found if found and found["status"] == "awaiting_approval" else None

    return dict(wait(row, what=f"{incident_id} awaiting approval"))


def card_of(sim: TelegramSim, incident_id: str) -> SentMessage | None:
    return next((m for m in sim.messages.get(CAROL, []) if incident_id in m.text and any(
        b["callback_data"].startswith("plan:approve") for b in m.buttons())), None)


def button(card: SentMessage, prefix: str) -> str:
    return next(str(b["callback_data"]) for b in card.buttons() if str(b["callback_data"]).startswith(prefix))


def trail(url: str, incident_id: str) -> list[tuple[str, str, str, str]]:
    resp = httpx.get(f"{url}/api/v1/incidents/{incident_id}/audit", headers=auth(READER), timeout=10)
    assert resp.status_code == 200, resp.text
    return [(d["approver"], d["channel"], d["decision"], d["outcome"]) for d in resp.json()["decisions"]]


def test_on_call_from_http_and_telegram(tmp_path: Path) -> None:
    sim: TelegramSim
    with telegram_sim() as sim:
        env = cli_env(tmp_path, LLM_MODE="rules", VERIFY_SETTLE_SECONDS="0", APPROVERS="alice",
                      API_TOKENS=f"alice:{ALICE},bob:{BOB}", AIOPS_API_TOKEN=READER, TELEGRAM_TOKEN=sim.token,
                      TELEGRAM_API_URL=sim.url, ADMIN_CHAT_ID=str(CAROL), TELEGRAM_APPROVER_IDS=f"carol:{CAROL}",
                      TELEGRAM_POLL_TIMEOUT="1")
        carol = sim.user(CAROL, "Carol", "carol")
        with aiops_serve(env, tmp_path / "serve.log") as svc:
            url = svc.url
            post = lambda path, token, body=None: httpx.post(f"{url}{path}", headers=auth(token),  # noqa: E731
                                                              json=body, timeout=120)

            # ---- HTTP, incident A: ack -> comment -> assign -> approve by the short hash ----
            a = post("/webhook/alertmanager", READER, disk_alert("backup-01")).json()["incident_id"]
            row_a = awaiting(url, a)
            base = f"/api/v1/incidents/{a}"
            assert post(f"{base}/ack", READER).status_code == 403  # the service token only reads
            assert post(f"{base}/ack", BOB).status_code == 403  # a user who is not an approver
            acked = post(f"{base}/ack", ALICE)
            assert acked.status_code == 200, acked.text
            assert acked.json()["on_call"]["acknowledged_by"] == "alice"
            assert post(f"{base}/ack", ALICE).status_code == 409  # once
            assert post(f"{base}/comments", ALICE, {"text": "disk at 94%, looking"}).status_code == 200
            assert post(f"{base}/assign", ALICE, {"to": "bob"}).json()["on_call"]["assignee"] == "bob"
            assert post(f"{base}/comments", ALICE, {"text": "x", "extra": 1}).status_code == 422  # strict bodies
            shown = httpx.get(f"{url}{base}", headers=auth(READER), timeout=10).json()
            assert [(c["by"], c["text"]) for c in shown["comments"]] == [("alice", "disk at 94%, looking")]
            plan = f"/api/v1/plans/{row_a['plan_id']}"
            short = row_a["plan_hash"][:12]
            assert post(f"{plan}/approve", ALICE, {"plan_hash": short[:11]}).status_code == 422  # < 12 digits
            stale = post(f"{plan}/approve", ALICE, {"plan_hash": "0" * 12})
            assert stale.status_code == 409 and "changed" in stale.json()["detail"]
            done = post(f"{plan}/approve", ALICE, {"plan_hash": short})
            assert done.status_code == 200, done.text + svc.output()[-2000:]
            assert done.json()["approval"]["approver"] == "alice" and done.json()["report"]["executions"]

            # ---- HTTP, incident B: closed with a reason; its plan never runs, whoever approves it ----
            b = post("/webhook/alertmanager", READER, disk_alert("backup-02")).json()["incident_id"]
            row_b = awaiting(url, b)
            assert post(f"/api/v1/incidents/{b}/close", READER, {"reason": "x"}).status_code == 403
            assert post(f"/api/v1/incidents/{b}/close", BOB, {"reason": "x"}).status_code == 403
            assert post(f"/api/v1/incidents/{b}/close", ALICE, {"reason": ""}).status_code == 422
            closed = post(f"/api/v1/incidents/{b}/close", ALICE, {"reason": "planned maintenance, disk replaced"})
            assert closed.status_code == 200, closed.text
            assert closed.json()["status"] == "closed" and closed.json()["decision_state"] == "withdrawn"
            for h in (row_b["plan_hash"][:12], row_b["plan_hash"]):
                late = post(f"/api/v1/plans/{row_b['plan_id']}/approve", ALICE, {"plan_hash": h})
                assert late.status_code == 409 and "withdrawn" in late.json()["detail"], late.text
            assert post(f"/api/v1/incidents/{b}/ack", ALICE).status_code == 409  # closed takes nothing more
            report_b = httpx.get(f"{url}/api/v1/incidents/{b}", headers=auth(READER), timeout=10).json()
            assert report_b["status"] == "closed" and report_b["executions"] == []
            assert report_b["on_call"]["close_reason"] == "planned maintenance, disk replaced"
            # the alert fires again later: a new incident, not the closed one
            again = post("/webhook/alertmanager", READER, disk_alert("backup-02", "2026-03-10T05:00:00.000Z"))
            c = again.json()["incident_id"]
            assert c != b
            row_c = awaiting(url, c)

            # ---- Telegram, incident C: 👀 Ack, /comment, /assign, ✅ Approve (carol, by name) ----
            card = wait(lambda: card_of(sim, c), what="the card of C")
            assert row_c["plan_hash"][:12] in card.text  # the short hash people can type
            qid = sim.press(carol, card, button(card, "inc:ack"))
            wait(lambda: sim.answered(qid), what="the ack press answered")
            wait(lambda: "Acknowledged by carol" in card.text, what="the card showing the ack")
            sim.send_text(carol, f"/comment {c} freeing space on backup-02")
            wait(lambda: "freeing space on backup-02" in card.text, what="the card showing the comment")
            sim.send_text(carol, f"/assign {c} dave")  # (the bot handles updates concurrently: one at a time)
            wait(lambda: "Assigned to dave" in card.text, what="the card showing the assignee")
            sim.press(carol, card, button(card, "plan:approve"))
            wait(lambda: "Approved</b>" in (card.html or "") or "Approved by carol" in card.text, what="approved")
            assert "Approved by carol via telegram" in card.text

            # ---- Telegram, incident D: /close with a reason; the card's old Approve button is refused ----
            d = post("/webhook/alertmanager", READER, disk_alert("backup-03")).json()["incident_id"]
            awaiting(url, d)
            card_d = wait(lambda: card_of(sim, d), what="the card of D")
            old_approve = button(card_d, "plan:approve")
            sim.send_text(carol, f"/close {d} false alarm: backup-03 is being decommissioned")
            wait(lambda: "Closed</b>" in (card_d.html or "") or "Closed by carol" in card_d.text, what="closed card")
            assert not any(str(x["callback_data"]).startswith("plan:approve") for x in card_d.buttons())
            qid = sim.press(carol, card_d, old_approve, forged=True)  # a press racing the close
            answer = wait(lambda: sim.answered(qid), what="the late press answered")
            assert "Refused" in answer.get("text", "")
            report_d = httpx.get(f"{url}/api/v1/incidents/{d}", headers=auth(READER), timeout=10).json()
            assert report_d["status"] == "closed" and report_d["executions"] == [] and report_d["approval"] is None

            # ---- the audit trail: every step, with names ----
            trail_a, trail_b, trail_c, trail_d = (trail(url, i) for i in (a, b, c, d))
            log = svc.output()
        assert ("alice", "http", "ack", "done") in trail_a and ("bob", "http", "ack", "refused") in trail_a
        assert [t for t in trail_a if t[3] in ("done", "won")] == [
            ("alice", "http", "ack", "done"), ("alice", "http", "comment", "done"),
            ("alice", "http", "assign", "done"), ("alice", "http", "approve", "won")], (trail_a, log[-2000:])
        assert ("alice", "http", "close", "done") in trail_b and ("bob", "http", "close", "refused") in trail_b
        assert [t[2:] for t in trail_b if t[2] == "approve"] == [("approve", "refused")] * 2
        assert [t for t in trail_c if t[3] in ("done", "won")] == [
            ("carol", "telegram", "ack", "done"), ("carol", "telegram", "comment", "done"),
            ("carol", "telegram", "assign", "done"), ("carol", "telegram", "approve", "won")], trail_c
        assert ("carol", "telegram", "close", "done") in trail_d
        assert not any(t[2] == "approve" and t[3] == "won" for t in trail_d)
        assert "111" not in {t[0] for t in trail_c + trail_d}  # people are named, not numbered
