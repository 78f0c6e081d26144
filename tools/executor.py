"""Runs catalog actions through the tool that owns them, or reports a dry run when it cannot reach.

A dry run is explicit (status `dry_run`, with the reason and the exact call that would have been
made): it is never reported as a success, and verification does not pretend it fixed anything.
An action is validated against its catalog entry again here (values and target), whoever built it:
a plan restored from a checkpoint or handed in by another caller gets no shortcut past the catalog.
"""

from __future__ import annotations

from core.models import Action, ActionKind, ExecutionResult, utcnow
from core.settings import Settings
from tools.ansible import AnsibleTool, is_controller
from tools.catalog import CATALOG, CatalogEntry
from tools.params import ParameterRefused, check_target
from tools.proxmox import actions as proxmox_actions
from tools.proxmox.client import ProxmoxClient
from tools.routeros import actions as routeros_actions
from tools.routeros.client import RouterOSClient

_ANSIBLE_KINDS = (ActionKind.ANSIBLE_PLAYBOOK, ActionKind.RESTART_SERVICE, ActionKind.CLEANUP_DISK)
_ROUTEROS_KINDS = (ActionKind.ROUTEROS_INTERFACE, ActionKind.ROUTEROS_ROUTE)


class ActionExecutor:
    def __init__(self, settings: Settings, inventory: str | None = None, *, infrastructure: bool = True) -> None:
        self.settings = settings
        self.ansible = AnsibleTool(inventory or settings.ANSIBLE_INVENTORY, settings.ANSIBLE_TIMEOUT)
        # None when not configured, or for a replay (`infrastructure=False`: a recorded incident must never
        # reboot a real guest or disable a real interface): their actions are dry runs naming the call.
        self.proxmox = ProxmoxClient.from_settings(settings) if infrastructure else None
        self.routeros = RouterOSClient.from_settings(settings) if infrastructure else None

    @staticmethod
    def _revalidate(action: Action) -> CatalogEntry:
        """The action's catalog entry, after checking its values and target again (ParameterRefused)."""
        entry = CATALOG.get(action.name)
        if entry is None or entry.kind != action.kind:
            raise ParameterRefused(action.name, "action", action.kind, "not a catalog action of that kind")
        check_target(action.name, action.target)
        entry.validate_parameters(dict(action.parameters))
        return entry

    def preflight(self, action: Action) -> str:
        """What approvers see before deciding: a --check run where the host is reachable."""
        try:
            entry = self._revalidate(action)
        except ParameterRefused as exc:
            return f"REFUSED: {exc}"
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
