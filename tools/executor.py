"""Runs catalog actions through the toolset that declares them, or reports a dry run when it cannot reach.

A dry run is explicit (status `dry_run`, with the reason and the exact call that would have been
made): it is never reported as a success, and verification does not pretend it fixed anything.
An action is validated against its catalog entry again here (values and target), whoever built it:
a plan restored from a checkpoint or handed in by another caller gets no shortcut past the catalog.
Dispatch is by the entry's toolset (`tools/registry.py`): no branch here knows an action kind.
"""

from __future__ import annotations

from typing import Any

from core.models import Action, ExecutionResult, utcnow
from core.settings import Settings
from tools.catalog import CATALOG, CatalogEntry
from tools.params import ParameterRefused, check_target
from tools.registry import toolset, toolsets
from tools.toolset import Outcome, Vetting


class ActionExecutor:
    def __init__(self, settings: Settings, inventory: str | None = None, *, infrastructure: bool = True) -> None:
        """`inventory`: the Ansible inventory to use instead of ANSIBLE_INVENTORY (a replay's stand-ins).
        `infrastructure=False` (a replay): only toolsets whose targets a recording stands in for connect;
        a recorded incident must never reboot a real guest or disable a real interface, so their actions
        are dry runs naming the call."""
        if inventory is not None:
            settings = settings.model_copy(update={"ANSIBLE_INVENTORY": inventory})
        self.settings = settings
        self.clients: dict[str, Any] = {}
        for ts in toolsets():
            if ts.shared_source or not ts.entries() or (not infrastructure and not ts.replayable):
                continue
            self.clients[ts.name] = ts.connect(settings)

    def client(self, name: str) -> Any:
        """The connected client of toolset `name` (None: not configured, or a replay)."""
        return self.clients.get(name)

    @staticmethod
    def _revalidate(action: Action) -> CatalogEntry:
        """The action's catalog entry, after checking its values and target again (ParameterRefused)."""
        entry = CATALOG.get(action.name)
        if entry is None or entry.kind != action.kind:
            raise ParameterRefused(action.name, "action", action.kind, "not a catalog action of that kind")
        check_target(action.name, action.target)
        entry.validate_parameters(dict(action.parameters), action.target)
        return entry

    def vet(self, action: Action) -> Vetting:
        """The dynamic checks an action needs before approval (a generated playbook's syntax-check, lint and
        --check --diff); cached by its toolset, so the approver's preflight shows the same result."""
        try:
            entry = self._revalidate(action)
        except ParameterRefused as exc:
            return Vetting(ok=False, refused=exc.reason)
        if not entry.toolset:
            return Vetting()
        return toolset(entry.toolset).vet(action, self.client(entry.toolset))

    def preflight(self, action: Action) -> str:
        """What approvers see before deciding: a --check run, the exact call, the object as it is now."""
        try:
            entry = self._revalidate(action)
        except ParameterRefused as exc:
            return f"REFUSED: {exc}"
        if not entry.toolset:
            return "no change is made"
        return toolset(entry.toolset).preflight(action, self.client(entry.toolset))

    def execute(self, action: Action, plan_id: str = "") -> ExecutionResult:
        started = utcnow()

        def result(out: Outcome) -> ExecutionResult:
            return ExecutionResult(action=action.name, target=action.target, status=out.status,
                                   dry_run=out.status == "dry_run", output=out.output, started_at=started,
                                   finished_at=utcnow(), details=out.details)

        try:
            entry = self._revalidate(action)
        except ParameterRefused as exc:
            return result(Outcome(status="failed", output=f"refused: {exc}"))
        if not entry.toolset:
            return result(Outcome(status="skipped", output="no change made: " + entry.description))
        try:
            return result(toolset(entry.toolset).execute(action, self.client(entry.toolset), plan_id=plan_id))
        except Exception as exc:  # a tool failure is a result to report, not a crash
            return result(Outcome(status="failed", output=f"{type(exc).__name__}: {exc}"[:500]))

    def groups(self) -> dict[str, frozenset[str]]:
        """The inventory groups of the clients that have them (the blast-radius limits read these)."""
        out: dict[str, frozenset[str]] = {}
        for client in self.clients.values():
            out.update(getattr(client, "groups", lambda: {})())
        return out
