"""Fault tests for actions and channels: the scenarios of scenarios_actions.py, asserted on behaviour
(the step failed once with the reason, the action was never retried, the breaker opened and refused
at once, one host's breaker left the others alone, no notification lost or duplicated). No timings."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import resilience
from tests.faults.scenarios_actions import (
    ansible_target_unreachable,
    notify_webhook_down,
    proxmox_down,
    proxmox_task_500,
    routeros_down,
    telegram_down,
)
from tools.ansible.runner import unreachable_hosts

pytestmark = pytest.mark.integration
REFUSED = "target unreachable (breaker open"


def test_proxmox_down_fails_the_step_once_then_refuses_at_once(tmp_path: Path) -> None:
    d = proxmox_down(tmp_path)
    first, second = d.details["first"], d.details["second"]
    assert d.breaker_state == "open" and d.details["breaker_failures"] == 3  # the read: 3 attempts, then open
    assert first["status"] == "failed" and "Connection refused" in first["output"]
    assert second["status"] == "failed" and REFUSED in second["output"] and d.details["rejected"] == 1
    assert "needs a human: an action failed: proxmox_guest_start on pve-02" in d.details["escalation"]


def test_proxmox_task_start_answered_500_is_sent_once_never_retried(tmp_path: Path) -> None:
    d = proxmox_task_500(tmp_path)
    assert d.details["posts"] == ["/nodes/pve-02/qemu/110/status/start"]  # exactly one POST
    assert d.details["result"]["status"] == "failed" and "500" in d.details["result"]["output"]
    assert d.details["guest_status"] == "stopped" and d.breaker_state == "closed"  # PVE answers reads: not down
    assert "500" in d.details["escalation"]


def test_routeros_down_fails_the_step_once_then_refuses_at_once(tmp_path: Path) -> None:
    d = routeros_down(tmp_path)
    first, second = d.details["first"], d.details["second"]
    assert d.breaker_state == "open" and d.details["breaker_failures"] == 3  # connect retried, then open
    assert first["status"] == "failed" and "cannot connect" in first["output"]
    assert second["status"] == "failed" and REFUSED in second["output"]
    assert "routeros_interface_enable" in d.details["escalation"]


def test_unreachable_ansible_host_opens_its_own_breaker_only(tmp_path: Path) -> None:
    d = ansible_target_unreachable(tmp_path)  # one real ansible-playbook run
    first, second = d.details["first"], d.details["second"]
    assert first["status"] == "failed" and "UNREACHABLE" in first["output"]
    assert d.breaker_state == "open" and d.details["breaker_failures"] == 1
    assert second["status"] == "failed" and REFUSED in second["output"] and "was not run" in second["output"]
    assert d.details["other_host_breaker"] == "closed" and d.details["other_host_failures"] == 0
    assert "restart_service on dead-01" in d.details["escalation"]


def test_unreachable_hosts_from_stats_or_recap() -> None:
    assert unreachable_hosts({"dark": {"a": 1, "b": 0}, "ok": {"b": 2}}, "") == {"a"}
    recap = ("PLAY RECAP ***\nweb-01 : ok=2 changed=1 unreachable=0 failed=1 skipped=0\n"
             "db-01 : ok=0 changed=0 unreachable=1 failed=0 skipped=0\n")
    assert unreachable_hosts(None, recap) == {"db-01"}  # a failed task (web-01) is not unreachable


def test_slack_down_keeps_its_notifications_and_delivers_each_once_after(tmp_path: Path) -> None:
    d = notify_webhook_down(tmp_path)
    x = d.details
    assert x["degraded"] and d.breaker_state == "open"
    assert x["pagerduty_delivered"] == 3  # the healthy channel delivered while Slack was down
    assert x["held_while_down"] == 4 and x["dead_during_outage"] == 0  # kept, none lost
    assert x["recovered"] and x["dead_letters"] == 0 and x["breaker_after"] == "closed"
    assert x["slack_delivered"] == ["incident opened", "decision", "executed", "escalation"]  # once each, in order


def test_telegram_down_keeps_the_cards_and_delivers_once_after(tmp_path: Path) -> None:
    d = telegram_down(tmp_path)
    x = d.details
    assert x["degraded"] and d.breaker_state == "open" and x["slack_delivered"] == 4
    assert x["held_while_down"] == 4 and x["dead_during_outage"] == 0
    assert x["recovered"] and x["dead_letters"] == 0
    assert x["send_message_ok"] == 2  # one card + one escalation ping, no duplicates
    assert x["telegram_messages"][0].endswith("guest down") and "Escalation" in x["telegram_messages"][1]


def test_open_telegram_breaker_refuses_bot_sends_at_once(tmp_path: Path) -> None:
    """Bot replies outside the outbox go through the same breaker: refused at once, getUpdates exempt."""
    import asyncio

    from core.settings import load_settings
    from interfaces.telegram.client import make_bot
    from tests.sim.telegram import telegram_sim

    with telegram_sim() as tg:
        settings = load_settings(TELEGRAM_TOKEN=tg.token, TELEGRAM_API_URL=tg.url, AIOPS_DATA_DIR=tmp_path / "var")
        resilience.configure(settings)
        tg.outage = 502

        async def main() -> list[str]:
            bot = make_bot(settings)
            seen = []
            try:
                for _ in range(4):
                    try:
                        await bot.send_message(111, "hi")
                    except Exception as exc:
                        seen.append(type(exc).__name__)
                tg.outage = None
                await bot.get_updates(timeout=0)  # polling is not refused (bot.py backs off itself)
            finally:
                await bot.session.close()
            return seen

        seen = asyncio.run(main())
        assert seen == ["TelegramServerError"] * 3 + ["CircuitOpenError"]
        assert tg.attempts == 4  # three sends reached it, the fourth was refused here; then getUpdates
