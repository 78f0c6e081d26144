"""Fit before fix: where each catalog action belongs, and the check planning runs before proposing it.

An action is only as good as its match to the problem. Deleting rotated logs frees a host filesystem
that logs filled; it does nothing for a failing disk, a Ceph OSD or an offline MinIO drive, and running
it there teaches users to switch the loop off. So every catalog entry declares a `Fit`:

- what it addresses: the alert categories, the domains (host, database, storage cluster, ...) and,
  where needed, the alert kind (a pattern over the alert's name and metric names),
- the evidence that must be present before it may run without a human (`requires`: each an
  observation of the diagnosis, e.g. a filesystem-usage series that rose *and* log lines showing the
  mount fills with logs),
- where it must never be proposed (`never`: hardware faults, storage-cluster components, a disk that
  is offline or failing, ...), and the labels the alert must give it (`needs_labels`).

`check` returns one of three verdicts. `refused`: the action does not belong here and is not proposed
at all (planning escalates instead). `suggest`: it belongs, but the required evidence is missing: a
human may approve it, policy never does. `fits`: it belongs and the evidence is there; only then can a
catalog `known_fix` be auto-approved. Values from the alert are untrusted: parameters that would
reach a host are checked against a strict pattern here too.
"""

from __future__ import annotations

import re
from typing import Literal, get_args

from pydantic import BaseModel, Field

from core.models import Action, Category, Domain, Evidence, TriageVerdict

FitStatus = Literal["fits", "suggest", "refused"]
_SAFE_PARAM = re.compile(r"^[A-Za-z0-9@._/:*,\[\]-]{1,128}$")


class EvidenceNeed(BaseModel):
    """One observation that must be in the diagnosis' evidence (any item matching is enough)."""

    name: str
    description: str
    signals: list[Literal["metric", "log", "memory", "runbook", "state"]]
    pattern: str  # regex over the item's tool, query and excerpt (case-insensitive)
    anomalous: bool = True  # the item must show something abnormal (not a flat series)
    alert_evidence: bool = False  # may the alert's own record (tool "alertmanager") satisfy it?
    about_subject: bool = False  # must the item be about the action's service/target?

    def met_by(self, evidence: list[Evidence], subjects: set[str]) -> Evidence | None:
        rx = re.compile(self.pattern, re.I)
        for e in evidence:
            if e.signal not in self.signals or (e.tool == "alertmanager" and not self.alert_evidence):
                continue
            if self.about_subject and e.component not in subjects:
                continue
            if self.anomalous and not e.anomalous and e.tool != "alertmanager":
                continue
            if rx.search(f"{e.tool} {e.query} {e.excerpt}"):
                return e
        return None


class Never(BaseModel):
    """A situation where the action must not be proposed, whatever else matches."""

    name: str
    categories: list[Category] = Field(default_factory=list)
    domains: list[Domain] = Field(default_factory=list)
    pattern: str = ""  # regex over the alert's name words, metric names and labels

    def hit(self, verdict: TriageVerdict, text: str) -> bool:
        return (verdict.category in self.categories or verdict.domain in self.domains
                or bool(self.pattern and re.search(self.pattern, text, re.I)))


class Fit(BaseModel):
    """Where a catalog action belongs. The default (no categories) fits nothing."""

    categories: list[Category] = Field(default_factory=list)
    domains: list[Domain] = Field(default_factory=list)  # empty: any domain not excluded by `never`
    alert_kind: str = ""  # regex the alert's name words / metric names must match ("" = any)
    alert_kind_description: str = ""
    needs_labels: list[list[str]] = Field(default_factory=list)  # each: one of these labels must be set
    requires: list[EvidenceNeed] = Field(default_factory=list)
    never: list[Never] = Field(default_factory=list)
    always_human: bool = False  # even with the evidence, never auto-approved (disruptive by nature)
    # Where the alert alone is reason enough to put the action before a human even without the
    # evidence (a failed unit says "restart me"); elsewhere missing evidence means not proposed at all.
    suggest_without_evidence: list[Category] = Field(default_factory=list)


class FitResult(BaseModel):
    action: str
    status: FitStatus
    reasons: list[str] = Field(default_factory=list)
    evidence_ids: list[str] = Field(default_factory=list)  # what satisfied `requires`
    missing: list[str] = Field(default_factory=list)

    def note(self) -> str:
        head = {"fits": "fits", "suggest": "suggestion only (a human decides)", "refused": "refused"}[self.status]
        why = "; ".join(self.reasons + [f"missing: {m}" for m in self.missing])
        return f"{self.action}: {head}" + (f" — {why}" if why else "")


def alert_text(verdict: TriageVerdict, labels: dict[str, str], metrics: bool = True) -> str:
    """What `alert_kind` (with metric names) and `never` patterns (without: an expression's guards such
    as `node_filesystem_readonly == 0` say what the alert is not) read: name words and labels."""
    from_labels = " ".join(f"{k}={v}" for k, v in sorted(labels.items()))
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", labels.get("alertname", "")).lower()
    return f"{name} {' '.join(verdict.metrics) if metrics else ''} {from_labels}"


def check(action: Action, fit: Fit, verdict: TriageVerdict, labels: dict[str, str],
          evidence: list[Evidence]) -> FitResult:
    """Does `action` belong to this incident, and is the evidence it needs there?"""
    res = FitResult(action=action.name, status="fits")
    text = alert_text(verdict, labels)
    plain = alert_text(verdict, labels, metrics=False)
    refusals: list[str] = []
    if not fit.categories:
        refusals.append("declares no situation it fits")
    elif verdict.category not in fit.categories:
        refusals.append(f"does not address {verdict.category} alerts (only {', '.join(fit.categories)})")
    if fit.domains and verdict.domain not in fit.domains:
        refusals.append(f"not for {verdict.domain.replace('_', ' ')} alerts")
    if fit.alert_kind and not re.search(fit.alert_kind, text, re.I):
        refusals.append(f"the alert is not {fit.alert_kind_description or 'of the kind it addresses'}")
    for never in fit.never:
        if never.hit(verdict, plain):
            refusals.append(f"never for {never.name}")
    for alternatives in fit.needs_labels:
        if not any(labels.get(k) for k in alternatives):
            refusals.append(f"the alert names no {' / '.join(alternatives)}")
    for key, value in action.parameters.items():
        if isinstance(value, str) and (not _SAFE_PARAM.match(value) or ".." in value):
            refusals.append(f"parameter {key}={value[:40]!r} is not a safe name")
    if not _SAFE_PARAM.match(action.target):
        refusals.append(f"target {action.target[:40]!r} is not a safe host name")
    if refusals:
        return res.model_copy(update={"status": "refused", "reasons": refusals})
    subjects = {action.target, *(str(v) for k, v in action.parameters.items() if k in ("service", "interface"))}
    for need in fit.requires:
        hit = need.met_by(evidence, subjects)
        if hit is None:
            res.missing.append(need.description)
        else:
            res.evidence_ids.append(hit.id)
            res.reasons.append(f"{need.name}: {hit.id}")
    if res.missing and verdict.category not in fit.suggest_without_evidence:
        return res.model_copy(update={"status": "refused", "reasons": ["its required evidence is missing"]})
    if res.missing:
        res.status = "suggest"
    elif fit.always_human:
        res.reasons.append("always decided by a human")
    return res


# ------------------------------------------------------------------------------ declarations --
_HARDWARE = Never(name="hardware faults (SMART, IPMI, RAID, sensors, power)", categories=["hardware"],
                  domains=["hardware"],
                  pattern=r"\bsmart|smartctl|ipmi|\braid\b|\bmdadm|edac|nvme|sensor|temperature|\bups\b")
_STORAGE_CLUSTER = Never(name="storage-cluster components (Ceph, MinIO, ZFS pools, OpenEBS)",
                         domains=["storage_cluster"], pattern=r"\bceph|\bminio|\bzfs|\bzpool|\bosd\b|openebs")
_FAILING_DISK = Never(name="a disk that is offline, failing or read-only",
                      pattern=r"offline|fail(ing|ed|ure)|faulty|read ?only|device error|\bio error|degraded")
_WINDOWS = Never(name="Windows hosts (the playbooks manage Linux services and log directories)",
                 pattern=r"\bjob=windows|\bwindows")
_IN_A_POD = Never(name="a pod or container (its orchestrator restarts it, not systemd)",
                  pattern=r"\bpod=|\bcontainer=|\bcontainer_name=")
_ORCHESTRATED = Never(name="workloads an orchestrator or provider manages (Kubernetes, containers, cloud)",
                      domains=["kubernetes", "container", "cloud"])

# The service parameter of restart_service / rollback_config must name a host service unit.
_HOST_SOFTWARE: list[Domain] = ["host", "virtualization", "database", "broker", "proxy", "runtime", "data",
                                "orchestrator", "ci", "network", "observability", "other"]

FITS: dict[str, Fit] = {
    "cleanup_rotated_logs": Fit(
        categories=["disk"], domains=["host", "virtualization", "other"],
        alert_kind=r"filesystem|disk space|out of disk|disk (usage|full|almost)|node_filesystem_(avail|free|size)"
                   r"|filesystem_used|mountpoint=",
        alert_kind_description="a host filesystem-usage alert",
        needs_labels=[["instance", "host", "nodename"]],
        requires=[
            EvidenceNeed(name="filesystem usage", signals=["metric"],
                         description="a filesystem-usage series of the host that rose (metrics)",
                         pattern=r"filesystem|disk_used|disk_usage|fs_used|used_percent"),
            EvidenceNeed(name="log growth", signals=["log", "metric", "state"],
                         description="evidence that the mount fills with logs (rotated log files in the logs, "
                                     "or a disk-usage reading of the log directory)",
                         pattern=r"/var/log/\S+|\.log\.\d+(\.gz)?\b|logrotate|log_dir(ectory)?_bytes|du /var/log"),
        ],
        never=[_HARDWARE, _STORAGE_CLUSTER, _FAILING_DISK, _ORCHESTRATED, _WINDOWS,
               Never(name="inode exhaustion", pattern=r"inode|files_free"),
               Never(name="database-managed storage", domains=["database"])],
        suggest_without_evidence=["disk"]),
    "restart_service": Fit(
        categories=["service_down", "crashloop", "cpu", "memory", "latency", "errors", "anomaly"],
        domains=_HOST_SOFTWARE,
        requires=[EvidenceNeed(name="service symptom", signals=["metric", "log", "state"],
                               description="an observation of the service itself misbehaving (a failed unit, "
                                           "an anomalous metric or error logs of that service)",
                               pattern=r".", about_subject=True)],
        never=[_HARDWARE, _STORAGE_CLUSTER, _ORCHESTRATED, _WINDOWS, _IN_A_POD],
        always_human=True, suggest_without_evidence=["service_down"]),
    "rollback_config": Fit(
        categories=["crashloop", "service_down", "config", "errors"], domains=_HOST_SOFTWARE,
        requires=[EvidenceNeed(name="configuration error", signals=["log"],
                               description="log lines of the service failing on its configuration file",
                               pattern=r"config|yaml|json|parse|invalid|syntax")],
        never=[_HARDWARE, _STORAGE_CLUSTER, _ORCHESTRATED, _WINDOWS, _IN_A_POD], always_human=True),
    "escalate_to_oncall": Fit(categories=list(get_args(Category))),
    "proxmox_vm_reboot": Fit(
        categories=["cpu", "memory", "latency", "errors", "anomaly"], domains=["host", "virtualization"],
        needs_labels=[["vmid"], ["pve_node", "node"]],
        requires=[EvidenceNeed(name="guest saturation", signals=["metric", "state"],
                               description="an anomalous CPU/memory/latency series of the guest",
                               pattern=r"cpu|mem|latency|load|proxmox")],
        # A saturated guest the alert names by vmid may be put before a human (high risk, never automatic).
        never=[_HARDWARE, _STORAGE_CLUSTER], always_human=True, suggest_without_evidence=["cpu", "memory"]),
    "proxmox_guest_start": Fit(
        categories=["availability", "service_down"], domains=["virtualization"], needs_labels=[["vmid", "id"]],
        requires=[EvidenceNeed(name="guest stopped", signals=["state"], anomalous=False,
                               description="the Proxmox API shows the guest stopped", pattern=r"stopped")],
        never=[_HARDWARE, _STORAGE_CLUSTER], always_human=True),
    "proxmox_guest_shutdown": Fit(),  # operator tools: never proposed by the loop itself
    "proxmox_guest_stop": Fit(),
    "proxmox_snapshot_rollback": Fit(),
    "proxmox_snapshot_create": Fit(),
    "proxmox_guest_set_memory": Fit(
        categories=["memory"], domains=["virtualization", "host"], needs_labels=[["vmid"]],
        requires=[EvidenceNeed(name="memory pressure", signals=["metric"], description="an anomalous memory "
                               "series of the guest", pattern=r"mem")], always_human=True),
    "proxmox_guest_set_cores": Fit(
        categories=["cpu"], domains=["virtualization", "host"], needs_labels=[["vmid"]],
        requires=[EvidenceNeed(name="CPU saturation", signals=["metric"], description="an anomalous CPU series "
                               "of the guest", pattern=r"cpu")], always_human=True),
    "routeros_interface_disable": Fit(
        categories=["network"], domains=["network", "other"], alert_kind=r"flap|carrier|link (up|down) (changes|events)",
        alert_kind_description="a link-flapping alert", needs_labels=[["interface", "ifName"]],
        requires=[EvidenceNeed(name="link flapping", signals=["metric", "state"],
                               description="carrier changes / link up-down events on that interface",
                               pattern=r"carrier|link.?(down|up|flap)|routeros")],
        never=[Never(name="host network cards", domains=["host", "kubernetes", "container", "cloud"])],
        always_human=True),
    "routeros_interface_enable": Fit(
        categories=["network", "availability"], domains=["network", "other"], needs_labels=[["interface", "ifName"]],
        requires=[EvidenceNeed(name="interface disabled", signals=["state"], anomalous=False,
                               description="the router shows the interface administratively disabled",
                               pattern=r"disabled")], always_human=True),
    "routeros_route_disable": Fit(),
    "routeros_route_enable": Fit(),
}

NO_FIT = Fit()
