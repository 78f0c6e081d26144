"""What goes on the `alerts` queue, and the idempotency key that makes redelivery harmless.

A message is one Alertmanager notification (or one on-demand analysis). Its key is the notification's
group key plus the status, fingerprint and start time of every alert in it; the incident id is derived
from the key. So the same notification delivered twice (our queue reclaiming it from a dead worker, or
Alertmanager re-sending after a lost 202) runs on the same graph thread and registry row: never a second
incident, never a second execution. A *changed* notification (an alert resolved, a new alert joined the
group, the alert fired again later) has a different key and is triaged as usual (duplicate/resolved).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, Field

from core.models import ON_DEMAND_ALERT, Alert, AlertmanagerWebhook, utcnow

QUEUE = "alerts"
_RANGE = re.compile(r"^(\d{1,4})([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def alert_key(webhook: AlertmanagerWebhook) -> str:
    parts = sorted(f"{a.effective_fingerprint()}:{a.status}:{a.starts_at.isoformat()}" for a in webhook.alerts)
    return f"{webhook.group_key}|{webhook.status}|{','.join(parts)}"


def incident_id_for(key: str) -> str:
    return "inc-" + hashlib.sha256(key.encode()).hexdigest()[:12]


class AlertJob(BaseModel):
    """The body of an `alerts` queue message."""

    incident_id: str
    webhook: dict[str, Any]  # the validated AlertmanagerWebhook, by alias (as Alertmanager sent it)
    source: dict[str, Any] = Field(default_factory=lambda: {"kind": "live"})

    @classmethod
    def from_webhook(cls, webhook: AlertmanagerWebhook, source: dict[str, Any] | None = None) -> tuple[AlertJob, str]:
        key = alert_key(webhook)
        job = cls(incident_id=incident_id_for(key), webhook=webhook.model_dump(mode="json", by_alias=True),
                  source=source or {"kind": "live"})
        return job, key

    def message(self) -> dict[str, Any]:
        """The queue body: what `model_dump(mode="json")` gives, without walking the (already JSON-ready)
        webhook a second time on the intake's hot path."""
        return {"incident_id": self.incident_id, "webhook": self.webhook, "source": self.source}


def parse_time_range(value: str) -> timedelta:
    """'15m', '1h', '2d' (up to 30 days); ValueError otherwise."""
    m = _RANGE.match(value.strip())
    if not m:
        raise ValueError("time_range must look like 30m, 1h or 2d")
    seconds = int(m.group(1)) * _UNIT[m.group(2)]
    if not 60 <= seconds <= 30 * 86400:
        raise ValueError("time_range must be between 1m and 30d")
    return timedelta(seconds=seconds)


def on_demand_webhook(service_name: str, time_range: str) -> tuple[AlertmanagerWebhook, str]:
    """An investigation with no alert: a synthetic notification about `service_name` over `time_range`.

    Each request is its own investigation (its own key), so asking twice investigates twice.
    """
    window = parse_time_range(time_range)
    now = utcnow()
    request = uuid.uuid4().hex[:12]
    alert = Alert(status="firing", labels={"alertname": ON_DEMAND_ALERT, "service": service_name,
                                           "severity": "warning", "aiops_request": request},
                  annotations={"summary": f"on-demand investigation of {service_name} over the last {time_range}"},
                  startsAt=now - window)
    webhook = AlertmanagerWebhook(groupKey=f"analyze:{request}", status="firing", receiver="api",
                                  alerts=[alert])
    return webhook, f"analyze|{request}"
