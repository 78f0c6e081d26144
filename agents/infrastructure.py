"""Infrastructure evidence for diagnosis: what the Proxmox VE cluster and the RouterOS router say.

Diagnosis calls `add_infrastructure_evidence` after the metric ranking and the log templates. When a
PVE cluster is configured, the alert's guest or node (if PVE knows it) is read: status, config,
failed tasks with their logs, node status, storage, and RRD series ranked by the same anomaly
ranking as Prometheus metrics (those suspects join the ranking). When a router is configured and
the alert names an interface, the router's view of that interface is read. Every reading becomes
cited evidence; an unreachable API becomes one evidence item saying so, not a failed diagnosis.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from agents.toolbox import Toolbox
from core.models import Evidence, ExecutionResult, Incident, VerificationCheck


async def add_infrastructure_evidence(incident: Incident, toolbox: Toolbox, findings: Any, start: datetime,
                                      end: datetime, baseline_start: datetime) -> None:
    """Add PVE / RouterOS observations to `findings.book` and PVE RRD suspects to `findings.suspects`."""
    labels = incident.alert.labels
    book = findings.book
    if toolbox.proxmox is not None:
        from tools.proxmox.evidence import investigate, looks_like_pve

        pve = await investigate(toolbox.proxmox, labels, start, end, baseline_start)
        if pve.error and looks_like_pve(labels):
            book.add(tool="proxmox", query="GET /cluster/resources", component=incident.alert.target,
                     signal="state", anomalous=False, excerpt=f"Proxmox VE could not be read: {pve.error}"[:400])
        for obs in pve.observations:
            book.add(**obs.evidence_kwargs())
        if pve.suspects:
            findings.suspects = sorted([*findings.suspects, *pve.suspects], key=lambda s: -s.score)
    if toolbox.routeros is not None:
        from tools.routeros.evidence import interface_from_labels
        from tools.routeros.evidence import investigate as investigate_router

        if interface_from_labels(labels):
            ros = await investigate_router(toolbox.routeros, labels)
            if ros.error:
                book.add(tool="routeros", query="/login", component=ros.interface or incident.alert.target,
                         signal="state", anomalous=False, excerpt=f"RouterOS could not be read: {ros.error}"[:400])
            for obs in ros.observations:
                book.add(**obs.evidence_kwargs())


def infrastructure_tools(toolbox: Toolbox) -> list[Any]:
    """The read-only PVE / RouterOS tools the diagnosis model may call."""
    tools: list[Any] = []
    if toolbox.proxmox is not None:
        from tools.proxmox.tools import make_proxmox_tools

        tools += make_proxmox_tools(toolbox.proxmox)
    if toolbox.routeros is not None:
        from tools.routeros.tools import make_routeros_tools

        tools += make_routeros_tools(toolbox.routeros)
    return tools


# -------------------------------------------------------------------------------- verification --
async def infrastructure_check(ev: Evidence, executions: list[ExecutionResult],
                               toolbox: Toolbox) -> VerificationCheck | None:
    """Re-read a PVE evidence item after a change: the guest's status, or an RRD series it cited."""
    if toolbox.proxmox is None:
        return None
    from tools.proxmox.verify import check_metric, check_status

    if ev.tool == "proxmox_rrd" and ev.signal == "metric":
        return await asyncio.to_thread(check_metric, toolbox.proxmox, ev)
    if ev.tool == "proxmox" and ev.signal == "state" and ev.query.endswith("/status/current"):
        return await asyncio.to_thread(check_status, toolbox.proxmox, ev, executions)
    return None


async def router_checks(executions: list[ExecutionResult], evidence: list[Evidence],
                        toolbox: Toolbox) -> list[VerificationCheck]:
    """Read every RouterOS change back (state, flaps since the change, where traffic goes now)."""
    if toolbox.routeros is None:
        return []
    from tools.routeros.verify import checks

    cited = next((e.id for e in evidence if e.tool == "routeros" and e.anomalous), "")
    return await asyncio.to_thread(checks, toolbox.routeros, executions, cited)


async def confirm_router_changes(executions: list[ExecutionResult], recovered: bool, toolbox: Toolbox) -> str:
    """Remove the revert jobs of verified RouterOS changes; leave them armed otherwise."""
    if toolbox.routeros is None:
        return ""
    from tools.routeros.verify import confirm

    return await asyncio.to_thread(confirm, toolbox.routeros, executions, recovered)
