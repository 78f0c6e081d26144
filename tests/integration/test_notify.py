"""Notifications through the durable outbox to a real SMTP server (aiosmtpd, STARTTLS + AUTH) and to the
Slack and PagerDuty doubles (payloads validated like the real APIs), on the embedded SQLite queue and on
a real Redis. Faults: a channel answering 500, hanging, refusing for good, an SMTP server that is down;
every message arrives exactly once when the channel comes back."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from core.settings import Settings, load_settings
from interfaces.notify.channels import slack_payload
from interfaces.notify.events import EventKind, events_for
from interfaces.notify.outbox import Outbox, backoff
from service.runner import IncidentRunner
from service.toolbox_factory import make_toolbox_factory, replay_spec
from tests.conftest import recording
from tests.mailserver import PASSWORD, USER, smtp_server
from tests.servers import redis_server  # noqa: F401 - pytest fixture
from tests.sim.webhooks import pagerduty_double, slack_double
from tools.replay.recording import load_recorded

pytestmark = pytest.mark.integration
PD_KEY = "R0UTINGKEY0123456789abcdefABCDEF"  # 32 characters, like a real integration key


def notify_settings(tmp_path: Path, **kw: Any) -> Settings:
    base: dict[str, Any] = dict(AIOPS_DATA_DIR=tmp_path / "var", VERIFY_SETTLE_SECONDS=0, ENABLE_MEMORY=False,
                                LLM_MODE="rules", NOTIFY_BACKOFF_SECONDS=0.05, NOTIFY_BACKOFF_MAX_SECONDS=0.2,
                                NOTIFY_TIMEOUT=2.0, CB_TIMEOUT=1)  # a channel's breaker lets a trial through after 1 s
    return load_settings(**{**base, **kw})


async def incident(settings: Settings, name: str = "crashloop", decision: str | None = "approve",
                   outbox: Outbox | None = None) -> tuple[Any, Any]:
    """Analyze a recorded incident with the outbox attached, then decide it (if it waits)."""
    rec = load_recorded(recording(name))
    async with IncidentRunner(settings, make_toolbox_factory(settings)) as runner:
        if outbox is not None:
            outbox.attach(runner)
        first = await runner.analyze(rec.webhook, replay_spec(recording(name), settings))
        last = first
        if decision and first.pending is not None:
            last = await runner.decide(first.plan_id or "", approver="alice", decision=decision)
        return first, last


def test_email_over_starttls_with_auth_one_mail_per_event(tmp_path: Path) -> None:
    with smtp_server(tmp_path) as smtp:
        settings = notify_settings(tmp_path, ENABLE_EMAIL_NOTIFICATIONS=True, SMTP_HOST="127.0.0.1",
                                   SMTP_PORT=smtp.port, SMTP_USER=USER, SMTP_PASSWORD=PASSWORD,
                                   SMTP_TO="oncall@example.org, sre@example.org", SMTP_CA_BUNDLE=smtp.cert)

        async def main() -> Any:
            outbox = Outbox.from_settings(settings)
            first, last = await incident(settings, outbox=outbox)
            done = await outbox.drain(20)
            await outbox.close()
            return first, last, done

        first, last, done = asyncio.run(main())
        assert done and last.status.value == "resolved"
        events = [m["X-Aiops-Event"] for m in smtp.messages]
        assert events == ["incident_opened", "plan_awaiting_approval", "decision", "executed", "verified"]
        assert all(e["tls"] and e["auth"] for e in smtp.envelopes)  # STARTTLS first, then AUTH, then mail
        assert smtp.envelopes[0]["to"] == ["oncall@example.org", "sre@example.org"]
        opened = smtp.messages[0]
        assert opened["Subject"].startswith("[aiops] CRITICAL incident opened: ServiceCrashLooping")
        assert opened["Message-ID"] == f"<{first.incident_id}.incident_opened@aiops>"
        assert "payments-api" in opened.get_content() and "DIAGNOSIS" in opened.get_content()
        assert "RECOVERED" in smtp.messages[-1].get_content()


def test_bad_smtp_password_is_dead_lettered_at_once(tmp_path: Path) -> None:
    with smtp_server(tmp_path) as smtp:
        settings = notify_settings(tmp_path, ENABLE_EMAIL_NOTIFICATIONS=True, SMTP_HOST="127.0.0.1",
                                   SMTP_PORT=smtp.port, SMTP_USER=USER, SMTP_PASSWORD="wrong",
                                   SMTP_TO="oncall@example.org", SMTP_CA_BUNDLE=smtp.cert)

        async def main() -> Any:
            outbox = Outbox.from_settings(settings)
            await incident(settings, decision=None, outbox=outbox)
            await outbox.drain(20)
            dead = await outbox.dead_letters()
            await outbox.close()
            return dead

        dead = asyncio.run(main())
        assert smtp.messages == []
        assert sorted(d.key.split("|")[1] for d in dead) == ["incident_opened", "plan_awaiting_approval"]
        assert all(d.deliveries == 1 and "SMTP login refused: 535" in d.reason for d in dead)


def test_slack_block_kit_and_pagerduty_lifecycle(tmp_path: Path) -> None:
    with slack_double() as slack, pagerduty_double() as pd:
        settings = notify_settings(tmp_path, ENABLE_SLACK_NOTIFICATIONS=True, SLACK_WEBHOOK_URL=slack.url,
                                   ENABLE_PAGERDUTY=True, PAGERDUTY_ROUTING_KEY=PD_KEY, PAGERDUTY_EVENTS_URL=pd.url)

        async def main() -> Any:
            outbox = Outbox.from_settings(settings)
            first, last = await incident(settings, outbox=outbox)
            done = await outbox.drain(20)
            await outbox.close()
            return first, done

        first, done = asyncio.run(main())
        assert done
        assert [b["blocks"][0]["text"]["text"].split(":")[0] for b in slack.received] == [
            "incident opened", "plan awaiting approval", "decision", "executed", "verified"]
        assert slack.received[0]["blocks"][1]["fields"][0]["text"] == f"*Incident*\n`{first.incident_id}`"
        assert [(e["event_action"], e["dedup_key"]) for e in pd.received] == [
            ("trigger", first.incident_id), ("acknowledge", first.incident_id), ("resolve", first.incident_id)]
        trigger = pd.received[0]["payload"]
        assert trigger["severity"] == "critical" and trigger["source"] == "app-02" and trigger["class"] == "crashloop"
        assert pd.incidents == {first.incident_id: "resolved"}


def test_severity_routing_keeps_warnings_off_pagerduty(tmp_path: Path) -> None:
    with slack_double() as slack, pagerduty_double() as pd:
        settings = notify_settings(tmp_path, ENABLE_SLACK_NOTIFICATIONS=True, SLACK_WEBHOOK_URL=slack.url,
                                   ENABLE_PAGERDUTY=True, PAGERDUTY_ROUTING_KEY=PD_KEY, PAGERDUTY_EVENTS_URL=pd.url,
                                   NOTIFY_ROUTES="pagerduty=critical")

        async def main() -> Any:
            outbox = Outbox.from_settings(settings)
            first, _ = await incident(settings, "vm-high-cpu", decision=None, outbox=outbox)
            await outbox.drain(20)
            await outbox.close()
            return first

        first = asyncio.run(main())
        assert first.report.triage.severity == "warning"
        assert pd.received == [] and len(slack.received) >= 1


def test_slack_text_from_alerts_is_escaped() -> None:
    from core.models import IncidentReport, TriageVerdict

    report = IncidentReport(incident_id="inc-1", title="<!channel> disk & <http://evil|click>", status="running",
                            mode="rules", triage=TriageVerdict(kind="incident", reason="x <@U123> y"))
    n = events_for(report)[0]
    payload = slack_payload(n)
    section = payload["blocks"][1]["text"]["text"]
    assert "x &lt;@U123&gt; y" in section and "<@U123>" not in section  # no mention of anyone
    assert payload["text"] == "[aiops] incident_opened: &lt;!channel&gt; disk &amp; &lt;http://evil|click&gt;"
    assert payload["blocks"][0]["text"]["type"] == "plain_text"  # the header is not parsed at all


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_outage_500_and_hang_then_recovery_delivers_each_exactly_once(tmp_path: Path, backend: str,
                                                                      request: pytest.FixtureRequest) -> None:
    extra: dict[str, Any] = {}
    if backend == "redis":
        extra["REDIS_URL"] = request.getfixturevalue("redis_server").url
    with slack_double() as slack, pagerduty_double() as pd:
        settings = notify_settings(tmp_path, ENABLE_SLACK_NOTIFICATIONS=True, SLACK_WEBHOOK_URL=slack.url,
                                   ENABLE_PAGERDUTY=True, PAGERDUTY_ROUTING_KEY=PD_KEY, PAGERDUTY_EVENTS_URL=pd.url,
                                   NOTIFY_TIMEOUT=0.5, NOTIFY_MAX_ATTEMPTS=8, **extra)
        slack.fail(4, 500)  # Slack is down for the first four requests
        pd.hang(2, 1.5)  # PagerDuty hangs (longer than NOTIFY_TIMEOUT) twice

        async def main() -> Any:
            outbox = Outbox.from_settings(settings)
            other = Outbox.from_settings(settings)  # a second process delivering from the same queues
            outbox.on_attempt = other.on_attempt = lambda channel, outcome: attempts.append((channel, outcome))
            first, last = await incident(settings, outbox=outbox)
            again = await outbox.publish_outcome(last)  # the same outcome again (a redelivered run)
            done = await asyncio.gather(outbox.drain(30), other.drain(30))
            dead = await outbox.dead_letters()
            for o in (outbox, other):
                await o.close()
            return first, again, done, dead

        attempts: list[tuple[str, str]] = []  # what /metrics counts (aiops_notifications_total)
        first, again, done, dead = asyncio.run(main())
        assert again == 0 and all(done) and dead == []
        assert Counter(attempts) == {("slack", "failed"): 4, ("slack", "delivered"): 5,
                                     ("pagerduty", "failed"): 2, ("pagerduty", "delivered"): 3}
        keys = [b["blocks"][0]["text"]["text"].split(":")[0] for b in slack.received]
        assert keys == ["incident opened", "plan awaiting approval", "decision", "executed", "verified"]
        assert slack.attempts == 5 + 4  # each failure retried, each success once
        assert [e["event_action"] for e in pd.received] == ["trigger", "acknowledge", "resolve"]
        assert pd.attempts == 3 + 2 and pd.incidents == {first.incident_id: "resolved"}


def test_channel_down_for_good_is_dead_lettered_after_max_attempts(tmp_path: Path) -> None:
    with slack_double() as slack:
        settings = notify_settings(tmp_path, ENABLE_SLACK_NOTIFICATIONS=True, SLACK_WEBHOOK_URL=slack.url,
                                   NOTIFY_MAX_ATTEMPTS=3)
        slack.fail(100, 503)

        async def main() -> Any:
            outbox = Outbox.from_settings(settings)
            outbox.on_attempt = lambda channel, outcome: attempts.append((channel, outcome))
            await incident(settings, decision=None, outbox=outbox)
            done = await outbox.drain(20)
            dead = await outbox.dead_letters()
            await outbox.close()
            return done, dead

        attempts: list[tuple[str, str]] = []
        done, dead = asyncio.run(main())
        assert done and slack.received == [] and slack.attempts == 2 * 3
        assert Counter(attempts) == {("slack", "failed"): 2 * 2, ("slack", "dead_lettered"): 2}
        assert {d.key.split("|")[1] for d in dead} == {"incident_opened", "plan_awaiting_approval"}
        assert all(d.deliveries == 3 and "Slack answered 503" in d.reason for d in dead)


def test_smtp_server_down_then_back(tmp_path: Path) -> None:
    with smtp_server(tmp_path) as smtp:
        settings = notify_settings(tmp_path, ENABLE_EMAIL_NOTIFICATIONS=True, SMTP_HOST="127.0.0.1",
                                   SMTP_PORT=smtp.port, SMTP_USER=USER, SMTP_PASSWORD=PASSWORD,
                                   SMTP_TO="oncall@example.org", SMTP_CA_BUNDLE=smtp.cert, NOTIFY_MAX_ATTEMPTS=50)
        smtp.stop()

        async def main() -> Any:
            outbox = Outbox.from_settings(settings)
            await incident(settings, decision=None, outbox=outbox)
            early = await outbox.drain(1.0)
            smtp.start()
            late = await outbox.drain(20)
            await outbox.close()
            return early, late

        early, late = asyncio.run(main())
        assert early is False and late is True
        assert [m["X-Aiops-Event"] for m in smtp.messages] == ["incident_opened", "plan_awaiting_approval"]


def test_events_of_an_auto_fixed_incident_and_backoff() -> None:
    from core.models import (
        Action,
        Approval,
        ExecutionResult,
        IncidentReport,
        Plan,
        TriageVerdict,
        Verification,
    )

    plan = Plan(incident_id="inc-2", rationale="r", actions=[Action(
        kind="cleanup_disk", name="cleanup", target="h1", risk="low", verification="disk below 80%")])
    report = IncidentReport(incident_id="inc-2", title="disk", status="resolved", mode="rules", plan=plan,
                            triage=TriageVerdict(kind="incident", reason="r", severity="critical"),
                            approval=Approval(plan_id="p", plan_hash="h", approver="policy", decision="approve",
                                              channel="policy"),
                            executions=[ExecutionResult(action="cleanup", target="h1", status="ok")],
                            verification=Verification(recovered=True, note="ok"))
    kinds = [n.event for n in events_for(report)]
    assert kinds == [EventKind.OPENED, EventKind.AUTO_FIX, EventKind.EXECUTED, EventKind.VERIFIED]
    failed = report.model_copy(update={"verification": Verification(recovered=False, note="still full")})
    assert [n.event for n in events_for(failed)][-2:] == [EventKind.NOT_RECOVERED, EventKind.ESCALATION]
    assert events_for(failed)[-1].severity == "critical"
    assert events_for(report.model_copy(update={"triage": TriageVerdict(kind="duplicate", reason="d")})) == []
    escalate = {**plan.model_dump(), "actions": [{**plan.actions[0].model_dump(), "kind": "notify_only"}]}
    waiting = IncidentReport.model_validate({**report.model_dump(), "plan": escalate, "status": "awaiting_approval",
                                             "approval": None, "executions": [], "verification": None})
    assert [n.event for n in events_for(waiting)] == [EventKind.OPENED, EventKind.AWAITING, EventKind.ESCALATION]
    delays = [backoff(n, 2.0, 300.0) for n in range(1, 12)]
    assert all(1.0 * 2 ** (n - 1) <= d <= 2.0 * 2 ** (n - 1) for n, d in enumerate(delays[:7], 1))
    assert max(delays) <= 300.0


def test_ack_and_close_from_any_channel_acknowledge_and_resolve_with_no_escalation(tmp_path: Path) -> None:
    """A person acknowledging, assigning and closing an incident (here through the CLI's channel: the
    lifecycle is the same from HTTP, Telegram and the console) reaches Slack and PagerDuty through the
    outbox: PagerDuty acknowledges on ack and resolves on close; Slack gets one message per change; the
    closed report never raises an escalation (nobody needs to be called for an incident a person closed)."""
    with slack_double() as slack, pagerduty_double() as pd:
        settings = notify_settings(tmp_path, ENABLE_SLACK_NOTIFICATIONS=True, SLACK_WEBHOOK_URL=slack.url,
                                   ENABLE_PAGERDUTY=True, PAGERDUTY_ROUTING_KEY=PD_KEY, PAGERDUTY_EVENTS_URL=pd.url,
                                   APPROVERS="alice")

        async def main() -> Any:
            outbox = Outbox.from_settings(settings)
            rec = load_recorded(recording("crashloop"))
            async with IncidentRunner(settings, make_toolbox_factory(settings)) as runner:
                outbox.attach(runner)
                first = await runner.analyze(rec.webhook, replay_spec(recording("crashloop"), settings))
                assert first.pending is not None
                await runner.lifecycle.acknowledge(first.incident_id, by="alice", channel="cli")
                await runner.lifecycle.assign(first.incident_id, "bob", by="alice", channel="cli")
                await runner.lifecycle.close(first.incident_id, "a deploy was rolled back by hand", by="alice",
                                             channel="cli")
                report = await runner.report(first.incident_id)
            done = await outbox.drain(20)
            await outbox.close()
            return first, report, done

        first, report, done = asyncio.run(main())
        assert done and report.status.value == "closed"
        iid = first.incident_id
        assert [b["blocks"][0]["text"]["text"].split(":")[0] for b in slack.received] == [
            "incident opened", "plan awaiting approval", "acknowledged", "assigned", "closed"]
        closed = json.dumps(slack.received[-1])
        assert "closed by alice: a deploy was rolled back by hand" in closed and "withdrawn" in closed
        assert [(e["event_action"], e["dedup_key"]) for e in pd.received] == [
            ("trigger", iid), ("acknowledge", iid), ("resolve", iid)]
        assert pd.incidents == {iid: "resolved"}
        assert not any("escalation" in json.dumps(b) for b in slack.received)


def test_a_closed_report_is_never_an_escalation() -> None:
    """A report a person closed (no plan: nothing automatic could be done) shows who closed it, not an
    escalation: re-publishing it after the close must not call anyone."""
    from core.models import IncidentReport, OnCall, TriageVerdict, utcnow

    report = IncidentReport(incident_id="inc-closed000001", title="disk almost full", status="closed", mode="rules",
                            created_at=utcnow(), triage=TriageVerdict(kind="incident", reason="a real alert"),
                            on_call=OnCall(closed_by="alice", closed_at=utcnow(), close_reason="known, planned"))
    kinds = [n.event for n in events_for(report)]
    assert EventKind.ESCALATION not in kinds
    assert kinds == [EventKind.OPENED, EventKind.CLOSED]
    assert events_for(report)[-1].summary == "incident inc-closed000001 closed by alice: known, planned"
