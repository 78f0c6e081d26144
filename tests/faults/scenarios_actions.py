"""Fault scenarios for actions and channels: Proxmox VE, RouterOS, Ansible targets, notification channels.

Each breaks the dependency for real: the PVE simulator's HTTPS port closed (or answering 500 to every
task start), the RouterOS simulator's API port closed, an inventory host at a dead loopback SSH port
(a real ansible-playbook run), the Slack webhook double answering 500 and the Telegram Bot API
simulator answering 502 until they recover. `fallback_ms` is measured with time.perf_counter() from
the first call after the fault to the product's degraded answer:

- an action target down: the step fails once with the reason (the read before it is retried with
  back-off and opens the breaker); the next action to that target is refused at once
  ("target unreachable (breaker open)"); the incident's escalation carries the reason;
- a channel down: until its breaker is open and every healthy channel has delivered; the down
  channel's notifications stay queued (none lost, none dead-lettered) and are delivered exactly once
  after it recovers (`details["recovery_ms"]`, bounded below by CB_TIMEOUT, the breaker's wait).
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Literal

import interfaces.telegram.cards  # noqa: F401 - imported up front, as in the running bot: the first send
import interfaces.telegram.client  # noqa: F401 - must not pay aiogram's import inside its NOTIFY_TIMEOUT
from core import resilience
from core.models import (
    Action,
    Approval,
    ExecutionResult,
    IncidentReport,
    IncidentStatus,
    Plan,
    TriageVerdict,
)
from core.settings import Settings, load_settings
from interfaces.notify.events import EventKind, Notification, events_for
from interfaces.notify.outbox import Outbox, breaker_name
from tests.faults.scenario import Degradation, degradation
from tests.servers import free_port
from tests.sim.proxmox import ProxmoxSim
from tests.sim.routeros import RouterOSSim
from tests.sim.telegram import telegram_sim
from tests.sim.webhooks import pagerduty_double, slack_double
from tools.catalog import CATALOG
from tools.executor import ActionExecutor

PD_KEY = "R0UTINGKEY0123456789abcdefABCDEF"
ADMIN_CHAT = 111
FAST = dict(RETRY_BASE_DELAY=0.01, RETRY_MAX_DELAY=0.05, VERIFY_SETTLE_SECONDS=0, ENABLE_MEMORY=False,
            LLM_MODE="rules")


def fault_settings(tmp: Path, **kw: Any) -> Settings:
    settings = load_settings(**{"AIOPS_DATA_DIR": tmp / "var", **FAST, **kw})
    resilience.configure(settings)
    return settings


def ms_since(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 1)


def failed_report(result: ExecutionResult, action: Action) -> IncidentReport:
    """The incident report an approved plan with this failed step ends in (what is escalated)."""
    plan = Plan(incident_id="inc-fault", rationale="fix it", actions=[action])
    return IncidentReport(incident_id="inc-fault", title="guest down", status=IncidentStatus.FAILED, mode="rules", plan=plan,
                          triage=TriageVerdict(kind="incident", reason="alert", severity="critical"),
                          approval=Approval(plan_id=plan.id, plan_hash=plan.content_hash, approver="alice",
                                            decision="approve"),
                          executions=[result])


def escalation_line(result: ExecutionResult, action: Action) -> str:
    esc = [n for n in events_for(failed_report(result, action)) if n.event is EventKind.ESCALATION]
    return esc[0].summary if esc else ""


def two_actions(executor: ActionExecutor, action: Action, dependency: str, fault: str) -> Degradation:
    """Execute `action` against a dead target twice: the first fails once, the second is refused at once."""
    t0 = time.perf_counter()
    first = executor.execute(action)
    fallback_ms = ms_since(t0)
    b = resilience.breaker(dependency)
    t1 = time.perf_counter()
    second = executor.execute(action)
    refused_ms = ms_since(t1)
    return Degradation(
        dependency=dependency, fault=fault,
        behaviour="the step fails once with the reason (reads retried with back-off, the action never); the next "
                  "action is refused at once: target unreachable (breaker open); the incident escalates",
        fallback_ms=fallback_ms, breaker_state=b.state,
        details={"first": first.model_dump(mode="json"), "second": second.model_dump(mode="json"),
                 "refused_ms": refused_ms, "breaker_failures": b.total_failures, "rejected": b.total_rejected,
                 "escalation": escalation_line(first, action)})


# ----------------------------------------------------------------------------------- proxmox --
def _pve_settings(tmp: Path, pve: ProxmoxSim, **kw: Any) -> Settings:
    ca = tmp / "pve-ca.pem"
    shutil.copy(pve.ca_file, ca)  # the simulator's directory goes with it
    return fault_settings(tmp, PROXMOX_HOST=pve.host, PROXMOX_USER=pve.user, PROXMOX_TOKEN_NAME=pve.token_name,
                          PROXMOX_TOKEN_VALUE=pve.token_value, PROXMOX_CA_BUNDLE=ca, PROXMOX_TIMEOUT=2,
                          PROXMOX_TASK_TIMEOUT=5, **kw)


@degradation("proxmox-down")
def proxmox_down(tmp: Path) -> Degradation:
    with ProxmoxSim() as pve:
        settings = _pve_settings(tmp, pve)
    # left the `with`: the PVE API port is closed (connection refused), as when pveproxy is down
    action = CATALOG["proxmox_guest_start"].action("pve-02", node="pve-02", vmid=110)
    return two_actions(ActionExecutor(settings), action, "proxmox", "PVE API down (simulator's port closed)")


@degradation("proxmox-task-500")
def proxmox_task_500(tmp: Path) -> Degradation:
    """PVE reads fine but answers 500 to the task start: the action is sent exactly once, not retried."""
    with ProxmoxSim() as pve:
        settings = _pve_settings(tmp, pve)
        pve.outage, pve.outage_methods = 500, frozenset({"POST"})
        action = CATALOG["proxmox_guest_start"].action("pve-02", node="pve-02", vmid=110)
        executor = ActionExecutor(settings)
        t0 = time.perf_counter()
        result = executor.execute(action)
        fallback_ms = ms_since(t0)
        posts = [p for m, p in pve.requests if m == "POST"]
        guest_status = pve.guest(110)[1].status
    return Degradation(
        dependency="proxmox", fault="PVE answers 500 to POST .../status/start",
        behaviour="the start is sent once and not retried (not idempotent); the step fails with PVE's answer "
                  "and the incident escalates",
        fallback_ms=fallback_ms, breaker_state=resilience.breaker("proxmox").state,
        details={"result": result.model_dump(mode="json"), "posts": posts, "guest_status": guest_status,
                 "escalation": escalation_line(result, action)})


# ---------------------------------------------------------------------------------- routeros --
@degradation("routeros-down")
def routeros_down(tmp: Path) -> Degradation:
    with RouterOSSim() as rtr:
        port, user, password = rtr.port, rtr.user, rtr.password
    settings = fault_settings(tmp, MIKROTIK_HOST="127.0.0.1", MIKROTIK_PORT=port, MIKROTIK_USER=user,
                              MIKROTIK_PASSWORD=password, MIKROTIK_TIMEOUT=2)
    action = CATALOG["routeros_interface_enable"].action("127.0.0.1", interface="ether2-isp-b")
    return two_actions(ActionExecutor(settings), action, "routeros", "RouterOS API down (simulator's port closed)")


# ----------------------------------------------------------------------------------- ansible --
def _inventory(tmp: Path, dead_port: int) -> Path:
    path = tmp / "hosts.ini"
    path.write_text(
        f"dead-01 ansible_host=127.0.0.1 ansible_port={dead_port} ansible_user=aiops ansible_connection=ssh "
        "ansible_ssh_common_args='-o BatchMode=yes -o ConnectTimeout=3 -o ControlMaster=no'\n"
        f"web-01 ansible_connection=local ansible_python_interpreter={sys.executable} aiops_sandbox=true\n")
    return path


@degradation("ansible-target-unreachable")
def ansible_target_unreachable(tmp: Path) -> Degradation:
    """One real ansible-playbook run against an inventory host whose SSH port is dead (CB_FAILURE_THRESHOLD=1,
    so that single UNREACHABLE opens that host's breaker); the next run there is refused without starting
    ansible, and another host's breaker is untouched."""
    settings = fault_settings(tmp, ANSIBLE_INVENTORY=str(_inventory(tmp, free_port())), ANSIBLE_TIMEOUT=60,
                              CB_FAILURE_THRESHOLD=1)
    action = CATALOG["restart_service"].action("dead-01", service="nginx")
    d = two_actions(ActionExecutor(settings), action, "ansible:dead-01",
                    "inventory host's SSH port dead (ansible-playbook: UNREACHABLE)")
    other = resilience.breaker("ansible:web-01")
    d.details["other_host_breaker"] = other.state
    d.details["other_host_failures"] = other.total_failures
    d.behaviour = ("the run fails once (UNREACHABLE, charged to ansible:dead-01 only; never retried); the next "
                   "run on that host is refused at once: target unreachable (breaker open); other hosts unaffected")
    return d


# ------------------------------------------------------------------------------ notifications --
def _notifications() -> list[Notification]:
    """opened, decision, executed, escalation: what a failed approved fix sends."""
    action = CATALOG["proxmox_guest_start"].action("pve-02", node="pve-02", vmid=110)
    result = ExecutionResult(action=action.name, target=action.target, status="failed",
                             output="proxmox: target unreachable (breaker open)")
    return events_for(failed_report(result, action))


async def _until(predicate: Any, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(0.01)
    return False


async def _outage(outbox: Outbox, down: str, healthy: str, expected_healthy: int, count_healthy: Any,
                  recover: Any) -> dict[str, Any]:
    """Deliver with `down` failing: time until its breaker is open and `healthy` has everything; then the
    recovery: time until `down`'s queue is empty again."""
    notifications = _notifications()
    queued = await outbox.publish(notifications)
    task = asyncio.create_task(outbox.run())
    b = resilience.breaker(breaker_name(down))
    try:
        t0 = time.perf_counter()

        async def degraded() -> bool:
            return b.state == "open" and count_healthy() >= expected_healthy

        ok = await _until(degraded)
        fallback_ms = ms_since(t0)
        state_degraded = b.state
        held = (await outbox.queues[down].stats()).depth  # kept while the channel is down
        dead_during = len(await outbox.dead_letters())
        recover()
        t1 = time.perf_counter()

        async def drained() -> bool:
            return (await outbox.queues[down].stats()).depth == 0

        recovered = await _until(drained)
        recovery_ms = ms_since(t1)
    finally:
        await outbox.stop()
        await task
    dead = await outbox.dead_letters()
    await outbox.close()
    return {"degraded": ok, "fallback_ms": fallback_ms, "breaker_degraded": state_degraded, "queued": queued, "held_while_down": held,
            "dead_during_outage": dead_during, "recovered": recovered, "recovery_ms": recovery_ms,
            "dead_letters": len(dead), "breaker_after": b.state, "breaker_failures": b.total_failures,
            "events": [n.event.value for n in notifications]}


def _notify_settings(tmp: Path, **kw: Any) -> Settings:
    return fault_settings(tmp, NOTIFY_BACKOFF_SECONDS=0.05, NOTIFY_BACKOFF_MAX_SECONDS=0.2, NOTIFY_TIMEOUT=1.0,
                          NOTIFY_MAX_ATTEMPTS=8, CB_TIMEOUT=1, **kw)


# --------------------------------------------------------------------------------- webhooks --
def webhook_outage(tmp: Path, down: Literal["slack", "pagerduty"], status: int = 500) -> dict[str, Any]:
    """Slack and PagerDuty both enabled, `down` answering `status` until it recovers: the outage measured
    by `_outage`, plus what each double received (processed requests only). The Slack row and the
    PagerDuty row (scenarios_channels.py) are this with the roles swapped."""
    with slack_double() as slack, pagerduty_double() as pd:
        settings = _notify_settings(tmp, ENABLE_SLACK_NOTIFICATIONS=True, SLACK_WEBHOOK_URL=slack.url,
                                    ENABLE_PAGERDUTY=True, PAGERDUTY_ROUTING_KEY=PD_KEY, PAGERDUTY_EVENTS_URL=pd.url)
        failing, healthy = (slack, pd) if down == "slack" else (pd, slack)
        failing.fail(10**6, status)  # down until recover()
        wanted = 3 if healthy is pd else len(_notifications())  # PagerDuty: trigger, acknowledge, trigger
        out = asyncio.run(_outage(Outbox.from_settings(settings), down, "slack" if down == "pagerduty" else "pagerduty",
                                  wanted, lambda: len(healthy.received), failing.recover))
        return {**out, "slack_delivered": [b["blocks"][0]["text"]["text"].split(":")[0] for b in slack.received],
                "pagerduty_delivered": [(e["event_action"], e["dedup_key"]) for e in pd.received],
                "pagerduty_incidents": dict(pd.incidents), "down_attempts": failing.attempts}


@degradation("notify-webhook-down")
def notify_webhook_down(tmp: Path) -> Degradation:
    out = webhook_outage(tmp, "slack")
    return Degradation(
        dependency="notify-slack", fault="Slack webhook answers 500 until it recovers",
        behaviour="breaker opens, Slack's notifications stay queued (none lost or dead-lettered), PagerDuty "
                  "delivers meanwhile; after recovery each is delivered exactly once",
        fallback_ms=out["fallback_ms"], breaker_state=out["breaker_degraded"],
        details={**out, "slack_attempts": out["down_attempts"], "pagerduty_delivered": len(out["pagerduty_delivered"])})


@degradation("telegram-down")
def telegram_down(tmp: Path) -> Degradation:
    with telegram_sim() as tg, slack_double() as slack:
        settings = _notify_settings(tmp, TELEGRAM_TOKEN=tg.token, TELEGRAM_API_URL=tg.url,
                                    ADMIN_CHAT_ID=str(ADMIN_CHAT), ENABLE_SLACK_NOTIFICATIONS=True,
                                    SLACK_WEBHOOK_URL=slack.url)
        tg.outage = 502

        def back() -> None:
            tg.outage = None

        out = asyncio.run(_outage(Outbox.from_settings(settings), "telegram", "slack", len(_notifications()),
                                  lambda: len(slack.received), back))
        msgs = [m.text.splitlines()[0] for m in tg.messages.get(ADMIN_CHAT, [])]
        sends = len([c for c in tg.calls if c.method == "sendMessage" and c.status == 200])
        edits = len([c for c in tg.calls if c.method == "editMessageText" and c.status == 200])
        attempts, slack_received = tg.attempts, len(slack.received)
    return Degradation(
        dependency="notify-telegram", fault="Telegram Bot API answers 502 until it recovers",
        behaviour="breaker opens, the cards stay queued (none lost), Slack delivers meanwhile; after recovery the "
                  "card is sent once and the escalation pings once",
        fallback_ms=out["fallback_ms"], breaker_state=out["breaker_degraded"],
        details={**out, "telegram_messages": msgs, "send_message_ok": sends, "edit_ok": edits,
                 "telegram_attempts": attempts, "slack_delivered": slack_received})
