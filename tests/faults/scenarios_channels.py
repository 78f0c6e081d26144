"""Fault scenarios for the rest of the actions and channels rows: e-mail, PagerDuty, hung PVE and RouterOS.

Each breaks the dependency for real and reuses scenarios_actions.py's helpers (the same notifications,
the same outage measurement, the same two-phase action runs):

- notify-email-down: the real SMTP server (tests/mailserver.py, aiosmtpd with STARTTLS + AUTH) stopped,
  its port closed; Slack is the healthy channel. `fallback_ms` runs from the first delivery attempt to
  "the e-mail breaker is open and Slack has everything"; the mails stay queued and are delivered
  exactly once after the server is started again on the same port (`details["recovery_ms"]`).
- notify-pagerduty-down: the PagerDuty Events API double answering 500 until it recovers, Slack healthy
  (the Slack row with the roles swapped: `scenarios_actions.webhook_outage` serves both).
- proxmox-hang: the PVE simulator accepts every request and never answers (held past PROXMOX_TIMEOUT);
  each action's first read pays one timeout (not retried), the breaker opens after CB_FAILURE_THRESHOLD
  of them and the next action is refused at once. `fallback_ms` is the first action's failed step,
  `details["refused_ms"]` the action after the breaker opened (the open-breaker cost).
- proxmox-task-hang: PVE answers reads but never answers the task start: the start is sent exactly once,
  times out and is not retried; the step fails saying the start may have reached PVE.
- routeros-hang: a loopback socket that accepts and never answers (a hung RouterOS API): each action's
  connect pays one MIKROTIK_TIMEOUT (not retried), then the breaker opens and refuses at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core import resilience
from core.models import Action, ExecutionResult
from core.settings import Settings
from interfaces.notify.outbox import Outbox
from tests.faults.scenario import Degradation, degradation
from tests.faults.scenarios_actions import (
    _notifications,
    _notify_settings,
    _outage,
    _pve_settings,
    escalation_line,
    fault_settings,
    ms_since,
    webhook_outage,
)
from tests.faults.scenarios_observability import HangingServer
from tests.mailserver import PASSWORD, USER, smtp_server
from tests.sim.proxmox import ProxmoxSim
from tests.sim.webhooks import slack_double
from tools.catalog import CATALOG
from tools.executor import ActionExecutor

HANG_TIMEOUT = 0.5  # PROXMOX_TIMEOUT / MIKROTIK_TIMEOUT in the hang scenarios (seconds)
STALL = 3.0  # how long the stalled simulator holds a request (well past HANG_TIMEOUT)


# ------------------------------------------------------------------------------------ e-mail --
@degradation("notify-email-down")
def notify_email_down(tmp: Path) -> Degradation:
    with smtp_server(tmp) as smtp, slack_double() as slack:
        settings = _notify_settings(tmp, ENABLE_EMAIL_NOTIFICATIONS=True, SMTP_HOST="127.0.0.1", SMTP_PORT=smtp.port,
                                    SMTP_USER=USER, SMTP_PASSWORD=PASSWORD, SMTP_TO="oncall@example.org",
                                    SMTP_CA_BUNDLE=smtp.cert, ENABLE_SLACK_NOTIFICATIONS=True,
                                    SLACK_WEBHOOK_URL=slack.url)
        smtp.stop()  # the port is closed: connection refused, as when the MTA is down
        out = asyncio.run(_outage(Outbox.from_settings(settings), "email", "slack", len(_notifications()),
                                  lambda: len(slack.received), smtp.start))
        mails = [(m["X-Aiops-Event"], m["Message-ID"]) for m in smtp.messages]
        tls_auth = all(e["tls"] and e["auth"] for e in smtp.envelopes)
        slack_received = len(slack.received)
    return Degradation(
        dependency="notify-email", fault="SMTP server stopped (its port closed: connection refused)",
        behaviour="breaker opens, the mails stay queued (none lost or dead-lettered), Slack delivers meanwhile; "
                  "after the server is back each mail is delivered exactly once, in order",
        fallback_ms=out["fallback_ms"], breaker_state=out["breaker_degraded"],
        details={**out, "mails": mails, "tls_and_auth": tls_auth, "slack_delivered": slack_received})


@degradation("notify-pagerduty-down")
def notify_pagerduty_down(tmp: Path) -> Degradation:
    out = webhook_outage(tmp, "pagerduty")
    return Degradation(
        dependency="notify-pagerduty", fault="PagerDuty Events API answers 500 until it recovers",
        behaviour="breaker opens, PagerDuty's events stay queued (none lost or dead-lettered), Slack delivers "
                  "meanwhile; after recovery each event is delivered exactly once, in order",
        fallback_ms=out["fallback_ms"], breaker_state=out["breaker_degraded"], details=out)


# ------------------------------------------------------------------------------ hung targets --
def until_refused(executor: ActionExecutor, action: Action, dependency: str,
                  touched: Callable[[], int]) -> dict[str, Any]:
    """Execute `action` against a hung target until its breaker opens, then once more (refused at once).
    `touched()` counts what reached the target (requests, connections): each run's share is recorded."""
    b = resilience.breaker(dependency)
    runs: list[dict[str, Any]] = []
    for _ in range(50):  # bounded: a breaker that never opens fails the test, not the machine
        before = touched()
        t0 = time.perf_counter()
        result = executor.execute(action)
        runs.append({"ms": ms_since(t0), "status": result.status, "output": result.output,
                     "reached_target": touched() - before, "breaker": b.state})
        if b.state == "open" and runs[-1]["reached_target"] == 0:
            break
    first = ExecutionResult(action=action.name, target=action.target, status=runs[0]["status"],
                            output=runs[0]["output"])
    return {"runs": runs, "fallback_ms": runs[0]["ms"], "refused_ms": runs[-1]["ms"], "breaker": b.state,
            "breaker_failures": b.total_failures, "rejected": b.total_rejected,
            "escalation": escalation_line(first, action)}


def _hung_pve_settings(tmp: Path, pve: ProxmoxSim) -> Settings:
    settings = _pve_settings(tmp, pve).model_copy(update={"PROXMOX_TIMEOUT": HANG_TIMEOUT})
    resilience.configure(settings)
    return settings


@degradation("proxmox-hang")
def proxmox_hang(tmp: Path) -> Degradation:
    with ProxmoxSim() as pve:
        settings = _hung_pve_settings(tmp, pve)
        pve.stall = STALL  # every request held unanswered
        action = CATALOG["proxmox_guest_start"].action("pve-02", node="pve-02", vmid=110)
        out = until_refused(ActionExecutor(settings), action, "proxmox", lambda: len(pve.requests))
        requests = list(pve.requests)
        pve.stall = None
        guest_status = pve.guest(110)[1].status
    return Degradation(
        dependency="proxmox", fault=f"PVE API accepts and never answers (PROXMOX_TIMEOUT={HANG_TIMEOUT:g} s)",
        behaviour="each action's read pays one timeout (a hung PVE is not retried) and the step fails with the "
                  "reason; after CB_FAILURE_THRESHOLD timeouts the breaker opens and the next action is refused "
                  "at once; nothing is started",
        fallback_ms=out["fallback_ms"], breaker_state=out["breaker"],
        details={**out, "requests": requests, "guest_status": guest_status, "timeout_s": HANG_TIMEOUT})


@degradation("proxmox-task-hang")
def proxmox_task_hang(tmp: Path) -> Degradation:
    """PVE reads fine but never answers the task start: sent once, timed out, not retried."""
    with ProxmoxSim() as pve:
        settings = _hung_pve_settings(tmp, pve)
        pve.stall, pve.stall_methods = STALL, frozenset({"POST"})
        action = CATALOG["proxmox_guest_start"].action("pve-02", node="pve-02", vmid=110)
        t0 = time.perf_counter()
        result = ActionExecutor(settings).execute(action)
        fallback_ms = ms_since(t0)
        posts = [p for m, p in pve.requests if m == "POST"]
        b = resilience.breaker("proxmox")
    return Degradation(
        dependency="proxmox", fault=f"PVE never answers POST .../status/start (PROXMOX_TIMEOUT={HANG_TIMEOUT:g} s)",
        behaviour="the start is sent once and not retried after its timeout (not idempotent: it may have reached "
                  "PVE); the step fails saying so and the incident escalates",
        fallback_ms=fallback_ms, breaker_state=b.state,
        details={"result": result.model_dump(mode="json"), "posts": posts, "breaker_failures": b.total_failures,
                 "escalation": escalation_line(result, action), "timeout_s": HANG_TIMEOUT})


@degradation("routeros-hang")
def routeros_hang(tmp: Path) -> Degradation:
    with HangingServer() as hung:
        port = hung.sock.getsockname()[1]
        settings = fault_settings(tmp, MIKROTIK_HOST="127.0.0.1", MIKROTIK_PORT=port, MIKROTIK_USER="aiops",
                                  MIKROTIK_PASSWORD="s3cret!", MIKROTIK_TIMEOUT=HANG_TIMEOUT)
        action = CATALOG["routeros_interface_enable"].action("127.0.0.1", interface="ether2-isp-b")
        out = until_refused(ActionExecutor(settings), action, "routeros", lambda: hung.accepted)
        connections = hung.accepted
    return Degradation(
        dependency="routeros", fault=f"RouterOS API port accepts and never answers (MIKROTIK_TIMEOUT={HANG_TIMEOUT:g} s)",
        behaviour="each action's connect pays one timeout (a hung router is not retried) and the step fails with "
                  "the reason; after CB_FAILURE_THRESHOLD timeouts the breaker opens and the next action is "
                  "refused at once; no command is sent",
        fallback_ms=out["fallback_ms"], breaker_state=out["breaker"],
        details={**out, "tcp_connections": connections, "timeout_s": HANG_TIMEOUT})
