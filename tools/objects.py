"""The objects an incident names or observes, and whether an action's objects are among them.

An action acts on objects: the host (or PVE node, or router) it runs on, and the guest, interface,
service or path its parameters name. Every one of them must come from this incident, never from a
model's imagination nor from another incident (issue 16.4): either the alert's labels name it, or a
reading taken in this incident is about it (`Evidence.about`, the component and labels of a metric or
log item, a path in a log line). `Objects.problems(action, entry)` says which object does not; planning
refuses such a plan with that reason, whoever proposed it (rules, a model, memory).

And the evidence an action relies on must be about that same object (`about_object`): a filesystem
series of backup-01 does not justify a cleanup on web-01, and a stopped guest 101 does not justify a
start of guest 102.

Kinds used across toolsets: host, service, path, mount, and whatever a toolset names (vmid, node,
interface, router, ...). The alert's generic labels are read here; a toolset reads its own
(`Toolset.names`).
"""

from __future__ import annotations

import posixpath
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.models import Action, Evidence, TriageVerdict
from core.subject import SERVICE_LABELS, host_names, host_part, unit_name


class ObjectSpec(Protocol):
    """What this module reads of a catalog entry (tools.catalog_entry.ObjectSpec): what its target
    names, and which of its parameters name an object (`Param.names`)."""

    @property
    def target_kind(self) -> str: ...

    @property
    def parameters(self) -> Mapping[str, Any]: ...

# Labels that name each generic kind (values used as they are, `instance` without its port); the
# host and service ones are core/subject.py's.
PATH_LABELS = ("path", "config_path", "file", "filename", "dir", "directory")
MOUNT_LABELS = ("mountpoint",)
_PATH_IN_TEXT = re.compile(r"(?<![\w.])(/(?:[\w.@+-]+/)*[\w.@+-]+)")
_SELECTOR_LABELS = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*=~?\s*"((?:[^"\\]|\\.)*)"')
# Which selector label of a metric item names which kind.
_SELECTOR_KINDS = {"host": "host", "hostname": "host", "nodename": "host", "instance": "host",
                   "service": "service", "name": "service", "unit": "service", "container": "service",
                   "mountpoint": "mount", "interface": "interface", "ifName": "interface", "vmid": "vmid",
                   "node": "node"}


def norm_path(value: str) -> str:
    p = posixpath.normpath(value)
    return "/" + p.lstrip("/") if p.startswith("//") else p


def under(path: str, root: str) -> bool:
    path, root = norm_path(path), norm_path(root)
    return path == root or root == "/" or path.startswith(root.rstrip("/") + "/")


def evidence_objects(ev: Evidence) -> dict[str, set[str]]:
    """What one evidence item is about, by kind: its `about`, its component (a host or a service),
    the labels of a metric selector, and the absolute paths its excerpt quotes."""
    out: dict[str, set[str]] = defaultdict(set)
    for kind, value in ev.about.items():
        if value:
            out[kind].add(value)
    if ev.component:
        out["host"].add(ev.component)
        out["service"].add(ev.component)
    if ev.signal == "metric":
        for label, value in _SELECTOR_LABELS.findall(ev.query):
            named = _SELECTOR_KINDS.get(label)
            if named and value:
                out[named].add(host_part(value) if named == "host" else value)
    for p in _PATH_IN_TEXT.findall(ev.excerpt):
        out["path"].add(norm_path(p))
    return out


@dataclass
class Objects:
    """Objects by kind: named by the alert, or observed in evidence read in this incident."""

    named: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    observed: dict[str, dict[str, str]] = field(default_factory=lambda: defaultdict(dict))  # kind -> value -> ev id
    label_values: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, labels: dict[str, str], verdict: TriageVerdict | None, evidence: list[Evidence],
           toolset_names: list[dict[str, set[str]]]) -> Objects:
        o = cls()
        o.label_values = {v for v in labels.values() if v}
        if labels.get("instance"):
            o.label_values.add(host_part(labels["instance"]))
        if hosts := host_names(labels):
            o.named["host"] |= hosts
        for key in SERVICE_LABELS:
            if labels.get(key):
                o.named["service"].add(unit_name(labels[key]))
        for key in PATH_LABELS:
            if labels.get(key, "").startswith("/"):
                o.named["path"].add(norm_path(labels[key]))
        for key in MOUNT_LABELS:
            if labels.get(key, "").startswith("/"):
                o.named["mount"].add(norm_path(labels[key]))
        if verdict is not None:
            if verdict.host:
                o.named["host"].add(verdict.host)
            if verdict.service:
                o.named["service"].add(verdict.service)
        for names in toolset_names:
            for kind, values in names.items():
                o.named[kind] |= {v for v in values if v}
        for ev in evidence:
            if ev.tool == "alertmanager":  # the alert's own record: already read above, not a reading
                continue
            for kind, values in evidence_objects(ev).items():
                for v in values:
                    o.observed[kind].setdefault(v, ev.id)
        return o

    def values(self, kind: str) -> set[str]:
        return set(self.named.get(kind, set())) | set(self.observed.get(kind, {}))

    def source(self, kind: str, value: str) -> str | None:
        """Where `value` of `kind` comes from ("the alert", "ev-3"), or None: nobody named it."""
        if value in self.named.get(kind, set()):
            return "the alert"
        if value in self.observed.get(kind, {}):
            return self.observed[kind][value]
        if kind in ("host", "service") and value in self.label_values:
            return "the alert"
        if kind == "path":
            for root_kind in ("path", "mount"):
                for root in self.values(root_kind):
                    if under(value, root):
                        return "the alert" if root in self.named.get(root_kind, set()) else \
                            self.observed[root_kind].get(root, "the evidence")
        return None

    def problems(self, action: Action, entry: ObjectSpec) -> list[str]:
        """Why an object of `action` is not this incident's (empty: every object is)."""
        out = []
        for kind, value in object_values(action, entry):
            if self.source(kind, value) is None:
                out.append(f"{action.name}: {kind} {value!r} is neither named by the alert nor observed in "
                           f"this incident's evidence")
        return out


def object_values(action: Action, entry: ObjectSpec) -> list[tuple[str, str]]:
    """(kind, value) of each object the action acts on: its target and its object parameters."""
    out = [(entry.target_kind, action.target)] if entry.target_kind else []
    for name, spec in entry.parameters.items():
        if spec.names and name in action.parameters:
            value = str(action.parameters[name])
            out.append((spec.names, norm_path(value) if spec.names in ("path", "mount") else value))
    return out


def object_key(action: Action, entry: ObjectSpec) -> str:
    """The objects an action acts on besides its target, canonically ("node=pve-01,vmid=101"): with the
    action name and target, what the self-healing guards compare between runs."""
    return ",".join(f"{name}={action.parameters[name]}" for name, spec in sorted(entry.parameters.items())
                    if spec.names and name in action.parameters)


def about_object(ev: Evidence, action: Action, entry: ObjectSpec, kinds: list[str]) -> bool:
    """Is `ev` about the action's object of each of `kinds` (its host, guest, interface, service, path)?"""
    mine = dict(object_values(action, entry))
    seen = evidence_objects(ev)
    for kind in kinds:
        value = mine.get(kind)
        if value is None:
            continue
        if kind in ("path", "mount"):
            if not any(under(value, p) or under(p, value) for p in seen.get("path", set()) | seen.get("mount", set())):
                return False
        elif value not in seen.get(kind, set()):
            return False
    return True


def contradicts(ev: Evidence, action: Action, entry: ObjectSpec) -> bool:
    """Does the item's own `about` name *another* object of a kind the action acts on (another host,
    another guest, a path on another branch)? Such an item never justifies the action."""
    mine = dict(object_values(action, entry))
    for kind, value in ev.about.items():
        have = mine.get(kind)
        if have is None or not value:
            continue
        if kind in ("path", "mount"):
            if not (under(value, have) or under(have, value)):
                return True
        elif value != have:
            return True
    return False
