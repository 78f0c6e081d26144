"""What the console's pages show, built from the runner's records (no template does any look-up).

The incident list filters on severity and service, which the registry does not keep: each row's
summary is read from the incident's checkpoint once per change (cached by its `updated_at`), so a
page of 200 incidents reads only those that changed since the last one.

Links are the report's (`IncidentReport.links`, built by core/links.py, the one place that checks
them: runbook annotations, `generatorURL`, the silence form and Alertmanager from `externalURL`,
recalled runbooks); the template escapes them again and opens them with no referrer.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from core.links import incident_links, safe_url
from core.models import Evidence, Incident, IncidentReport, Link
from interfaces import charts

if TYPE_CHECKING:
    from service.runner import IncidentRunner
    from store.registry import IncidentRow

SEVERITIES = ("critical", "error", "warning", "info", "none")


class Row(BaseModel):
    """One line of the incident list."""

    incident_id: str
    title: str
    status: str
    severity: str
    service: str
    category: str
    risk: str | None
    root_cause: str | None
    created_at: datetime
    updated_at: datetime


class IncidentPage(BaseModel):
    report: IncidentReport
    incident: Incident | None
    service: str
    links: list[Link]
    charts: list[Evidence]  # metric evidence that can be drawn, the top one first
    cited: dict[str, list[Evidence]]  # hypothesis index -> its evidence
    logs: list[Evidence]
    decisions: list[dict[str, Any]]
    verification_chart: str | None  # evidence id drawn with its after-fix series


class Views:
    def __init__(self, runner: IncidentRunner) -> None:
        self.runner = runner  # the application service: every read below goes through it
        self._rows: OrderedDict[str, tuple[datetime, Row]] = OrderedDict()

    async def _row(self, reg: IncidentRow) -> Row:
        cached = self._rows.get(reg.incident_id)
        if cached is not None and cached[0] == reg.updated_at:
            return cached[1].model_copy(update={"status": reg.status})
        report = await self.runner.report(reg.incident_id)
        record = await self.runner.incident_record(reg.incident_id)
        incident = record[0] if record else None
        t = report.triage if report else None
        row = Row(incident_id=reg.incident_id, title=reg.title, status=reg.status,
                  severity=(t.severity if t else None) or (incident.severity if incident else "warning"),
                  service=(t.service if t and t.service else None) or (incident.service if incident else ""),
                  category=t.category if t else "unknown",
                  risk=report.plan.risk.value if report and report.plan else None,
                  root_cause=report.hypotheses[0].component if report and report.hypotheses else None,
                  created_at=reg.created_at, updated_at=reg.updated_at)
        self._rows[reg.incident_id] = (reg.updated_at, row)
        self._rows.move_to_end(reg.incident_id)
        while len(self._rows) > 5000:
            self._rows.popitem(last=False)
        return row

    async def rows(self, *, status: str = "", severity: str = "", service: str = "", limit: int = 200) -> list[Row]:
        registered = await asyncio.to_thread(self.runner.incidents, limit, status or None)
        out = []
        for reg in registered:
            row = await self._row(reg)
            if severity and row.severity != severity:
                continue
            if service and service.lower() not in row.service.lower():
                continue
            out.append(row)
        return out

    async def incident(self, incident_id: str) -> IncidentPage | None:
        report = await self.runner.report(incident_id)
        if report is None:
            return None
        record = await self.runner.incident_record(incident_id)
        incident, external = record if record else (None, "")
        by_id = {e.id: e for e in report.evidence}
        decisions = await asyncio.to_thread(self.runner.decisions, incident_id)
        verified = charts.verified_evidence(report)
        return IncidentPage(
            report=report, incident=incident,
            service=(report.triage.service or (incident.service if incident else "")),
            links=[lk for lk in report.links or (incident_links(incident, external, report.evidence) if incident else [])
                   if safe_url(lk.url)],  # checked again: a stored report is read back, not trusted
            charts=charts.chartable(report),
            cited={str(i): [by_id[e] for e in h.evidence_ids if e in by_id] for i, h in enumerate(report.hypotheses)},
            logs=[e for e in report.evidence if e.signal == "log"],
            decisions=[d.model_dump(mode="json") for d in decisions],
            verification_chart=verified.id if verified else None)

    async def report(self, incident_id: str) -> IncidentReport | None:
        return await self.runner.report(incident_id)
