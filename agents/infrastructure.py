"""The toolsets' part of diagnosis and verification: what each configured system says, read again.

Diagnosis calls `add_infrastructure_evidence` after the metric ranking and the log templates: every
toolset in the registry with a connected client reads what it knows about the alert's objects (a
hypervisor's guest and node, a router's interface, ...). Every reading becomes cited evidence; an item
a toolset could not read is one evidence item saying so, and the others stay. Metric suspects a
toolset finds (e.g. a hypervisor's RRD series) join the ranking. Verification calls `toolset_checks`
to re-read what those toolsets showed and what their actions changed, then `settle` (e.g. remove a
router's revert timer only when the change verified).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from agents.toolbox import Toolbox
from core.models import Evidence, ExecutionResult, Incident, TriageVerdict, VerificationCheck
from tools.registry import toolsets
from tools.toolset import ReadContext

log = logging.getLogger(__name__)


async def add_infrastructure_evidence(incident: Incident, toolbox: Toolbox, findings: Any, start: datetime,
                                      end: datetime, baseline_start: datetime,
                                      verdict: TriageVerdict | None = None) -> None:
    """Add every connected toolset's observations to `findings.book`, and its suspects to `findings.suspects`."""
    ctx = ReadContext(labels=incident.alert.labels, verdict=verdict, start=start, end=end,
                      baseline_start=baseline_start, target=incident.alert.target)
    for ts in toolsets():
        client = toolbox.clients.get(ts.name)
        if client is None or ts.shared_source:
            continue
        try:
            reading = await ts.investigate(client, ctx)
        except Exception as exc:  # noqa: BLE001 - a toolset's own bug is one unread item, not a failed diagnosis
            log.exception("toolset %s failed to read", ts.name)
            findings.book.add(tool=ts.name, query="investigate", component=incident.alert.target, signal="state",
                              anomalous=False, excerpt=f"could not read {ts.name}: {type(exc).__name__}: {exc}"[:400])
            continue
        for obs in reading.observations:
            findings.book.add(**obs.evidence_kwargs())
        if reading.suspects:
            findings.suspects = sorted([*findings.suspects, *reading.suspects], key=lambda s: -s.score)


def infrastructure_tools(toolbox: Toolbox) -> list[Any]:
    """The read-only tools of every connected toolset that is not a shared source (those the diagnosis
    builds itself), for the diagnosis model."""
    tools: list[Any] = []
    for ts in toolsets():
        client = toolbox.clients.get(ts.name)
        if client is not None and not ts.shared_source:
            tools += ts.read_tools(client, now=toolbox.current_time, call_graph=toolbox.call_graph)
    return tools


async def toolset_checks(evidence: list[Evidence], component: str, executions: list[ExecutionResult],
                         toolbox: Toolbox) -> list[VerificationCheck]:
    """Every connected toolset re-reads its evidence and its executed changes."""
    checks: list[VerificationCheck] = []
    for ts in toolsets():
        client = toolbox.clients.get(ts.name)
        if client is not None and not ts.shared_source:
            checks += await ts.verify(client, evidence, executions, component)
    return checks


async def settle(executions: list[ExecutionResult], recovered: bool, toolbox: Toolbox) -> str:
    """After verification, each toolset keeps or disarms what its changes armed (a note for the report)."""
    import asyncio

    notes = []
    for ts in toolsets():
        client = toolbox.clients.get(ts.name)
        if client is not None and not ts.shared_source:
            notes.append(await asyncio.to_thread(ts.settle, client, executions, recovered))
    return "".join(notes)
