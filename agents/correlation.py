"""Storm correlation: an alert of a problem that already has an open incident joins it, at no LLM cost.

Alerts arriving within `CORRELATION_WINDOW_SECONDS` of an open incident's last alert join it when
they share, in this order of preference:

1. the fingerprint (the same alert again),
2. the Alertmanager group key,
3. the service (the `service` label, else `job` when the topology names that job),
4. the target (`Alert.target`: service, pod, vm, interface, host or instance),
5. the topology (`TOPOLOGY_FILE`, service -> the services it calls): two services are related when
   one calls the other directly or indirectly, or both depend on a common service. Each service is
   known by the set of itself and everything it depends on; two alerts relate when the sets meet.
   A database going down therefore pulls in the error and latency alerts of every service above it.

Every key is a row in an index (`memory.correlation`), so correlating is a look-up, never a scan;
joins are recorded with why they joined, and a resolved alert only resolves its own membership: the
incident closes when none of its alerts is still firing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path

from core.config_files import ConfigFileError, read_yaml
from core.models import Alert, AlertmanagerWebhook, utcnow
from core.settings import Settings
from memory.correlation import CorrelationStore, Key, Match, Member

_NAME = re.compile(r"^[A-Za-z0-9_.:@/-]{1,200}$")
RANKS = {"fingerprint": 0, "group": 1, "service": 2, "target": 3, "topology": 4}


class TopologyError(ValueError):
    """The topology file is unreadable or not a mapping of service -> list of services."""


@dataclass
class Topology:
    """Who calls whom. `closure(s)` is s and everything s depends on, directly or not."""

    calls: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None) -> Topology:
        if path is None:
            return cls()
        try:
            data = read_yaml(path, "TOPOLOGY_FILE")
        except ConfigFileError as exc:
            raise TopologyError(str(exc)) from None
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise TopologyError(f"TOPOLOGY_FILE {path}: expected a mapping service -> [services it calls]")
        calls: dict[str, list[str]] = {}
        for svc, callees in data.items():
            callees = callees or []
            if not isinstance(callees, list) or not all(isinstance(c, str) for c in callees):
                raise TopologyError(f"TOPOLOGY_FILE {path}: {svc!r} must map to a list of service names")
            for name in [str(svc), *callees]:
                if not _NAME.match(name):
                    raise TopologyError(f"TOPOLOGY_FILE {path}: {name!r} is not a service name")
            calls[str(svc)] = list(callees)
        return cls(calls)

    @cached_property
    def _closures(self) -> dict[str, frozenset[str]]:
        out: dict[str, frozenset[str]] = {}
        for start in {*self.calls, *(c for cs in self.calls.values() for c in cs)}:
            seen = {start}
            todo = [start]
            while todo:  # iterative DFS: cycles in a call graph are legal and must not loop
                for nxt in self.calls.get(todo.pop(), []):
                    if nxt not in seen:
                        seen.add(nxt)
                        todo.append(nxt)
            out[start] = frozenset(seen)
        return out

    def closure(self, service: str) -> frozenset[str]:
        return self._closures.get(service, frozenset())

    def depends_on(self, caller: str, callee: str) -> bool:
        return callee in self.closure(caller) and caller != callee


def alert_service(alert: Alert, topology: Topology | None = None) -> str:
    """The service an alert names: its `service` label, else its `job` when the topology knows that job.

    A job is a scrape job: `job="node"` is node-exporter on every host, not one service, so a bare job
    only counts when the topology names it (then it really is a service of the dependency graph).
    """
    if alert.labels.get("service"):
        return alert.labels["service"]
    job = alert.labels.get("job", "")
    return job if job and topology is not None and topology.closure(job) else ""


def alert_keys(alert: Alert, group_key: str, topology: Topology) -> list[Key]:
    keys = [Key("fingerprint", alert.effective_fingerprint(), RANKS["fingerprint"])]
    if group_key:
        keys.append(Key("group", group_key, RANKS["group"]))
    service = alert_service(alert, topology)
    if service:
        keys.append(Key("service", service, RANKS["service"]))
    if alert.target and alert.target != "unknown":
        keys.append(Key("target", alert.target, RANKS["target"]))
    for node in sorted(topology.closure(service)) if service else []:
        keys.append(Key("topology", node, RANKS["topology"]))
    return keys


def join_reason(match: Match, alert: Alert, topology: Topology) -> str:
    """Why `alert` belongs to the matched incident, in words for the report."""
    key = match.key
    if key.kind == "fingerprint":
        return f"same fingerprint {key.value} (the alert again)"
    if key.kind == "group":
        return f"same Alertmanager group {key.value}"
    if key.kind in ("service", "target"):
        return f"same {key.kind} {key.value}"
    svc, other, node = alert_service(alert, topology), match.origin, key.value
    if node == svc and topology.depends_on(other, svc):
        return f"topology: {other} calls {svc}"
    if node == other and topology.depends_on(svc, other):
        return f"topology: {svc} calls {other}"
    return f"topology: {svc} and {other} both depend on {node}"


@dataclass(frozen=True)
class Correlation:
    """The outcome for one notification: joined an open incident (`joined_to`) or opens `incident_id`."""

    incident_id: str
    joined_to: str | None
    reason: str

    @property
    def joined(self) -> bool:
        return self.joined_to is not None


class Correlator:
    """Decides, before any agent runs, whether a notification opens an incident or joins one."""

    def __init__(self, settings: Settings, store: CorrelationStore | None = None,
                 topology: Topology | None = None, clock: Callable[[], datetime] = utcnow) -> None:
        self.window = float(settings.CORRELATION_WINDOW_SECONDS)
        self.store = store or CorrelationStore(settings)
        self.topology = topology if topology is not None else Topology.load(settings.TOPOLOGY_FILE)
        self.clock = clock

    def correlate(self, webhook: AlertmanagerWebhook, new_incident_id: str, *, defer_join: bool = False) -> Correlation:
        """Firing alerts: join the open incident they belong to, or register `new_incident_id` for them
        (`defer_join`: see `CorrelationStore.correlate`)."""
        firing = [a for a in webhook.alerts if a.status == "firing"]
        if not firing:
            raise ValueError("correlate() takes a notification with firing alerts; use resolve() for the rest")
        head = firing[0]
        keys: dict[str, Key] = {}
        for a in firing:
            for k in alert_keys(a, webhook.group_key, self.topology):
                keys.setdefault(k.text, k)
        members = [Member(a.effective_fingerprint(), a.name, alert_service(a, self.topology), a.target,
                          "opened the incident" if i == 0 else "opened the incident (same notification)")
                   for i, a in enumerate(firing)]
        if self.window <= 0:
            return Correlation(incident_id=new_incident_id, joined_to=None, reason="correlation is off")
        landing = self.store.correlate(list(keys.values()), alert_service(head, self.topology) or head.target,
                                       members, new_incident_id, self.clock(), self.window,
                                       lambda match: join_reason(match, head, self.topology), defer_join)
        return Correlation(incident_id=landing.incident_id, joined_to=landing.incident_id if landing.joined else None,
                           reason=landing.reason)

    def owner_of(self, webhook: AlertmanagerWebhook) -> str | None:
        """The open incident the notification's resolved alerts belong to (read only), if any."""
        for alert in webhook.alerts:
            if alert.status == "resolved":
                found = self.store.open_incident_of(alert.effective_fingerprint())
                if found:
                    return found
        return None

    def resolve(self, webhook: AlertmanagerWebhook) -> tuple[list[str], list[str]]:
        """Resolved alerts: (incidents they belonged to, incidents that closed because nothing fires)."""
        fps = [a.effective_fingerprint() for a in webhook.alerts if a.status == "resolved"]
        return self.store.resolve(fps, self.clock())

    def close_incident(self, incident_id: str) -> None:
        self.store.close_incident(incident_id, self.clock())
