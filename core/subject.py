"""What an alert is about, read from its labels: the machine, the service, the thing alerted on.

Every reading of these labels lives here, so "which host is this alert about" has one answer. There
are several questions, each with its own answer on purpose:

- `target_of` (`Alert.target`): the thing alerted on, most specific first (a service, pod, guest or
  interface before the machine it runs on). It names the incident and keys storm correlation.
- `host_of`: the one machine (triage's `TriageVerdict.host`, a metric reading's `about["host"]`, the
  object an escalation names when triage found none).
- `host_names`: every machine name the labels give, a set rather than a choice: what evidence and
  actions bind to (tools/objects.py), the router reporting an interface, and (without `node`) the
  hosts a generated playbook may name.
- `has_explicit_host`: a label names the machine itself, not an exporter's address.
- `service_of`: the one affected service (triage's `TriageVerdict.service`); `SERVICE_LABELS` are the
  labels whose values name services for binding (tools/objects.py), a wider set on purpose: binding
  asks "is this name a service the alert mentions", not "which service is affected".

Storm correlation reads the `service` label alone (agents/correlation.py `alert_service`): joining two
alerts needs a name that means the same service on every alert, which a unit or container name does not.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

# Labels that name the machine itself, preferred in this order.
EXPLICIT_HOST_LABELS = ("host", "nodename", "hostname")
# Every label naming a machine, in the order `host_of` prefers them: `node` (a cluster's node: where the
# object runs) after the machine's own names, `instance` (an exporter's address) last.
HOST_LABELS = (*EXPLICIT_HOST_LABELS, "node", "instance")
# The hosts a generated playbook may name: not `node`, where a Kubernetes or Proxmox object merely runs.
PLAYBOOK_HOST_LABELS = (*EXPLICIT_HOST_LABELS, "instance")
# The thing alerted on (`target_of`), in this order; else the scrape job.
TARGET_LABELS = ("service", "job_service", "pod", "vm", "interface", "host", "instance")
# Labels whose values name a service the alert mentions (binding; see the module docstring).
SERVICE_LABELS = ("service", "name", "unit", "job_service", "app", "container", "process", "groupname")
# The affected service (`service_of`), most specific first. `name` means a unit, process or container
# only where the exporter says so (for Ceph it names a health check).
AFFECTED_SERVICE_LABELS = ("service", "service_name", "groupname", "container", "container_name", "deployment",
                           "statefulset", "daemonset", "cronjob", "app", "envoy_cluster_name", "backend", "proxy")
_NAME_IS_SERVICE = re.compile(r"systemd|node|process|cadvisor|docker|container|windows|pve|vmware")
_GENERIC_JOBS = re.compile(r"^(node|windows|smartctl|ipmi|blackbox|snmp|kube-state-metrics|cadvisor|netdata|"
                           r"ebpf|process|systemd|apcupsd|junos|speedtest|ssl|pve|vmware)$")
_POD_HASH = re.compile(r"-(?:[a-z0-9]{8,10}-)?[a-z0-9]{5}$")
_UNIT_SUFFIX = re.compile(r"\.(service|socket|timer|mount)$")


def host_part(value: str) -> str:
    """`web-01:9100` -> `web-01`; `https://shop.example:443/x` -> `shop.example`; `[2001:db8::7]:9100` ->
    `2001:db8::7`; a bare IPv6 address stays as it is."""
    v = re.sub(r"^[a-z][a-z0-9+.-]*://", "", value).split("/", 1)[0]
    if v.startswith("["):
        return v[1:].split("]", 1)[0]
    return v.rsplit(":", 1)[0] if v.count(":") == 1 else v


def _host_value(key: str, value: str) -> str:
    return host_part(value) if key == "instance" else value


def host_of(labels: Mapping[str, str]) -> str:
    """The machine: an explicit host label, else a cluster node, else the instance without its port
    (or URL scheme and path). Empty when no label names one."""
    for key in HOST_LABELS:
        if labels.get(key):
            return _host_value(key, labels[key])
    return ""


def host_names(labels: Mapping[str, str], keys: Iterable[str] = HOST_LABELS) -> set[str]:
    """Every machine name the labels give (`instance` without its port)."""
    return {_host_value(k, labels[k]) for k in keys if labels.get(k)}


def has_explicit_host(labels: Mapping[str, str]) -> bool:
    return any(labels.get(k) for k in EXPLICIT_HOST_LABELS)


def target_of(labels: Mapping[str, str]) -> str:
    """The thing the alert is about: service, pod, vm, interface or instance, in that order."""
    for key in TARGET_LABELS:
        if labels.get(key):
            return labels[key]
    return labels.get("job", "unknown")


def unit_name(value: str) -> str:
    """A systemd unit's service name: `nginx.service` -> `nginx`."""
    return _UNIT_SUFFIX.sub("", value)


def service_of(labels: Mapping[str, str], job: str) -> str:
    """The affected service from the labels the rule uses (a systemd unit, container, workload, pod)."""
    name = labels.get("name", "")
    if name and _NAME_IS_SERVICE.search(job or ""):
        return unit_name(name)
    for key in AFFECTED_SERVICE_LABELS:
        if labels.get(key):
            return labels[key]
    if labels.get("pod"):
        return _POD_HASH.sub("", labels["pod"])
    if job and not _GENERIC_JOBS.match(job):
        return job
    return ""
