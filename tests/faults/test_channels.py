"""Fault tests for the scenarios of scenarios_channels.py (e-mail, PagerDuty, hung PVE and RouterOS),
asserted on behaviour: the breaker opened, the healthy channel delivered, nothing lost or sent twice,
a hung target cost one timeout per action (never a retry) and was then refused at once. No timings."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from interfaces.notify.outbox import Outbox
from tests.faults.scenarios_actions import _notifications, _notify_settings
from tests.faults.scenarios_channels import (
    notify_email_down,
    notify_pagerduty_down,
    proxmox_hang,
    proxmox_task_hang,
    routeros_hang,
    webhook_outage,
)
from tests.mailserver import PASSWORD, USER, smtp_server

pytestmark = pytest.mark.integration
REFUSED = "target unreachable (breaker open"
EVENTS = ["incident_opened", "decision", "executed", "escalation"]


def test_smtp_down_keeps_the_mails_and_delivers_each_once_after(tmp_path: Path) -> None:
    d = notify_email_down(tmp_path)
    x = d.details
    assert x["degraded"] and d.breaker_state == "open" and x["breaker_failures"] == 3
    assert x["slack_delivered"] == 4  # the healthy channel delivered while the SMTP server was down
    assert x["held_while_down"] == 4 and x["dead_during_outage"] == 0  # kept, none lost
    assert x["recovered"] and x["dead_letters"] == 0 and x["breaker_after"] == "closed"
    assert [e for e, _ in x["mails"]] == EVENTS  # once each, in order
    assert len({mid for _, mid in x["mails"]}) == 4 and x["tls_and_auth"]


def test_smtp_quit_failing_after_the_mail_was_accepted_is_not_a_resend(tmp_path: Path) -> None:
    """A server that accepts the mail and then answers QUIT with 421 (shutting down): delivered, once."""
    with smtp_server(tmp_path) as smtp:
        smtp.quit_reply = "421 4.3.0 shutting down"
        settings = _notify_settings(tmp_path, ENABLE_EMAIL_NOTIFICATIONS=True, SMTP_HOST="127.0.0.1",
                                    SMTP_PORT=smtp.port, SMTP_USER=USER, SMTP_PASSWORD=PASSWORD,
                                    SMTP_TO="oncall@example.org", SMTP_CA_BUNDLE=smtp.cert)

        async def main() -> tuple[bool, int, list[str]]:
            outbox = Outbox.from_settings(settings)
            await outbox.publish(_notifications())
            done = await outbox.drain(20)
            dead = await outbox.dead_letters()
            await outbox.close()
            return done, len(dead), outbox.delivered

        done, dead, delivered = asyncio.run(main())
        assert done and dead == 0 and len(delivered) == 4
        assert [m["X-Aiops-Event"] for m in smtp.messages] == EVENTS


def test_pagerduty_down_keeps_its_events_and_delivers_each_once_after(tmp_path: Path) -> None:
    d = notify_pagerduty_down(tmp_path)
    x = d.details
    assert x["degraded"] and d.breaker_state == "open"
    assert x["slack_delivered"] == ["incident opened", "decision", "executed", "escalation"]
    assert x["held_while_down"] == 3 and x["dead_during_outage"] == 0  # trigger, acknowledge, trigger kept
    assert x["recovered"] and x["dead_letters"] == 0 and x["breaker_after"] == "closed"
    assert x["pagerduty_delivered"] == [("trigger", "inc-fault"), ("acknowledge", "inc-fault"),
                                        ("trigger", "inc-fault")]  # once each, in order
    assert x["pagerduty_incidents"] == {"inc-fault": "triggered"}


def test_webhook_outage_helper_swaps_the_roles(tmp_path: Path) -> None:
    """The same helper with Slack down is the Slack row (scenarios_actions.notify_webhook_down): PagerDuty
    delivers meanwhile, Slack's four notifications arrive once each after it recovers."""
    x = webhook_outage(tmp_path, "slack", status=503)
    assert x["degraded"] and x["breaker_degraded"] == "open" and x["held_while_down"] == 4
    assert [a for a, _ in x["pagerduty_delivered"]] == ["trigger", "acknowledge", "trigger"]
    assert x["recovered"] and x["dead_letters"] == 0
    assert x["slack_delivered"] == ["incident opened", "decision", "executed", "escalation"]


def test_proxmox_hang_costs_one_timeout_per_action_then_refuses_at_once(tmp_path: Path) -> None:
    d = proxmox_hang(tmp_path)
    runs = d.details["runs"]
    assert d.breaker_state == "open" and len(runs) == 4  # CB_FAILURE_THRESHOLD (3) hung actions, then refused
    assert [r["reached_target"] for r in runs] == [1, 1, 1, 0]  # one request per action: a timeout is not retried
    assert all("no answer within 0.5 s (PROXMOX_TIMEOUT" in r["output"] for r in runs[:3])
    assert REFUSED in runs[3]["output"] and d.details["rejected"] == 1 and d.details["breaker_failures"] == 3
    assert all(m == "GET" for m, _ in d.details["requests"])  # nothing was started
    assert d.details["guest_status"] == "stopped"
    assert "proxmox_guest_start on pve-02" in d.details["escalation"]


def test_proxmox_task_start_hang_is_sent_once_never_retried(tmp_path: Path) -> None:
    d = proxmox_task_hang(tmp_path)
    result = d.details["result"]
    assert d.details["posts"] == ["/nodes/pve-02/qemu/110/status/start"]  # exactly one POST
    assert result["status"] == "failed" and "not retried (it may have reached PVE" in result["output"]
    assert d.details["breaker_failures"] == 1 and d.breaker_state == "closed"
    assert "may have reached PVE" in d.details["escalation"]


def test_routeros_hang_costs_one_timeout_per_action_then_refuses_at_once(tmp_path: Path) -> None:
    d = routeros_hang(tmp_path)
    runs = d.details["runs"]
    assert d.breaker_state == "open" and len(runs) == 4
    assert [r["reached_target"] for r in runs] == [1, 1, 1, 0] and d.details["tcp_connections"] == 3
    assert all("connect: no answer within 0.5 s (MIKROTIK_TIMEOUT)" in r["output"] for r in runs[:3])
    assert REFUSED in runs[3]["output"] and d.details["rejected"] == 1
    assert "routeros_interface_enable" in d.details["escalation"]
