"""Runs catalog actions through the tool that owns them, or reports a dry run when it cannot reach.

A dry run is explicit (status `dry_run`, with the reason and the exact call that would have been
made): it is never reported as a success, and verification does not pretend it fixed anything.
An action is validated against its catalog entry again here (values and target), whoever built it:
a plan restored from a checkpoint or handed in by another caller gets no shortcut past the catalog.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from core.models import Action, ActionKind, ExecutionResult, utcnow
from core.settings import Settings
from tools.ansible import AnsibleTool, is_controller, load_inventory
from tools.ansible.generated import GeneratedPlaybookRefused, ansible_lint
from tools.catalog import CATALOG, CatalogEntry
from tools.params import ParameterRefused, check_target
from tools.proxmox import actions as proxmox_actions
from tools.proxmox.client import ProxmoxClient
from tools.routeros import actions as routeros_actions
from tools.routeros.client import RouterOSClient

_ANSIBLE_KINDS = (ActionKind.ANSIBLE_PLAYBOOK, ActionKind.RESTART_SERVICE, ActionKind.CLEANUP_DISK)
_ROUTEROS_KINDS = (ActionKind.ROUTEROS_INTERFACE, ActionKind.ROUTEROS_ROUTE)


@dataclass
class Vetting:
    """The dynamic vetting steps of a generated playbook (syntax-check, ansible-lint, --check --diff)."""

    ok: bool
    lines: list[str] = field(default_factory=list)  # what the approver sees (the diff included)
    refused: str = ""  # the first failed step and its reason

    def summary(self) -> str:
        return "generated playbook: " + ("; ".join(self.lines) if self.ok else f"REFUSED: {self.refused}")


class ActionExecutor:
    def __init__(self, settings: Settings, inventory: str | None = None, *, infrastructure: bool = True) -> None:
        self.settings = settings
        self.ansible = AnsibleTool(inventory or settings.ANSIBLE_INVENTORY, settings.ANSIBLE_TIMEOUT)
        # None when not configured, or for a replay (`infrastructure=False`: a recorded incident must never
        # reboot a real guest or disable a real interface): their actions are dry runs naming the call.
        self.proxmox = ProxmoxClient.from_settings(settings) if infrastructure else None
        self.routeros = RouterOSClient.from_settings(settings) if infrastructure else None
        self._vetted: dict[tuple[str, str], Vetting] = {}  # (target, sha256 of the text) -> result

    @staticmethod
    def _revalidate(action: Action) -> CatalogEntry:
        """The action's catalog entry, after checking its values and target again (ParameterRefused)."""
        entry = CATALOG.get(action.name)
        if entry is None or entry.kind != action.kind:
            raise ParameterRefused(action.name, "action", action.kind, "not a catalog action of that kind")
        check_target(action.name, action.target)
        entry.validate_parameters(dict(action.parameters), action.target)
        return entry

    def vet_generated(self, action: Action) -> Vetting:
        """Steps 6-8 of a generated playbook (1-5 ran when the action was built, and run again here).

        Cached per (target, text): planning vets, the approver's preflight shows the same result."""
        try:
            entry = self._revalidate(action)
        except ParameterRefused as exc:
            return Vetting(ok=False, refused=exc.reason)
        names = entry.playbook_parameters()
        if not names:
            return Vetting(ok=False, refused=f"{action.name} has no generated playbook")
        text = str(action.parameters[names[0]])
        key = (action.target, hashlib.sha256(text.encode()).hexdigest())
        if key not in self._vetted:
            self._vetted[key] = self._vet(action.target, text)
        return self._vetted[key]

    def _vet(self, target: str, text: str) -> Vetting:
        lines: list[str] = []
        try:
            inventory = load_inventory(self.ansible.inventory)
        except ValueError as exc:
            return Vetting(ok=False, refused=f"hosts: {exc}")
        if target in inventory.groups:
            return Vetting(ok=False, refused=f"hosts: {target!r} is an inventory group, not one host")
        try:
            syntax = self.ansible.run("generated.yml", target, {}, syntax_only=True, text=text)
        except GeneratedPlaybookRefused as exc:
            return Vetting(ok=False, refused=f"{exc.step}: {exc.reason}")
        if syntax.status != "syntax_ok":
            return Vetting(ok=False, refused=f"syntax-check: ansible-playbook --syntax-check failed: {syntax.summary}")
        lines.append("syntax-check: ok")
        try:
            lines.append(ansible_lint(text))
        except GeneratedPlaybookRefused as exc:
            return Vetting(ok=False, refused=f"{exc.step}: {exc.reason}")
        if not self.ansible.reachable(target):
            lines.append(f"host {target} is not in the inventory: syntax only, execution will be a dry run")
            return Vetting(ok=True, lines=lines)
        check = self.ansible.run("generated.yml", target, {}, check=True, text=text)
        if check.status != "successful":
            return Vetting(ok=False, refused=f"check: --check --diff on {target} failed: {check.summary}")
        lines.append(f"--check --diff on {target}: {check.summary}")
        lines.append("diff:\n" + (check.diff or "(no changes)"))
        return Vetting(ok=True, lines=lines)

    def preflight(self, action: Action) -> str:
        """What approvers see before deciding: a --check run where the host is reachable."""
        try:
            entry = self._revalidate(action)
        except ParameterRefused as exc:
            return f"REFUSED: {exc}"
        if entry.playbook_parameters():
            return self.vet_generated(action).summary()
        if action.kind in _ANSIBLE_KINDS and entry.playbook:
            if self.ansible.reachable(action.target):
                run = self.ansible.run(entry.playbook, action.target, dict(action.parameters), check=True,
                                       allowed_roots=entry.path_roots())
                return f"ansible --check on {action.target}: {run.status}; {run.summary}"
            run = self.ansible.run(entry.playbook, action.target, dict(action.parameters), syntax_only=True)
            return (f"{entry.playbook}: syntax {'ok' if run.status == 'syntax_ok' else 'FAILED'}; "
                    f"host {action.target} is not in the inventory, so execution will be a dry run")
        if action.kind == ActionKind.PROXMOX_VM:
            return proxmox_actions.preflight(action, self.proxmox)
        if action.kind in _ROUTEROS_KINDS:
            return routeros_actions.preflight(action, self.routeros)
        return "no change is made"

    def execute(self, action: Action, plan_id: str = "") -> ExecutionResult:
        started = utcnow()

        def result(status: str, output: str, details: dict[str, str | int | float | bool] | None = None) -> ExecutionResult:
            return ExecutionResult(action=action.name, target=action.target, status=status,  # type: ignore[arg-type]
                                   dry_run=status == "dry_run", output=output, started_at=started,
                                   finished_at=utcnow(), details=details or {})

        try:
            entry = self._revalidate(action)
        except ParameterRefused as exc:
            return result("failed", f"refused: {exc}")
        try:
            if entry.playbook_parameters():
                return self._execute_generated(action, entry, result)
            if action.kind in _ANSIBLE_KINDS and entry.playbook:
                if not self.ansible.reachable(action.target):
                    why = (" (this machine is a target only when the inventory names it)"
                           if is_controller(action.target) else "")
                    return result("dry_run", f"host {action.target} is not in the Ansible inventory "
                                             f"(ANSIBLE_INVENTORY){why}; {entry.playbook} was not run")
                run = self.ansible.run(entry.playbook, action.target, dict(action.parameters),
                                       allowed_roots=entry.path_roots())
                return result("ok" if run.status == "successful" else "failed", run.summary,
                              {"ansible_run_id": run.run_id})
            if action.kind == ActionKind.PROXMOX_VM:
                pve = proxmox_actions.execute(action, self.proxmox, plan_id=plan_id)
                return result(pve.status, pve.output, pve.details)
            if action.kind in _ROUTEROS_KINDS:
                ros = routeros_actions.execute(action, self.routeros, plan_id=plan_id)
                return result(ros.status, ros.output, ros.details)
            return result("skipped", "no change made: " + entry.description)
        except Exception as exc:  # a tool failure is a result to report, not a crash
            return result("failed", f"{type(exc).__name__}: {exc}"[:500])

    def _execute_generated(self, action: Action, entry: CatalogEntry, result: Any) -> ExecutionResult:
        """An approved generated playbook: vetted again (cached), then the same guarded runner."""
        vetting = self.vet_generated(action)
        if not vetting.ok:
            return result("failed", f"refused: {vetting.refused}")
        if not self.ansible.reachable(action.target):
            return result("dry_run", f"host {action.target} is not in the Ansible inventory (ANSIBLE_INVENTORY); "
                                     "the generated playbook was not run")
        text = str(action.parameters[entry.playbook_parameters()[0]])
        run = self.ansible.run("generated.yml", action.target, {}, text=text)
        return result("ok" if run.status == "successful" else "failed", run.summary, {"ansible_run_id": run.run_id})
