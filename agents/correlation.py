"""Storm correlation: an alert of a problem that already has an open incident joins it, at no LLM cost.

Alerts arriving within `CORRELATION_WINDOW_SECONDS` of an open incident's last alert join it when
they share, in this order of preference:

1. the fingerprint (the same alert again),
2. the Alertmanager group key *and* the target: a notification group (`group_by: [alertname, service]`)
   is how Alertmanager batches messages, not a cause, so the group alone never merges two hosts,
3. the service (the `service` label, else `job` when the topology names that job),
4. the target (`Alert.target`: service, pod, vm, interface, host or instance),
5. the topology (`TOPOLOGY_FILE`, service -> the services it calls): two services are related when
   one calls the other directly or indirectly, or both depend on a common service. Each service is
   known by the set of itself and everything it depends on; two alerts relate when the sets meet.
   A database going down therefore pulls in the error and latency alerts of every service above it.

A notification whose alerts are about unrelated things (the same alert on two hosts, grouped by
Alertmanager) is split before it is queued (`split_by_cause`): each part opens or joins its own
incident, so each plan acts on its own host.

Every key is a row in an index (`store.correlation`), so correlating is a look-up, never a scan;
joins are recorded with why they joined, and a resolved alert only resolves its own membership: the
incident closes when none of its alerts is still firing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path

from core.config_files import ConfigFileError, read_yaml
from core.models import Alert, AlertmanagerWebhook, utcnow
from core.settings import Settings
from store.correlation import CorrelationStore, Key, Match, Member

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
    target = alert.target  # read from the labels each time: once here
    if group_key:  # scoped by the target: the group key alone never merges two different targets
        keys.append(Key("group", f"{group_key}|{target}", RANKS["group"]))
    service = alert_service(alert, topology)
    if service:
        keys.append(Key("service", service, RANKS["service"]))
    if target and target != "unknown":
        keys.append(Key("target", target, RANKS["target"]))
    for node in sorted(topology.closure(service)) if service else []:
        keys.append(Key("topology", node, RANKS["topology"]))
    return keys


def join_reason(match: Match, alert: Alert, topology: Topology) -> str:
    """Why `alert` belongs to the matched incident, in words for the report."""
    key = match.key
    if key.kind == "fingerprint":
        return f"same fingerprint {key.value} (the alert again)"
    if key.kind == "group":
        group, _, target = key.value.rpartition("|")
        return f"same Alertmanager group {group} and target {target}"
    if key.kind in ("service", "target"):
        return f"same {key.kind} {key.value}"
    svc, other, node = alert_service(alert, topology), match.origin, key.value
    if node == svc and topology.depends_on(other, svc):
        return f"topology: {other} calls {svc}"
    if node == other and topology.depends_on(svc, other):
        return f"topology: {svc} calls {other}"
    return f"topology: {svc} and {other} both depend on {node}"


def cause_keys(alert: Alert, topology: Topology) -> set[str]:
    """What relates two alerts of one notification: the target, the service, the topology nodes."""
    keys = set()
    if alert.target and alert.target != "unknown":
        keys.add(f"target:{alert.target}")
    service = alert_service(alert, topology)
    if service:
        keys.add(f"service:{service}")
        keys.update(f"topology:{node}" for node in topology.closure(service))
    return keys


def split_by_cause(webhook: AlertmanagerWebhook, topology: Topology) -> list[AlertmanagerWebhook]:
    """The notification's alerts in parts that share a cause: the same target, the same service, or
    services related through the topology. Alerts about nothing named (no target, no service) stay
    with the first part. One part (the usual case) is the notification itself, unchanged; otherwise
    each part is a notification of its own (same group key, receiver and URLs), in the order of its
    first alert, and the alerts not analysed one by one (`omitted_alerts`) are counted on the first.
    """
    if len(webhook.alerts) < 2:
        return [webhook]
    parent = list(range(len(webhook.alerts)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    anonymous: list[int] = []
    for i, alert in enumerate(webhook.alerts):
        keys = cause_keys(alert, topology)
        if not keys:
            anonymous.append(i)
        for k in keys:
            if k in owner:
                parent[find(i)] = find(owner[k])
            else:
                owner[k] = i
    for i in anonymous:
        parent[find(i)] = find(0)
    parts: dict[int, list[Alert]] = {}
    for i, alert in enumerate(webhook.alerts):
        parts.setdefault(find(i), []).append(alert)
    if len(parts) == 1:
        return [webhook]
    out = []
    for n, alerts in enumerate(parts.values()):
        status = "firing" if any(a.status == "firing" for a in alerts) else "resolved"
        out.append(webhook.model_copy(update={
            "alerts": alerts, "status": status, "omitted_alerts": webhook.omitted_alerts if n == 0 else {},
            "common_labels": _common(a.labels for a in alerts),
            "common_annotations": _common(a.annotations for a in alerts)}))
    return out


def _common(maps: Iterable[dict[str, str]]) -> dict[str, str]:
    it = iter(maps)
    common = dict(next(it))
    for m in it:
        common = {k: v for k, v in common.items() if m.get(k) == v}
    return common


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

    def batch(self) -> AbstractContextManager[object]:
        """Several correlations in one store transaction (`CorrelationStore.batch`)."""
        return self.store.batch()

    def split(self, webhook: AlertmanagerWebhook) -> list[AlertmanagerWebhook]:
        """`split_by_cause` with this correlator's topology. Also when correlation is off: one incident
        is about one thing, whatever Alertmanager batched together."""
        return split_by_cause(webhook, self.topology)

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
