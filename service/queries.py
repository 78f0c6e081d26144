"""The application service's read side: what adapters list and look up, over the incident registry alone.

`IncidentRunner` (service/runner.py) subclasses it over the registry it opens; a command that only
reads the registry (`aiops incidents` with no service running) opens `IncidentQueries.over(settings)`
instead of a whole runner, so it loads no graph, checkpointer or policy (about 0.3 s of CPU instead of 2 s).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from core.models import IncidentStatus
from core.settings import Settings
from store.registry import IncidentRegistry, IncidentRow


class IncidentQueries:
    def __init__(self, registry: IncidentRegistry) -> None:
        self.registry = registry

    @classmethod
    @contextmanager
    def over(cls, settings: Settings) -> Iterator[IncidentQueries]:
        """The read side over the data dir's registry, for a command that reads and ends."""
        yield cls(IncidentRegistry(settings))

    def incident(self, incident_id: str) -> IncidentRow | None:
        """The incident's registry row (status, plan, decision state, on call), or None."""
        return self.registry.get(incident_id)

    def plan(self, plan_id: str) -> IncidentRow | None:
        """The row of the incident whose plan is `plan_id`, or None."""
        return self.registry.by_plan(plan_id)

    def incidents(self, limit: int = 50, status: str | None = None) -> list[IncidentRow]:
        """The most recently updated incidents, optionally of one status."""
        return self.registry.list(limit, status)

    def pending(self, limit: int = 20) -> list[IncidentRow]:
        """Incidents whose plan awaits a human decision."""
        return self.registry.list(limit, IncidentStatus.AWAITING_APPROVAL.value)

    def status_counts(self) -> dict[str, int]:
        """Incidents per status, over the whole registry (for /metrics)."""
        return self.registry.status_counts()

    def oldest_pending_since(self) -> datetime | None:
        """When the longest-waiting plan started waiting for a human, or None (for /metrics)."""
        return self.registry.oldest_pending_since()
