"""Where a notification lands: the open incident its firing alerts join, or the one it opens.

Asked twice for every notification: when the webhook accepts it (its 202 names the incident, decided
and recorded then) and when the run takes it off the queue (which must land in the same place). The
service process asks through its runner; an intake process (`aiops serve --intake-processes N`) has its
own `Admission` over the same stores, since it accepts webhooks without running any incident.
"""

from __future__ import annotations

import time

from agents.correlation import Correlation, Correlator
from agents.triage import NOISE_ALERTS
from core.models import ON_DEMAND_ALERT, AlertmanagerWebhook, Incident
from core.settings import Settings
from graphs.incident import incident_from_webhook
from store.registry import OPEN_STATUSES, IncidentRegistry


class Admission:
    def __init__(self, correlator: Correlator, registry: IncidentRegistry) -> None:
        self.correlator = correlator
        self.registry = registry
        self._seen_open: dict[str, float] = {}  # joined incident -> when the registry last said it is open

    @classmethod
    def over_stores(cls, settings: Settings) -> Admission:
        """An admission of its own over the service's stores, for an intake process (it runs no incident,
        so it has no runner); `close` it when done."""
        return cls(Correlator(settings), IncidentRegistry(settings))

    def close(self) -> None:
        self.correlator.store.close()

    def join(self, webhook: AlertmanagerWebhook, incident: Incident, intake: bool = False) -> Correlation | None:
        """Firing alerts: the other open incident they join, or None (they are `incident.id`'s own).

        The joined incident is checked in the registry (closed there since, e.g. interrupted: stale in
        the index, correlate again). At `intake` (the webhook's hot path: in a storm hundreds of
        notifications a second join one incident) that check is skipped for an incident this process
        saw open in the last second, and the join's details are left to the run (see `admit`)."""
        if incident.alert.name in NOISE_ALERTS or incident.severity in ("none", "info"):
            return None  # heartbeats and info alerts never collect a storm
        if incident.alert.name == ON_DEMAND_ALERT:
            return None  # POST /api/v1/analyze: every request investigates anew
        c = self.correlator.correlate(webhook, incident.id, defer_join=intake)
        if c.incident_id == incident.id:  # it opened this incident (now, or before: a re-send): run it
            return None
        now = time.monotonic()
        if not intake or now - self._seen_open.get(c.incident_id, -2.0) > 1.0:
            row = self.registry.get(c.incident_id)
            if row is not None and row.status not in OPEN_STATUSES:  # closed elsewhere since: stale in the index
                self.correlator.close_incident(c.incident_id)
                c = self.correlator.correlate(webhook, incident.id, defer_join=intake)
            elif intake:
                if len(self._seen_open) > 1000:
                    self._seen_open.clear()
                self._seen_open[c.incident_id] = now
        return c if c.joined and c.incident_id != incident.id else None

    def split(self, webhook: AlertmanagerWebhook) -> list[AlertmanagerWebhook]:
        """The notification in parts about unrelated things (`agents.correlation.split_by_cause`), each
        queued and admitted as a notification of its own: the same alert on two hosts is two incidents."""
        return self.correlator.split(webhook)

    def admit(self, webhook: AlertmanagerWebhook, incident_id: str) -> str:
        """The incident a notification lands in, decided when it is accepted (the webhook's answer): the
        open incident its firing alerts join, else `incident_id`, the one it opens. The join is recorded,
        so the run that takes the notification off the queue later lands in the same incident. Resolved
        alerts land in the incident they belong to (read only: the run closes it)."""
        incident = incident_from_webhook(webhook).model_copy(update={"id": incident_id})
        if all(a.status == "resolved" for a in webhook.alerts):
            return self.correlator.owner_of(webhook) or incident_id
        c = self.join(webhook, incident, intake=True)  # the run records the join's details, re-checked
        return c.incident_id if c is not None else incident_id
