"""The learning loop: recall similar past incidents and runbooks, and remember every finished one.

Recall turns matches into cited evidence (signal `memory` / `runbook`). A past incident with the same
signature whose fix was verified is the strongest prior there is: rule-mode diagnosis ranks its cause
first, and planning proposes the fix that worked before (so an LLM is not asked again).

Memory is an aid, never a dependency of the diagnosis: when Milvus or the embeddings endpoint is down
(or its breaker is open), recall is skipped and the report carries one `memory unavailable` evidence
line saying why (a DEGRADED row, like agents.degraded's notes); remembering the finished incident is deferred to memory's pending file, not lost.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from agents.degraded import UNAVAILABLE_QUERY
from agents.toolbox import Toolbox
from core import resilience
from core.links import safe_url
from core.models import (
    ON_DEMAND_ALERT,
    Evidence,
    ExecutionResult,
    Hypothesis,
    Incident,
    IncidentReport,
    TriageVerdict,
    Verification,
)
from memory.failures import MemoryUnavailable, dependency_of
from memory.records import IncidentRecord

log = logging.getLogger(__name__)

MIN_SIMILARITY = 0.55  # cosine: below this a past incident is not worth citing
MIN_RUNBOOK_SCORE = 0.9  # hybrid score (cosine + BM25 terms, 0..~1.8; see memory.incidents.search_runbooks)
SAME_INCIDENT = 0.85  # at or above, with the same signature, it is "the same incident again"


def signature(incident: Incident, verdict: TriageVerdict) -> str:
    return f"{incident.alert.name}|{incident.alert.target}|{verdict.category}"


def symptoms_text(incident: Incident, evidence: list[Evidence]) -> str:
    alert = incident.alert
    lines = [incident.title, " ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()))]
    lines += [f"{e.component}: {e.excerpt}" for e in evidence if e.anomalous][:8]
    return "\n".join(lines)


async def recall(incident: Incident, verdict: TriageVerdict, evidence: list[Evidence], toolbox: Toolbox,
                 add: Any) -> list[Any]:
    """Adds memory/runbook evidence via `add(**fields)`; returns the strong past matches (IncidentMatch)."""
    memory = toolbox.memory
    if memory is None:
        return []
    text = symptoms_text(incident, evidence)
    question = incident.alert.name == ON_DEMAND_ALERT  # an on-demand investigation: past incidents of its service
    try:
        if question:
            matches = await asyncio.to_thread(memory.similar_incidents, text, service=incident.alert.target, limit=3)
        else:
            matches = await asyncio.to_thread(memory.similar_incidents, text, alertname=incident.alert.name, limit=3)
        # Investigations remembered before they were known to be questions are never cited as past incidents.
        matches = [m for m in matches if m.record.alertname != ON_DEMAND_ALERT]
        runbooks = await asyncio.to_thread(memory.search_runbooks, text, limit=2)
    except Exception as exc:  # memory is an aid: its failure must not stop a diagnosis

        dependency, note = dependency_of(exc), memory_outage_note(exc)
        log.warning("diagnosis without memory: %s", note)
        add(tool=dependency, signal="state", component=dependency, anomalous=False, query=UNAVAILABLE_QUERY,
            excerpt=f"{note}; past incidents and runbooks not consulted")
        return []
    strong = []
    for m in matches:
        if m.score < MIN_SIMILARITY:
            continue
        r = m.record
        fix = ", ".join(a.get("name", "?") for a in r.actions) or "no action"
        outcome = {True: "recovered", False: "did NOT recover", None: "not verified"}[r.recovered]
        add(tool="memory", signal="memory", component=r.root_cause_component, anomalous=False, score=m.score,
            query=f"similar_incidents(alertname={incident.alert.name})",
            excerpt=f"past incident {r.id} ({r.occurred_at:%Y-%m-%d}, similarity {m.score:.2f}): root cause "
                    f"{r.root_cause_component}: {r.root_cause[:120]}; fix: {fix} -> {outcome}")
        strong.append(m)
    for rb in runbooks:
        if rb.score < MIN_RUNBOOK_SCORE:
            continue
        d = rb.doc
        add(tool="runbooks", signal="runbook", component=incident.alert.target, anomalous=False, score=rb.score,
            query=f"search_runbooks({incident.alert.name})", url=safe_url(d.source) or "",
            excerpt=f"runbook {d.alertname} ({d.source}): {(d.mitigation or d.diagnosis or d.meaning)[:200]}")
    return strong


def memory_outage_note(exc: BaseException) -> str:
    """`memory unavailable: milvus breaker open (<its last error>)` / `memory unavailable: embeddings <why>`
    (the shape of agents.degraded's notes, so the report shows it as a DEGRADED row)."""

    dependency = dependency_of(exc)
    b = resilience.breaker(dependency)
    why = (b.last_error or "") if isinstance(exc, resilience.CircuitOpenError) else f"{type(exc).__name__}: {exc}"
    why = why.split(": ", 1)[-1].strip().splitlines()[0][:160] if why.strip() else type(exc).__name__
    if b.state == "open":
        return f"memory unavailable: {dependency} breaker open ({why})"
    return f"memory unavailable: {dependency} {why}"


def known_fix(incident: Incident, verdict: TriageVerdict, matches: list[Any]) -> Any | None:
    """The best past incident with this signature whose fix was verified, if it is this incident again."""
    sig = signature(incident, verdict)
    for m in sorted(matches, key=lambda m: -m.score):
        if m.record.signature == sig and m.record.recovered is True and m.record.actions and m.score >= SAME_INCIDENT:
            return m
    return None


def remember_report(report: IncidentReport, incident: Incident, toolbox: Toolbox, resolution: str = "") -> None:
    """Store the incident with its outcome; `resolution` is how a person closed it (their reason)."""
    memory = toolbox.memory
    if memory is None or report.triage.kind != "incident" or incident.alert.name == ON_DEMAND_ALERT:
        return  # an on-demand investigation (`/analyze`, chat) answers a question: it is not an incident

    top: Hypothesis | None = report.hypotheses[0] if report.hypotheses else None
    done: list[ExecutionResult] = [e for e in report.executions if e.status == "ok"]
    ran = {(e.action, e.target) for e in done}
    actions = [a.model_dump(mode="json", include={"name", "target", "parameters"})
               for a in (report.plan.actions if report.plan else []) if (a.name, a.target) in ran]
    verification: Verification | None = report.verification
    record = IncidentRecord(
        id=report.incident_id, signature=signature(incident, report.triage), alertname=incident.alert.name,
        service=incident.alert.target, symptoms=symptoms_text(incident, report.evidence),
        labels=incident.alert.labels, root_cause_component=top.component if top else "",
        root_cause=top.cause if top else "", actions=actions,
        recovered=verification.recovered if verification else None,
        occurred_at=incident.alert.starts_at, resolution=resolution)

    try:
        memory.remember(record)
    except MemoryUnavailable as exc:  # kept in the pending file; stored once memory is back
        log.warning("%s", exc)
    except Exception as exc:  # a memory without a pending file (another IncidentMemoryPort)
        log.error("could not remember incident %s: %s", report.incident_id, exc)
