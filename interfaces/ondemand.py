"""An investigation of a service with no alert (`/analyze checkout 2h`, "what's wrong with checkout?").

The incident graph starts from an Alertmanager webhook, so an on-demand question becomes one synthetic
alert, `OnDemandAnalysis{service=...}`, starting `time_range` ago: triage, diagnosis and planning then
run exactly as for a real alert, and a second question about the same service while the first is open
is a duplicate, not a second incident.
"""

from __future__ import annotations

import re
from datetime import timedelta

from core.models import AlertmanagerWebhook, utcnow

_RANGE = re.compile(r"^(\d{1,5})([mhd])$")
_SERVICE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")


class BadRequest(ValueError):
    """The service name or range cannot be used (one line for the user)."""


def parse_range(value: str) -> timedelta:
    m = _RANGE.match(value.strip().lower())
    if not m:
        raise BadRequest(f"time range must look like 30m, 2h or 1d (got {value!r})")
    n, unit = int(m.group(1)), m.group(2)
    delta = timedelta(minutes=n) if unit == "m" else timedelta(hours=n) if unit == "h" else timedelta(days=n)
    if not timedelta(minutes=1) <= delta <= timedelta(days=30):
        raise BadRequest("time range must be between 1m and 30d")
    return delta


def on_demand_webhook(service: str, time_range: str = "1h") -> AlertmanagerWebhook:
    if not _SERVICE.match(service):
        raise BadRequest(f"not a service name: {service[:40]!r} (letters, digits, . _ : -)")
    delta = parse_range(time_range)
    labels = {"alertname": "OnDemandAnalysis", "service": service, "severity": "warning"}
    return AlertmanagerWebhook.model_validate({
        "version": "4", "groupKey": f"on-demand:{service}", "status": "firing", "receiver": "aiops-on-demand",
        "groupLabels": {"service": service}, "commonLabels": labels,
        "commonAnnotations": {"summary": f"on-demand analysis of {service} over the last {time_range}"},
        "alerts": [{"status": "firing", "labels": labels, "startsAt": (utcnow() - delta).isoformat(),
                    "annotations": {"summary": f"on-demand analysis of {service} over the last {time_range}",
                                    "time_range": time_range}}]})
