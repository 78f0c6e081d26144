"""What the console's pages show, built from the runner's records (no template does any look-up).

The incident list filters on severity and service, which the registry does not keep: each row's
summary is read from the incident's checkpoint once per change (cached by its `updated_at`), so a
page of 200 incidents reads only those that changed since the last one.

Links come from the alert (runbook annotations, `generatorURL`) and the webhook (`externalURL`):
untrusted, so only absolute http(s) URLs become links, and they open with no referrer.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

from pydantic import BaseModel

from core.models import Alert, Evidence, Incident, IncidentReport
from interfaces import charts

SEVERITIES = ("critical", "error", "warning", "info", "none")
RUNBOOK_ANNOTATIONS = ("runbook_url", "runbook", "playbook_url", "dashboard_url", "grafana_url")


class Link(BaseModel):
    label: str
    url: str


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


def safe_url(url: str) -> str | None:
    """An absolute http(s) URL, or None: a `javascript:` or relative link from an alert is not a link."""
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return url if parts.scheme in ("http", "https") and parts.netloc and " " not in url else None


def silence_url(external_url: str, alert: Alert) -> str | None:
    """Alertmanager's "new silence" form, filled with the alert's labels."""
    base = safe_url(external_url)
    if base is None:
        return None
    matchers = ",".join(f'{k}="{json.dumps(v)[1:-1]}"' for k, v in sorted(alert.labels.items()))
    return f"{base.rstrip('/')}/#/silences/new?filter={quote('{' + matchers + '}', safe='')}"


def links(incident: Incident | None, external_url: str) -> list[Link]:
    if incident is None:
        return []
    out: list[Link] = []
    alert = incident.alert
    for name in RUNBOOK_ANNOTATIONS:
        url = safe_url(alert.annotations.get(name, ""))
        if url:
            out.append(Link(label=name.replace("_url", "").replace("_", " "), url=url))
    if url := safe_url(alert.generator_url):
        out.append(Link(label="alert rule (generatorURL)", url=url))
    if url := silence_url(external_url, alert):
        out.append(Link(label="silence in Alertmanager", url=url))
    if url := safe_url(external_url):
        out.append(Link(label="Alertmanager", url=url))
    return out


class Views:
    def __init__(self, runner: Any) -> None:
        self.runner = runner  # graphs.runner.IncidentRunner
        self._rows: OrderedDict[str, tuple[datetime, Row]] = OrderedDict()

    async def _row(self, reg: Any) -> Row:
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
        registered = await asyncio.to_thread(self.runner.registry.list, limit, status or None)
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
            links=links(incident, external), charts=charts.chartable(report),
            cited={str(i): [by_id[e] for e in h.evidence_ids if e in by_id] for i, h in enumerate(report.hypotheses)},
            logs=[e for e in report.evidence if e.signal == "log"],
            decisions=[d.model_dump(mode="json") for d in decisions],
            verification_chart=verified.id if verified else None)

    async def report(self, incident_id: str) -> IncidentReport | None:
        return await self.runner.report(incident_id)  # type: ignore[no-any-return]
