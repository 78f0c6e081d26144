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
from typing import Literal, Protocol, get_args

from pydantic import BaseModel, Field

from core.models import Action, Category, Domain, Evidence, TriageVerdict
from tools.objects import ObjectSpec, about_object, contradicts
from tools.result import UNREAD

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
    # The action's objects the item must be about (kinds: "host", "service", "vmid", "interface", "path",
    # ...; tools/objects.py). Whatever the kinds, an item whose `about` names *another* object of a kind
    # the action has (another host, another guest) never counts.
    about: list[str] = Field(default_factory=list)

    def met_by(self, evidence: list[Evidence], action: Action, entry: ObjectSpec) -> Evidence | None:
        rx = re.compile(self.pattern, re.I)
        for e in evidence:
            if e.signal not in self.signals or (e.tool == "alertmanager" and not self.alert_evidence):
                continue
            if e.excerpt.startswith(UNREAD) or contradicts(e, action, entry):
                continue
            if self.about and not about_object(e, action, entry, self.about):
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
    # Parameters vetted by their own pipeline (a generated playbook's text, vetted by its toolset),
    # not by the safe-name pattern below.
    vetted_params: list[str] = Field(default_factory=list)
    # Evidence that rules the action out whatever else holds (a guest the HA manager owns, an interface a
    # person disabled): any matching item about the action's object refuses it.
    forbid: list[EvidenceNeed] = Field(default_factory=list)

    def addresses(self, verdict: TriageVerdict) -> bool:
        return verdict.category in self.categories

    def situation(self, verdict: TriageVerdict, labels: dict[str, str]) -> list[str]:
        """Why the action does not belong to this alert at all, before any parameter (empty: it may)."""
        text = alert_text(verdict, labels)
        plain = alert_text(verdict, labels, metrics=False)
        refusals: list[str] = []
        if not self.categories:
            refusals.append("declares no situation it fits")
        elif verdict.category not in self.categories:
            refusals.append(f"does not address {verdict.category} alerts (only {', '.join(self.categories)})")
        if self.domains and verdict.domain not in self.domains:
            refusals.append(f"not for {verdict.domain.replace('_', ' ')} alerts")
        if self.alert_kind and not re.search(self.alert_kind, text, re.I):
            refusals.append(f"the alert is not {self.alert_kind_description or 'of the kind it addresses'}")
        for never in self.never:
            if never.hit(verdict, plain):
                refusals.append(f"never for {never.name}")
        for alternatives in self.needs_labels:
            if not any(labels.get(k) for k in alternatives):
                refusals.append(f"the alert names no {' / '.join(alternatives)}")
        return refusals


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


class Entry(ObjectSpec, Protocol):
    """What the fit check reads of a catalog entry (tools.catalog_entry.CatalogEntry): its fit and its
    objects."""

    @property
    def fit(self) -> Fit: ...


def check(action: Action, entry: Entry, verdict: TriageVerdict, labels: dict[str, str],
          evidence: list[Evidence]) -> FitResult:
    """Does `action` belong to this incident, and is the evidence it needs there, about its objects?"""
    fit = entry.fit
    res = FitResult(action=action.name, status="fits")
    refusals = fit.situation(verdict, labels)
    for key, value in action.parameters.items():
        if key in fit.vetted_params:
            continue
        if isinstance(value, str) and (not _SAFE_PARAM.match(value) or ".." in value):
            refusals.append(f"parameter {key}={value[:40]!r} is not a safe name")
    if not _SAFE_PARAM.match(action.target):
        refusals.append(f"target {action.target[:40]!r} is not a safe host name")
    for need in fit.forbid:
        hit = need.met_by(evidence, action, entry)
        if hit is not None:
            refusals.append(f"never for {need.name}: {hit.id}")
    if refusals:
        return res.model_copy(update={"status": "refused", "reasons": refusals})
    for need in fit.requires:
        hit = need.met_by(evidence, action, entry)
        if hit is None:
            res.missing.append(need.description)
        else:
            res.evidence_ids.append(hit.id)
            res.reasons.append(f"{need.name}: {hit.id}")
    if res.missing and verdict.category not in fit.suggest_without_evidence:
        return res.model_copy(update={"status": "refused", "reasons": ["its required evidence is missing"],
                                      "missing": res.missing})
    if res.missing:
        res.status = "suggest"
    elif fit.always_human:
        res.reasons.append("always decided by a human")
    return res


# -------------------------------------------------------------------------- shared situations --
# Where no host-level action belongs; toolsets use these in their entries' `never`.
HARDWARE = Never(name="hardware faults (SMART, IPMI, RAID, sensors, power)", categories=["hardware"],
                 domains=["hardware"],
                 pattern=r"\bsmart|smartctl|ipmi|\braid\b|\bmdadm|edac|nvme|sensor|temperature|\bups\b")
STORAGE_CLUSTER = Never(name="storage-cluster components (Ceph, MinIO, ZFS pools, OpenEBS)",
                        domains=["storage_cluster"], pattern=r"\bceph|\bminio|\bzfs|\bzpool|\bosd\b|openebs")
FAILING_DISK = Never(name="a disk that is offline, failing or read-only",
                     pattern=r"offline|fail(ing|ed|ure)|faulty|read ?only|device error|\bio error|degraded")
WINDOWS = Never(name="Windows hosts (the playbooks manage Linux services and log directories)",
                pattern=r"\bjob=windows|\bwindows")
IN_A_POD = Never(name="a pod or container (its orchestrator restarts it, not systemd)",
                 pattern=r"\bpod=|\bcontainer=|\bcontainer_name=")
ORCHESTRATED = Never(name="workloads an orchestrator or provider manages (Kubernetes, containers, cloud)",
                     domains=["kubernetes", "container", "cloud"])

# Where a host service unit may live (restart, rollback, a generated playbook).
HOST_SOFTWARE: list[Domain] = ["host", "virtualization", "database", "broker", "proxy", "runtime", "data",
                               "orchestrator", "ci", "network", "observability", "other"]
ALL_CATEGORIES: list[Category] = list(get_args(Category))

NO_FIT = Fit()
