"""The host toolset: actions on Linux hosts, run as the catalog's own playbooks through Ansible.

Its client is the inventory plus the guarded runner (`runner.py`): only hosts the inventory names are
ever touched, every other target is a dry run naming the playbook. Its entries (`entries.py`) are the
host fixes: rotated-log cleanup, service restart, configuration rollback, and a model's generated
playbook (vetted step by step before anyone is asked). `candidates` binds them to the incident: the
host the alert names (or where the evidence shows the service runs), the service it names, the mount
the evidence shows filling, the configuration file the service's own logs quote.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.models import Action, Evidence, ExecutionResult, VerificationCheck
from core.subject import has_explicit_host
from tools.ansible.entries import CONFIG_ROOTS, ROTATED_LOG_GLOBS, entries
from tools.ansible.generated import GeneratedPlaybookRefused, ansible_lint
from tools.ansible.inventory import is_controller, load_inventory
from tools.ansible.reads import TOOL, ReadLimits, observations
from tools.ansible.runner import AnsibleTool
from tools.catalog_entry import CatalogEntry
from tools.objects import evidence_objects, under
from tools.result import UNREAD, Observation
from tools.toolset import Candidate, Outcome, PlanContext, ReadContext, Reading, Toolset, Vetting, bound

# The host reading each fix is verified against (host_read.yml's items).
_REREAD = {"cleanup_rotated_logs": "rotated", "journald_vacuum": "journal", "apt_clean": "apt",
           "restart_failed_unit": "unit", "restart_service": "unit", "rollback_config": "unit",
           "certbot_renew": "cert"}
_HOST_AGENTS = re.compile(r"^(node|node-exporter|systemd|process|process-exporter|namedprocess)$")
_CONFIG_FILE = re.compile(r"\.(ya?ml|json|conf|cfg|toml|ini)$")
_LOG_DIR = re.compile(r"^(.*?/(?:log|logs))(?:/|$)")


class AnsibleSettings(BaseSettings):
    """Which hosts exist (the inventory) and how long one playbook run may take (the core settings carry
    these two), and what a host reading must show before a fix may rely on it (read here)."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore",
                                      env_ignore_empty=True)

    ANSIBLE_INVENTORY: str | None = None
    ANSIBLE_TIMEOUT: int = 300
    HOST_RECLAIM_MIN_MB: int = Field(100, ge=1)  # rotated logs / journal / package cache this large are worth freeing
    HOST_CRASHLOOP_RESTARTS: int = Field(3, ge=2)  # a failed unit restarted this often is crash-looping
    HOST_CERT_RENEW_DAYS: int = Field(30, ge=1)  # a certbot certificate expiring this soon is due


class AnsibleClient:
    """The inventory and the guarded runner, plus the vetting results of generated playbooks."""

    def __init__(self, inventory: str | None, timeout: int = 300, limits: ReadLimits | None = None) -> None:
        self.tool = AnsibleTool(inventory, timeout)
        self.limits = limits or ReadLimits()
        self._vetted: dict[tuple[str, str], Vetting] = {}

    def read(self, host: str, *, disk: bool, unit: str, certs: bool = False) -> list[Observation]:
        """One run of host_read.yml: the host's disk items, unit and certificates, one observation each."""
        extravars = {"disk": disk, "unit": unit, "certs": certs, "rotated_globs": ",".join(sorted(ROTATED_LOG_GLOBS))}
        try:
            run = self.tool.run("host_read.yml", host, extravars)
        except ValueError as exc:  # the host left the inventory, the playbook failed its lint
            return observations(host, None, unit, self.limits, str(exc))
        data = (run.data or {}).get("aiops_read")
        return observations(host, data if run.status == "successful" else None, unit, self.limits, run.summary)

    @property
    def inventory(self) -> str | None:
        return self.tool.inventory

    def reachable(self, host: str) -> bool:
        return self.tool.reachable(host)

    def groups(self) -> dict[str, frozenset[str]]:
        try:
            return load_inventory(self.tool.inventory).groups
        except ValueError:
            return {}


class AnsibleToolset(Toolset):
    name = "ansible"
    folder = Path(__file__).parent
    settings_model = AnsibleSettings
    replayable = True

    def entries(self) -> list[CatalogEntry]:
        return entries()

    def connect(self, settings: Any) -> AnsibleClient:
        s = self.settings(settings)
        return AnsibleClient(s.ANSIBLE_INVENTORY, s.ANSIBLE_TIMEOUT,
                             ReadLimits(reclaim_min_bytes=s.HOST_RECLAIM_MIN_MB * 1024**2,
                                        crashloop_restarts=s.HOST_CRASHLOOP_RESTARTS,
                                        cert_renew_days=s.HOST_CERT_RENEW_DAYS))

    async def investigate(self, client: AnsibleClient, ctx: ReadContext) -> Reading:
        """The host's own view of its disk (when the alert is about a filesystem) and of the unit the
        alert names, when the host is in the inventory (no other host is ever touched, not even read)."""
        v = ctx.verdict
        host = v.host if v is not None and v.host else ""
        if not host or not client.reachable(host):
            return Reading()
        disk = bool(ctx.labels.get("mountpoint")) or (v is not None and v.category == "disk")
        certs = v is not None and v.category == "certificate"
        unit = v.service if v is not None and v.service and v.service != host and not certs else ""
        if not disk and not unit and not certs:
            return Reading()
        return Reading(observations=await asyncio.to_thread(client.read, host, disk=disk, unit=unit, certs=certs))

    async def verify(self, client: AnsibleClient | None, evidence: list[Evidence], executions: list[ExecutionResult],
                     component: str) -> list[VerificationCheck]:
        """Read the host again after a host fix: the unit is active, the freed item is gone."""
        done = [e for e in executions if e.status == "ok" and e.action in _REREAD]
        if client is None or not done:
            return []
        checks = []
        for ex in done:
            unit = str(ex.details.get("service") or "")
            item = _REREAD[ex.action]
            if item == "cert":
                item = f"cert {ex.details.get('cert_name', '')}"
            after = await asyncio.to_thread(client.read, ex.target, disk=item in ("rotated", "journal", "apt"),
                                            unit=unit, certs=item.startswith("cert"))
            now = next((o for o in after if o.query.startswith(f"host_read {ex.target} {item}")), None)
            cited = next((e for e in evidence if e.tool == TOOL and e.query.startswith(f"host_read {ex.target} {item}")
                          and e.anomalous), None)
            if now is None or now.excerpt.startswith(UNREAD):
                checks.append(VerificationCheck(evidence_id=cited.id if cited else f"exec:{ex.action}",
                                                query=f"host_read {ex.target} {item}", recovered=False,
                                                note=now.excerpt if now else f"{item} could not be read again"))
                continue
            checks.append(VerificationCheck(evidence_id=cited.id if cited else f"exec:{ex.action}", query=now.query,
                                            before=cited.value if cited else None, after=now.value,
                                            recovered=not now.anomalous, note=now.excerpt[:300]))
        return checks

    def _entry(self, name: str) -> CatalogEntry:
        return next(e for e in self.entries() if e.name == name)

    # ------------------------------------------------------------------------------ binding --
    def candidates(self, ctx: PlanContext) -> list[Candidate]:
        out: list[Candidate] = []
        for host, service, why in _service_hosts(ctx):
            out += bound(self._entry("restart_service"), host, {"service": service},
                         f"{service} on {host} ({why}); a restart clears a failed or wedged unit")
            out += bound(self._entry("restart_failed_unit"), host, {"service": service},
                         f"the unit {service} on {host} failed once ({why}); restarting it brings it back",
                         score=0.5)
            for path, ev_id in _config_paths(ctx, service):
                out += bound(self._entry("rollback_config"), host, {"service": service, "config_path": path},
                             f"{service} on {host} fails on its configuration {path} ({ev_id}); restoring the last "
                             "known-good configuration removes the trigger", score=1.0)
        for host in _hosts(ctx):
            for name, days in _due_certificates(ctx, host):
                out += bound(self._entry("certbot_renew"), host, {"cert_name": name},
                             f"the certificate {name} on {host} expires in {days}; certbot renews it with the "
                             "authenticator it was issued with", score=1.0)
            for mount, path in _log_dirs(ctx, host):
                out += bound(self._entry("cleanup_rotated_logs"), host, {"path": path},
                             f"{host}: {mount} is filling up; rotated logs older than 3 days under {path} are the "
                             "usual, safe space to free", score=_freed(ctx, host, path))
            for mount in _mounts(ctx, host):
                if under("/var/log/journal", mount) and (limit := _journal_limit_mb(ctx, host)):
                    out += bound(self._entry("journald_vacuum"), host,
                                 {"path": "/var/log/journal", "max_size_mb": limit},
                                 f"{host}: {mount} is filling up and the journal is over its limit; vacuuming it to "
                                 f"{limit} MiB drops its oldest archived files",
                                 score=_freed(ctx, host, "/var/log/journal"))
                if under("/var/cache/apt", mount):
                    out += bound(self._entry("apt_clean"), host, {"path": "/var/cache/apt"},
                                 f"{host}: {mount} is filling up; the package cache holds downloaded packages "
                                 "apt can fetch again", score=_freed(ctx, host, "/var/cache/apt"))
        return out

    # ---------------------------------------------------------------------------- execution --
    def vet(self, action: Action, client: AnsibleClient | None) -> Vetting:
        """Steps 6-8 of a generated playbook (1-5 ran when the action was built). Cached per (target,
        text): planning vets, the approver's preflight shows the same result."""
        entry = self._entry(action.name)
        names = entry.playbook_parameters()
        if not names:
            return Vetting()
        if client is None:
            return Vetting(ok=False, refused="no executor to syntax-check, lint and --check it")
        text = str(action.parameters[names[0]])
        key = (action.target, hashlib.sha256(text.encode()).hexdigest())
        if key not in client._vetted:
            client._vetted[key] = _vet(client, action.target, text)
        return client._vetted[key]

    def preflight(self, action: Action, client: AnsibleClient | None) -> str:
        entry = self._entry(action.name)
        if entry.playbook_parameters():
            vetting = self.vet(action, client)
            return "generated playbook: " + ("; ".join(vetting.lines) if vetting.ok else f"REFUSED: {vetting.refused}")
        if client is None or not entry.playbook:
            return "no change is made"
        tool = client.tool
        if tool.reachable(action.target):
            run = tool.run(entry.playbook, action.target, dict(action.parameters), check=True,
                           allowed_roots=entry.path_roots())
            return f"ansible --check on {action.target}: {run.status}; {run.summary}"
        run = tool.run(entry.playbook, action.target, dict(action.parameters), syntax_only=True)
        return (f"{entry.playbook}: syntax {'ok' if run.status == 'syntax_ok' else 'FAILED'}; "
                f"host {action.target} is not in the inventory, so execution will be a dry run")

    def execute(self, action: Action, client: AnsibleClient | None, *, plan_id: str = "") -> Outcome:
        entry = self._entry(action.name)
        if client is None:
            return Outcome(status="dry_run", output=f"no Ansible inventory; {entry.playbook or 'the playbook'} "
                                                    "was not run")
        tool = client.tool
        if entry.playbook_parameters():
            vetting = self.vet(action, client)
            if not vetting.ok:
                return Outcome(status="failed", output=f"refused: {vetting.refused}")
            if not tool.reachable(action.target):
                return Outcome(status="dry_run", output=f"host {action.target} is not in the Ansible inventory "
                                                        "(ANSIBLE_INVENTORY); the generated playbook was not run")
            text = str(action.parameters[entry.playbook_parameters()[0]])
            run = tool.run("generated.yml", action.target, {}, text=text)
            return Outcome(status="ok" if run.status == "successful" else "failed", output=run.summary,
                           details={"ansible_run_id": run.run_id})
        if not entry.playbook:
            return Outcome(status="skipped", output="no change made: " + entry.description)
        if not tool.reachable(action.target):
            why = " (this machine is a target only when the inventory names it)" if is_controller(action.target) else ""
            return Outcome(status="dry_run", output=f"host {action.target} is not in the Ansible inventory "
                                                    f"(ANSIBLE_INVENTORY){why}; {entry.playbook} was not run")
        run = tool.run(entry.playbook, action.target, dict(action.parameters), allowed_roots=entry.path_roots())
        named = {k: str(v) for k, v in action.parameters.items() if k in ("service", "cert_name")}
        return Outcome(status="ok" if run.status == "successful" else "failed", output=run.summary,
                       details={"ansible_run_id": run.run_id, **named})


def _vet(client: AnsibleClient, target: str, text: str) -> Vetting:
    tool = client.tool
    lines: list[str] = []
    try:
        inventory = load_inventory(tool.inventory)
    except ValueError as exc:
        return Vetting(ok=False, refused=f"hosts: {exc}")
    if target in inventory.groups:
        return Vetting(ok=False, refused=f"hosts: {target!r} is an inventory group, not one host")
    try:
        syntax = tool.run("generated.yml", target, {}, syntax_only=True, text=text)
    except GeneratedPlaybookRefused as exc:
        return Vetting(ok=False, refused=f"{exc.step}: {exc.reason}")
    if syntax.status != "syntax_ok":
        return Vetting(ok=False, refused=f"syntax-check: ansible-playbook --syntax-check failed: {syntax.summary}")
    lines.append("syntax-check: ok")
    try:
        lines.append(ansible_lint(text))
    except GeneratedPlaybookRefused as exc:
        return Vetting(ok=False, refused=f"{exc.step}: {exc.reason}")
    if not tool.reachable(target):
        lines.append(f"host {target} is not in the inventory: syntax only, execution will be a dry run")
        return Vetting(ok=True, lines=lines)
    check = tool.run("generated.yml", target, {}, check=True, text=text)
    if check.status != "successful":
        return Vetting(ok=False, refused=f"check: --check --diff on {target} failed: {check.summary}")
    lines.append(f"--check --diff on {target}: {check.summary}")
    lines.append("diff:\n" + (check.diff or "(no changes)"))
    return Vetting(ok=True, lines=lines)


# ------------------------------------------------------------------------------------ binding --
def _hosts(ctx: PlanContext) -> list[str]:
    """The machines the alert names: triage's host first, then the host labels (never a service name)."""
    first = [ctx.verdict.host] if ctx.verdict.host else []
    return list(dict.fromkeys([*first, *sorted(ctx.objects.named.get("host", set()))]))


def _runs_on(ctx: PlanContext) -> bool:
    """Is the host the alert names the machine its service runs on? Yes for an explicit host label, for
    a host agent (node/systemd/process exporter) reporting its own machine, and for an exporter that
    reports the service it sits beside; not for remote exporters (cloud APIs, service catalogues)."""
    labels, v = ctx.labels, ctx.verdict
    return (has_explicit_host(labels)
            or bool(_HOST_AGENTS.match(v.exporter)) or v.service == v.exporter)


def _service_hosts(ctx: PlanContext) -> list[tuple[str, str, str]]:
    """(host, service, why): the service the alert names on its machine, and each service the diagnosis
    ranks on the host a reading shows it running on (a metric's host label, a log line's host)."""
    out: list[tuple[str, str, str]] = []
    v = ctx.verdict
    if v.host and v.service and v.service != v.host and _runs_on(ctx):
        out.append((v.host, v.service, f"named by the alert {ctx.incident.alert.name}"))
    hosts = set(_hosts(ctx))
    for hyp in ctx.diagnosis.hypotheses[:3]:
        svc = hyp.component
        if not svc or svc in hosts:
            continue
        for ev in ctx.evidence:
            if ev.tool == "alertmanager" or ev.id not in hyp.evidence_ids:
                continue
            seen = evidence_objects(ev)
            if svc not in seen.get("service", set()):
                continue
            for host in sorted(seen.get("host", set()) - {svc} - seen.get("service", set())):
                out.append((host, svc, f"ranked {hyp.confidence:.0%} by the diagnosis; {ev.id} shows it on {host}"))
    unique: dict[tuple[str, str], tuple[str, str, str]] = {}
    for t in out:
        unique.setdefault((t[0], t[1]), t)
    return list(unique.values())


def _config_paths(ctx: PlanContext, service: str) -> list[tuple[str, str]]:
    """(configuration file, where it comes from): the one the alert names (as it is: the catalog refuses
    it if it is not a plain path), else those the service's own log lines quote under the config roots."""
    if ctx.labels.get("config_path"):
        return [(ctx.labels["config_path"], "the alert")]
    found: dict[str, str] = {}
    for ev in ctx.evidence:
        if ev.signal != "log" or service not in evidence_objects(ev).get("service", set()):
            continue
        for p in evidence_objects(ev).get("path", set()):
            if _CONFIG_FILE.search(p) and any(under(p, r) for r in CONFIG_ROOTS):
                found.setdefault(p, ev.id)
    return list(found.items())


def _due_certificates(ctx: PlanContext, host: str) -> list[tuple[str, str]]:
    """(lineage, how soon) of the host's certbot certificates serving a name the alert names (a probe's
    target, a `cn` label), or all of them when the alert names none but the host."""
    named = ctx.objects.named.get("host", set()) | {ctx.labels.get(k, "") for k in ("cn", "subject_CN", "domain")}
    found = []
    for e in ctx.evidence:
        name = e.about.get("certificate")
        if e.tool != TOOL or e.about.get("host") != host or not name:
            continue
        m = re.search(r"\(domains ([^)]*)\): expires \S+ \S+ \(([^)]*)\)", e.excerpt)
        domains = set(m.group(1).split()) if m else set()
        if domains & named or not (named - {host, ""}):
            found.append((name, m.group(2) if m else "soon"))
    return found


def _mounts(ctx: PlanContext, host: str) -> list[str]:
    """The filling mount: the one the alert names, else those the host's own readings are about."""
    mounts = set(ctx.objects.named.get("mount", set()))
    if not mounts:
        mounts = {m for m, ev_id in ctx.objects.observed.get("mount", {}).items()
                  if _about_host(ctx.evidence, ev_id, host)}
    return sorted(mounts)


def _freed(ctx: PlanContext, host: str, path: str) -> float:
    """How much the host's own reading says a fix of `path` frees, in GiB (ranks the disk fixes)."""
    sizes = [e.value or 0.0 for e in ctx.evidence if e.tool == TOOL and e.about.get("host") == host
             and e.about.get("path") == path and e.anomalous]
    return max(sizes, default=0.0) / 1024**3


def _journal_limit_mb(ctx: PlanContext, host: str) -> int | None:
    """The journal's limit the host's reading shows, in MiB (what a vacuum shrinks it to)."""
    for e in ctx.evidence:
        if e.tool == TOOL and e.about.get("host") == host and e.about.get("path") == "/var/log/journal":
            m = re.search(r"limit ([\d.]+) MiB", e.excerpt)
            if m:
                return max(1, int(float(m.group(1))))
    return None


def _log_dirs(ctx: PlanContext, host: str) -> list[tuple[str, str]]:
    """(filling mount, log directory on it): /var/log on a mount that holds it, the mount itself when it
    is a log directory, else the log directory the evidence quotes on that mount; nothing otherwise (a
    mount filling with data that is not logs)."""
    out = []
    for mount in _mounts(ctx, host):
        if under("/var/log", mount):
            out.append((mount, "/var/log"))
        elif under(mount, "/var/log") or _LOG_DIR.match(mount + "/"):
            out.append((mount, mount))
        else:
            quoted = sorted({m.group(1) for p in ctx.objects.values("path") if under(p, mount)
                             and (m := _LOG_DIR.match(p))})
            out += [(mount, d) for d in quoted[:1]]
    return out


def _about_host(evidence: list[Evidence], ev_id: str, host: str) -> bool:
    ev = next((e for e in evidence if e.id == ev_id), None)
    return ev is not None and host in evidence_objects(ev).get("host", set())


TOOLSET = AnsibleToolset()
