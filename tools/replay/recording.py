"""The recorded-incident format: an alert, the telemetry around it, and the aftermath.

A recording holds metric series and log lines from before the alert (what diagnosis may read) and
after it (what verification reads once a remediation ran). Replaying pins the clock to the alert
time, so no tool can see the future until the graph advances it for verification. Hosts listed under
`hosts` are local stand-ins (a sandbox directory driven by Ansible with `connection: local`, see
`tools.replay.standins`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, Field

from core.models import AlertmanagerWebhook
from tools.log_types import LogRecord
from tools.logs.inmemory import InMemoryLogSource
from tools.metric_types import Series
from tools.metrics.inmemory import InMemoryMetricsSource

BUNDLED = Path(__file__).parent / "incidents"


class RecordedSeries(BaseModel):
    metric: str
    labels: dict[str, str]
    start: datetime
    step_seconds: int
    values: list[float | None]

    def to_series(self) -> Series:
        pts = [(self.start + timedelta(seconds=i * self.step_seconds), v)
               for i, v in enumerate(self.values) if v is not None]
        return Series(metric=self.metric, labels=self.labels, points=pts)


class SandboxFile(BaseModel):
    path: str  # absolute path on the (stand-in) host
    size_kb: int = 0
    age_days: float = 0
    content: str | None = None


class StandInHost(BaseModel):
    files: list[SandboxFile] = Field(default_factory=list)
    # A stand-in has no service manager: each unit's state is what `systemctl show` would say
    # (ActiveState, SubState, Result, NRestarts), kept as JSON where the host toolset reads it.
    units: dict[str, dict[str, str | int]] = Field(default_factory=dict)
    vars: dict[str, str] = Field(default_factory=dict)  # more inventory variables (e.g. aiops_acme_ca_bundle)


class RecordedIncident(BaseModel):
    name: str
    title: str
    description: str
    webhook: AlertmanagerWebhook
    alert_time: datetime
    recovery_after_seconds: int = 600
    call_graph: dict[str, list[str]] | None = None
    metrics: list[RecordedSeries] = Field(default_factory=list)
    logs: list[LogRecord] = Field(default_factory=list)
    hosts: dict[str, StandInHost] = Field(default_factory=dict)

    def metrics_source(self) -> InMemoryMetricsSource:
        return InMemoryMetricsSource([s.to_series() for s in self.metrics], now=self.alert_time)

    def logs_source(self) -> InMemoryLogSource:
        return InMemoryLogSource(self.logs, now=self.alert_time)


def bundled_incidents() -> list[Path]:
    return sorted(BUNDLED.glob("*.json"))


def load_recorded(path: str | Path) -> RecordedIncident:
    p = Path(path)
    if p.is_dir():
        p = p / "incident.json"
    return RecordedIncident.model_validate_json(p.read_text())
