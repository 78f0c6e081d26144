"""Where a notification lands: the open incident its firing alerts join, or the one it opens.

Asked twice for every notification: when the webhook accepts it (its 202 names the incident, decided
and recorded then) and when the run takes it off the queue (which must land in the same place). The
service process asks through its runner; an intake process (`aiops serve --intake-processes N`) has its
own `Admission` over the same stores, since it accepts webhooks without running any incident.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from agents.correlation import Correlation, Correlator
from agents.triage import NOISE_ALERTS
from core.models import ON_DEMAND_ALERT, AlertmanagerWebhook, Incident
from core.settings import Settings
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

    def join(self, webhook: AlertmanagerWebhook, incident: Incident, intake: bool = False, *,
             recheck: bool = True) -> Correlation | None:
        """Firing alerts: the other open incident they join, or None (they are `incident.id`'s own).

        The joined incident is checked in the registry (closed there since, e.g. interrupted: stale in
        the index, correlate again). At `intake` (the webhook's hot path: in a storm hundreds of
        notifications a second join one incident) that check is skipped for an incident this process
        saw open in the last second, and the join's details are left to the run (see `admit`).
        `recheck=False` leaves the check to the caller (`admit_many`: after its transaction)."""
        return self._join(webhook, incident.id, incident.alert.name, incident.severity, intake, recheck)

    def _join(self, webhook: AlertmanagerWebhook, incident_id: str, name: str, severity: str, intake: bool,
              recheck: bool) -> Correlation | None:
        """`join`, given what it reads of the incident: its id, its first alert's name and its severity."""
        if name in NOISE_ALERTS or severity in ("none", "info"):
            return None  # heartbeats and info alerts never collect a storm
        if name == ON_DEMAND_ALERT:
            return None  # POST /api/v1/analyze: every request investigates anew
        c = self.correlator.correlate(webhook, incident_id, defer_join=intake)
        if c.incident_id == incident_id:  # it opened this incident (now, or before: a re-send): run it
            return None
        if recheck and self._unchecked(c.incident_id, intake) and not self._open_in_registry(c.incident_id, intake):
            self.correlator.close_incident(c.incident_id)  # closed elsewhere since: stale in the index
            c = self.correlator.correlate(webhook, incident_id, defer_join=intake)
        return c if c.joined and c.incident_id != incident_id else None

    def _unchecked(self, incident_id: str, intake: bool) -> bool:
        return not intake or time.monotonic() - self._seen_open.get(incident_id, -2.0) > 1.0

    def _open_in_registry(self, incident_id: str, intake: bool) -> bool:
        """False when the registry has the incident closed (no row: not written yet, it counts as open)."""
        row = self.registry.get(incident_id)
        if row is not None and row.status not in OPEN_STATUSES:
            return False
        if intake:
            if len(self._seen_open) > 1000:
                self._seen_open.clear()
            self._seen_open[incident_id] = time.monotonic()
        return True

    def split(self, webhook: AlertmanagerWebhook) -> list[AlertmanagerWebhook]:
        """The notification in parts about unrelated things (`agents.correlation.split_by_cause`), each
        queued and admitted as a notification of its own: the same alert on two hosts is two incidents."""
        return self.correlator.split(webhook)

    def admit(self, webhook: AlertmanagerWebhook, incident_id: str) -> str:
        """The incident a notification lands in, decided when it is accepted (the webhook's answer): the
        open incident its firing alerts join, else `incident_id`, the one it opens. The join is recorded,
        so the run that takes the notification off the queue later lands in the same incident. Resolved
        alerts land in the incident they belong to (read only: the run closes it)."""
        return self._land(webhook, incident_id, recheck=True)[0]

    def _land(self, webhook: AlertmanagerWebhook, incident_id: str, recheck: bool) -> tuple[str, bool]:
        """(where it lands, whether that is a joined incident whose registry row is still to be checked)."""
        if all(a.status == "resolved" for a in webhook.alerts):
            return self.correlator.owner_of(webhook) or incident_id, False
        # What `join` reads of the incident `incident_from_webhook` would build (the name and severity of the
        # alert it is about), without building it: this runs for every notification the webhook accepts.
        head = webhook.incident_alerts[0]
        c = self._join(webhook, incident_id, head.name, head.severity, True, recheck)  # the run records the join's details
        if c is None:
            return incident_id, False
        return c.incident_id, not recheck and self._unchecked(c.incident_id, True)

    def admit_many(self, items: Sequence[tuple[AlertmanagerWebhook, str]]) -> list[str | Exception]:
        """`admit` for several notifications in one correlation-store transaction (group commit, see
        `service.admission_batch`), in order: each is a savepoint of it, so one that raises is undone
        alone and its exception is its result; the others are committed together. If that commit fails
        this raises, and none of them is recorded.

        The registry check of the incidents they joined (`join`) comes after the commit, once per
        incident: the registry's transactions take the same SQLite file's write lock, which the batch
        holds. One found closed there is closed in the index, and what joined it is admitted again."""
        out: list[str | Exception] = []
        unchecked: dict[str, list[int]] = {}  # joined incident -> the items that joined it
        with self.correlator.batch():
            for i, (webhook, incident_id) in enumerate(items):
                try:
                    landed, check = self._land(webhook, incident_id, recheck=False)
                except Exception as exc:  # noqa: BLE001 - that notification's own answer (its request's error)
                    out.append(exc)
                    continue
                out.append(landed)
                if check:
                    unchecked.setdefault(landed, []).append(i)
        for joined, indexes in unchecked.items():
            try:
                if self._open_in_registry(joined, intake=True):
                    continue
                self.correlator.close_incident(joined)  # closed elsewhere since: stale in the index
            except Exception as exc:  # noqa: BLE001 - the answer of the notifications that joined it
                for i in indexes:
                    out[i] = exc
                continue
            for i in indexes:
                try:
                    out[i] = self.admit(*items[i])
                except Exception as exc:  # noqa: BLE001
                    out[i] = exc
        return out
