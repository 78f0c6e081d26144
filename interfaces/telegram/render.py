"""Telegram HTML for incidents and plans, and the 4,096-character split.

Everything that came from an alert, a log, a tool or a model goes through `esc()` before it is put
between our tags: Telegram rejects a message whose HTML does not parse, and an alert annotation
containing `<script>` or `&` must show as text, never as markup. Messages are built line by line with
every tag closed on its own line, so `split()` can cut between lines without breaking the markup.
"""

from __future__ import annotations

import html
from typing import Any

from agents.approval import SHORT_HASH
from core.links import safe_url
from core.models import IncidentReport, Plan

MAX_MESSAGE = 4096
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}  # what esc() changes (html.escape, quote=False)


def esc(value: object) -> str:
    return html.escape(str(value), quote=False)


def b(text: object) -> str:
    return f"<b>{esc(text)}</b>"


def code(text: object) -> str:
    return f"<code>{esc(text)}</code>"


def units(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units: an emoji outside the BMP is two)."""
    return len(text.encode("utf-16-le")) // 2


def split(text: str, limit: int = MAX_MESSAGE, *, markup: bool = True) -> list[str]:
    """Cut `text` into messages of at most `limit` characters, between lines.

    The markup counts too, so a part is never over Telegram's limit after its entities are parsed. A
    single line longer than `limit` (a huge log excerpt) is shown as escaped plain text in pieces, so
    no piece ends inside a tag or an `&entity;`; with `markup=False` (a plain-text message) it is cut
    as it is.
    """
    parts: list[str] = []
    current = ""
    for line in text.split("\n"):
        pieces = [line]
        if units(line) > limit:
            plain = html.unescape(_strip_tags(line)) if markup else line
            pieces, size = [], 0
            chunk: list[str] = []
            for ch in plain:
                e = _ESCAPES.get(ch, ch) if markup else ch
                n = len(e) + (ord(ch) > 0xFFFF)  # units(e), without encoding each character
                if size + n > limit:
                    pieces.append("".join(chunk))
                    chunk, size = [], 0
                chunk.append(e)
                size += n
            if chunk:
                pieces.append("".join(chunk))
        for piece in pieces:
            candidate = f"{current}\n{piece}" if current else piece
            if units(candidate) > limit:
                if current:
                    parts.append(current)
                current = piece
            else:
                current = candidate
    if current.strip():
        parts.append(current)
    return parts or ["(empty)"]


def _strip_tags(line: str) -> str:
    out, inside = [], False
    for ch in line:
        if ch == "<":
            inside = True
        elif ch == ">" and inside:
            inside = False
        elif not inside:
            out.append(ch)
    return "".join(out)


def _short(text: str, n: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def diagnosis_lines(report: IncidentReport, *, evidence_per_hypothesis: int = 2, excerpt: int = 160) -> list[str]:
    evidence = {e.id: e for e in report.evidence}
    lines: list[str] = []
    for i, h in enumerate(report.hypotheses[:3], 1):
        lines.append(f"{i}. {b(h.component)} ({h.confidence:.0%}): {esc(_short(h.cause, 300))}")
        for eid in h.evidence_ids[:evidence_per_hypothesis]:
            ev = evidence.get(eid)
            if ev:
                lines.append(f"   ▸ {code(ev.id)} [{esc(ev.tool)}] {esc(_short(ev.excerpt, excerpt))}")
    return lines


def plan_lines(plan: Plan) -> list[str]:
    lines = [f"<b>Plan</b> {code(plan.id)} · risk <b>{esc(plan.risk.value.upper())}</b> · hash "
             f"{code(plan.content_hash[:SHORT_HASH])}{' · known fix' if plan.known_fix else ''}"]
    for a in plan.actions:
        params = ", ".join(f"{k}={v}" for k, v in a.parameters.items())
        lines.append(f"• {esc(a.name)} on {code(a.target)} ({esc(_short(params, 200))}) [{esc(a.risk.value)}]")
    lines.append(f"<i>why:</i> {esc(_short(plan.rationale, 400))}")
    for c in plan.checks[:4]:
        lines.append(f"<i>check:</i> {esc(_short(c, 300))}")
    if plan.expires_at:
        lines.append(f"<i>expires</i> {esc(plan.expires_at.strftime('%Y-%m-%d %H:%M UTC'))}")
    return lines


def outcome_lines(report: IncidentReport) -> list[str]:
    """Who decided, what ran, whether it worked: the part an approval card gains after the press."""
    lines: list[str] = []
    a = report.approval
    if a:
        who = f"{esc(a.approver)} via {esc(a.channel)}"
        if not a.valid:
            lines.append(f"⛔ <b>Decision refused</b> ({who}): {esc(a.reason)}; nothing was executed")
        elif a.decision == "approve":
            lines.append(f"✅ <b>Approved</b> by {who} at {esc(a.decided_at.strftime('%H:%M:%S UTC'))}")
        else:
            lines.append(f"❌ <b>Rejected</b> by {who}; nothing was executed")
    for e in report.executions:
        label = {"ok": "done", "dry_run": "DRY RUN", "failed": "FAILED", "skipped": "skipped"}[e.status]
        lines.append(f"⚙️ <b>Execute</b> {esc(label)}: {esc(e.action)} on {code(e.target)}: {esc(_short(e.output, 300))}")
    v = report.verification
    if v and report.executions:
        state = {True: "✅ RECOVERED: ", False: "🔥 NOT RECOVERED: ", None: ""}[v.recovered]
        lines.append(f"<b>Verify</b> {esc(state)}{esc(_short(v.note, 300))}")
    lines.append(f"<i>status</i> {esc(report.status.value)}")
    return lines


def link(url: str, label: str) -> str:
    """An `<a>`: the URL re-checked (core.links.safe_url) and escaped as an attribute; else the label alone."""
    checked = safe_url(url)
    return f'<a href="{html.escape(checked, quote=True)}">{esc(label)}</a>' if checked else esc(label)


def links_line(report: IncidentReport) -> list[str]:
    """🔗 runbook · alert rule · silence · Alertmanager · recalled runbook (none: no line)."""
    if not report.links:
        return []
    return ["🔗 " + " · ".join(link(lk.url, lk.label) for lk in report.links)]


def incident_card(report: IncidentReport, *, pending: bool) -> str:
    """The message the admins get: diagnosis, plan, risk, dry run; later, the decision and the result."""
    t = report.triage
    lines = [f"🚨 <b>{esc(_short(report.title, 200))}</b>",
             f"{code(report.incident_id)} · {esc(t.category)} · severity {esc(t.severity)} · mode {esc(report.mode)}",
             esc(_short(t.reason, 300)), *links_line(report)]
    if report.hypotheses:
        lines += ["", "<b>Diagnosis</b>", *diagnosis_lines(report)]
    if report.plan:
        lines += ["", *plan_lines(report.plan)]
    if pending and report.plan:
        lines += ["", "⏳ <b>Awaiting approval</b>"]
    else:
        lines += ["", *outcome_lines(report)]
    lines += on_call_lines(report)
    return "\n".join(lines)


def on_call_lines(report: IncidentReport) -> list[str]:
    """Who is on it: acknowledged, assigned, snoozed, closed (service/lifecycle.py), the last comment."""
    o, lines = report.on_call, []
    if o.acknowledged_by:
        lines.append(f"👀 Acknowledged by <b>{esc(o.acknowledged_by)}</b>")
    if o.assignee:
        lines.append(f"🙋 Assigned to <b>{esc(o.assignee)}</b>")
    if o.snoozed_until:
        lines.append(f"💤 Snoozed until {esc(o.snoozed_until.strftime('%Y-%m-%d %H:%M UTC'))}")
    if o.closed_by:
        lines.append(f"✔️ <b>Closed</b> by {esc(o.closed_by)}: {esc(_short(o.close_reason or '', 300))}")
    if report.comments:
        c = report.comments[-1]
        lines.append(f"💬 {esc(c.by)}: {esc(_short(c.text, 200))}"
                     + (f" (+{len(report.comments) - 1} more)" if len(report.comments) > 1 else ""))
    return ["", *lines] if lines else []


def details(report: IncidentReport) -> str:
    """Every evidence item and the full plan (the Details button, /show)."""
    lines = [incident_card(report, pending=report.status.value == "awaiting_approval"), "", "<b>Evidence</b>"]
    for ev in report.evidence[:30]:
        lines.append(f"{code(ev.id)} [{esc(ev.tool)}] {esc(ev.signal)} {esc(_short(ev.query, 120))}")
        lines.append(f"   {esc(_short(ev.excerpt, 400))}")
    if len(report.evidence) > 30:
        lines.append(f"… and {len(report.evidence) - 30} more")
    calls = report.llm_calls
    tokens = sum(c.input_tokens + c.output_tokens for c in calls)
    lines.append(f"<i>{len(calls)} LLM calls, {tokens} tokens</i>")
    return "\n".join(lines)


def incident_rows(rows: list[Any], title: str) -> str:
    if not rows:
        return f"{esc(title)}: none"
    lines = [f"<b>{esc(title)}</b>"]
    for r in rows:
        plan = f" · plan {code(r.plan_id)}" if r.plan_id else ""
        lines.append(f"{code(r.incident_id)} {esc(r.status)} · {esc(r.updated_at.strftime('%m-%d %H:%M'))}{plan}")
        lines.append(f"   {esc(_short(r.title, 150))}")
    return "\n".join(lines)
