"""What the bot can tell and do, without aiogram: the commands and the chat share these.

Each returns Telegram HTML (escaped), in English or Russian. Nothing here approves or rejects: that is
`decide()` in the handlers, reached only from a button or an explicit /approve, /reject.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from typing import Any, Literal

from agents.self_healing import self_healing_status
from core.models import AlertmanagerWebhook, IncidentReport
from core.settings import Settings
from interfaces.telegram import render
from interfaces.telegram.render import b, code, esc
from service.intake import on_demand_webhook as _intake_on_demand
from service.runner import IncidentRunner, RunOutcome
from store.registry import IncidentRow

log = logging.getLogger(__name__)
Lang = Literal["en", "ru"]

TEXT: dict[str, dict[Lang, str]] = {
    "not_understood": {"en": "I did not understand that. Try /help, or ask e.g. “what's wrong with checkout?”, "
                             "“show pending plans”, “status”.",
                       "ru": "Не понял вопрос. Попробуйте /help или спросите, например: «что с checkout?», "
                             "«покажи планы на утверждении», «статус»."},
    "no_decision": {"en": "I never approve or reject from free text. Use the ✅/❌ buttons under a plan, or "
                          "/approve PLAN_ID, /reject PLAN_ID.",
                    "ru": "Я не принимаю решений по свободному тексту. Нажмите ✅/❌ под планом или отправьте "
                          "/approve PLAN_ID, /reject PLAN_ID."},
    "pending_none": {"en": "No plans are awaiting approval.", "ru": "Нет планов, ожидающих утверждения."},
    "pending_head": {"en": "Plans awaiting approval", "ru": "Планы, ожидающие утверждения"},
    "incidents_head": {"en": "Recent incidents", "ru": "Последние инциденты"},
    "investigating": {"en": "🔎 Investigating {svc} over the last {rng} (read-only: nothing is changed)…",
                      "ru": "🔎 Анализирую {svc} за последние {rng} (только чтение: ничего не меняю)…"},
    "found": {"en": "What I found for {svc} (last {rng}):", "ru": "Что я нашёл по {svc} (за {rng}):"},
    "nothing": {"en": "No anomaly found for {svc} in the last {rng}.",
                "ru": "Аномалий по {svc} за последние {rng} не найдено."},
    "open_hint": {"en": "To open an incident for it (its plan, if any, then waits for your approval): "
                        "/analyze {svc} {rng}",
                  "ru": "Чтобы открыть по нему инцидент (план, если он есть, будет ждать утверждения): "
                        "/analyze {svc} {rng}"},
    "unknown_incident": {"en": "Unknown incident {id}.", "ru": "Инцидент {id} не найден."},
    "unknown_plan": {"en": "Unknown plan {id}.", "ru": "План {id} не найден."},
}

HELP = """<b>aiops bot</b>
/status: health, open incidents, pending plans, breakers, self-healing
/pending: plans awaiting approval (with their buttons)
/incidents: recent incidents · /show INCIDENT_ID: one report
/analyze SERVICE [RANGE]: investigate a service (e.g. /analyze checkout 2h)
/approve PLAN_ID [HASH] · /reject PLAN_ID [HASH]: decide (or press the buttons); the hash is the 12 digits
the card shows, needed when the card was not shown in this chat
/ack ID · /assign ID USER · /comment ID TEXT · /close ID REASON: on call (or 👀 Ack / 🙋 Take it)
/snooze ID UNTIL: hold its notifications (UNTIL: 30m, 2h, 1d or an ISO time with zone; at most 7 days)
/heal on|off: the self-healing kill switch
Or just ask: “why is checkout slow since 10:00?”, “что с payments-api?”, “show pending plans”.
Free text never approves or rejects anything."""

COMMANDS = [("start", "check your access"), ("status", "health, open incidents, pending plans"),
            ("pending", "plans awaiting approval"), ("incidents", "recent incidents"),
            ("show", "one incident's report: /show INCIDENT_ID"),
            ("analyze", "investigate a service: /analyze SERVICE [RANGE]"),
            ("approve", "approve a plan: /approve PLAN_ID"), ("reject", "reject a plan: /reject PLAN_ID"),
            ("ack", "acknowledge an incident: /ack INCIDENT_ID"),
            ("assign", "assign an incident: /assign INCIDENT_ID USER"),
            ("comment", "note on an incident: /comment INCIDENT_ID TEXT"),
            ("snooze", "hold notifications: /snooze INCIDENT_ID 2h"),
            ("close", "close an incident: /close INCIDENT_ID REASON"),
            ("heal", "self-healing kill switch: /heal on|off"), ("help", "what I can do")]


_SERVICE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,199}$")  # the API's rule for service_name


class BadRequest(ValueError):
    """A service name or time range that cannot be used (one line for the user)."""


def on_demand_webhook(service: str, time_range: str) -> AlertmanagerWebhook:
    """The service's synthetic on-demand alert (`service.intake`), for input typed in a chat."""
    if not _SERVICE.match(service):
        raise BadRequest(f"not a service name: {service[:40]!r} (letters, digits and . _ : / @ -)")
    try:
        return _intake_on_demand(service, time_range)[0]
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def t(key: str, lang: Lang, **kw: Any) -> str:
    return TEXT[key][lang].format(**{k: esc(v) for k, v in kw.items()})


async def status(runner: IncidentRunner, settings: Settings, outbox: Any | None = None) -> str:
    """Health from real checks: the registry answers, the LLM breakers, the notification queues."""
    problems: list[str] = []
    try:
        rows = runner.incidents(limit=1000)
    except Exception as exc:  # the registry's store is down: say so rather than a count of zero
        rows = []
        problems.append(f"incident registry unavailable: {type(exc).__name__}")
    counts = Counter(r.status for r in rows)
    open_n = sum(counts[s] for s in ("running", "awaiting_approval", "executed"))
    lines = [f"incidents: {open_n} open · {counts['awaiting_approval']} awaiting approval · "
             f"{counts['escalated']} escalated · {counts['resolved']} resolved · {counts['rejected']} rejected · "
             f"{counts['failed']} failed"]
    chain = runner.live_toolbox().llm
    if chain.providers:
        lines.append("LLM: " + ", ".join(f"{esc(p.name)}/{esc(p.model)} breaker {b(p.breaker.state)}"
                                         for p in chain.providers))
        problems += [f"LLM breaker {p.name} open" for p in chain.providers if p.breaker.state == "open"]
    else:
        lines.append("LLM: none configured (rule mode)")
    lines.append(f"approval: low-risk known fixes auto-approved: {'yes' if settings.AUTO_APPROVE_LOW_RISK else 'no'}"
                 f" · approval window {settings.APPROVAL_TTL_SECONDS // 60} min")
    try:
        lines.append(heal_line(self_healing_status(settings)))
    except Exception as exc:
        problems.append(f"self-healing switch unavailable: {type(exc).__name__}")
    if outbox is not None and outbox.channel_names:
        try:
            stats = await outbox.stats()
        except Exception as exc:
            problems.append(f"notification queue unavailable: {type(exc).__name__}")
        else:
            lines.append("notifications: " + ", ".join(
                f"{esc(c)} ({q['depth']} queued, {q['dead_letters']} dead)" for c, q in stats.items()))
            problems += [f"{q['dead_letters']} undeliverable {c} notifications" for c, q in stats.items()
                         if q["dead_letters"]]
    else:
        lines.append("notifications: none enabled")
    head = "<b>aiops status</b>: " + ("healthy" if not problems else "degraded: " + esc("; ".join(problems)))
    return "\n".join([head, *lines])


def pending_rows(runner: IncidentRunner) -> list[IncidentRow]:
    return runner.pending(limit=20)


def incidents(runner: IncidentRunner, lang: Lang = "en") -> str:
    return render.incident_rows(runner.incidents(limit=10), TEXT["incidents_head"][lang])


async def analyze(runner: IncidentRunner, service: str, time_range: str) -> RunOutcome:
    """`/analyze`: a durable incident (plan, approval gate), exactly like the HTTP API's."""
    return await runner.analyze(on_demand_webhook(service, time_range), {"kind": "live"})


async def look(runner: IncidentRunner, service: str, time_range: str, lang: Lang) -> str:
    """Free text “what's wrong with X?”: triage, diagnosis and a proposed plan, read-only (no incident,
    no approval gate, nothing executed)."""
    report: IncidentReport = await runner.investigate(on_demand_webhook(service, time_range))
    if not report.hypotheses:
        return t("nothing", lang, svc=service, rng=time_range) + "\n" + t("open_hint", lang, svc=service, rng=time_range)
    lines = [t("found", lang, svc=service, rng=time_range), *render.diagnosis_lines(report)]
    if report.plan:
        lines += ["", *render.plan_lines(report.plan)[:4]]
    lines += ["", t("open_hint", lang, svc=service, rng=time_range)]
    return "\n".join(lines)


def plan_head(row: IncidentRow) -> str:
    return f"{code(row.plan_id)} for {code(row.incident_id)}: {esc(row.title[:150])}"


def heal_line(status: dict[str, Any]) -> str:
    """One line about the self-healing switch (both the SELF_HEALING setting and the run-time switch)."""
    who = f" (switched by {esc(str(status['changed_by']))})" if status.get("changed_by") else ""
    if status["enabled"]:
        return f"self-healing: <b>on</b>{who}: policy rules {esc(', '.join(status['rules']) or 'none')}"
    why = "SELF_HEALING=false" if not status["env_enabled"] else "run-time switch off"
    return f"self-healing: <b>off</b> ({why}){who}: nothing runs without a human"
