"""The action catalog: every step the platform can execute, typed, risk-rated and verifiable.

Planning (rules or LLM) may only pick entries from here and fill their declared parameters; the
executor maps each entry to exactly one tool call. Nothing else runs.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from core.models import Action, ActionKind, Risk
from tools.fit import NO_FIT, Fit


class CatalogEntry(BaseModel):
    name: str
    kind: ActionKind
    risk: Risk
    description: str
    verification: str
    parameters: dict[str, str] = Field(default_factory=dict)  # name -> description
    defaults: dict[str, str | int | float | bool] = Field(default_factory=dict)
    playbook: str | None = None
    known_fix: bool = False  # a well-understood, reversible or harmless fix (eligible for auto-approval)
    dry_runnable: bool = True
    fit: Fit = NO_FIT  # where it belongs and the evidence it needs (tools/fit.py); the default fits nothing

    def action(self, target: str, **params: str | int | float | bool) -> Action:
        unknown = set(params) - set(self.parameters)
        if unknown:
            raise ValueError(f"{self.name}: unknown parameters {sorted(unknown)}")
        merged = {**self.defaults, **params}
        missing = [p for p in self.parameters if p not in merged]
        if missing:
            raise ValueError(f"{self.name}: missing parameters {missing}")
        return Action(kind=self.kind, name=self.name, target=target, parameters=merged, risk=self.risk,
                      dry_runnable=self.dry_runnable, verification=self.verification,
                      description=self.description)


CATALOG: dict[str, CatalogEntry] = {e.name: e for e in [
    CatalogEntry(
        name="cleanup_rotated_logs", kind=ActionKind.CLEANUP_DISK, risk=Risk.LOW, known_fix=True,
        description="Delete rotated/compressed logs older than N days to free disk space",
        verification="filesystem usage back under the alert threshold",
        parameters={"path": "directory to clean", "patterns": "comma-separated globs",
                    "older_than_days": "minimum age in days"},
        defaults={"path": "/var/log", "patterns": "*.gz,*.[0-9],*.old", "older_than_days": 3},
        playbook="cleanup_rotated_logs.yml"),
    CatalogEntry(
        name="restart_service", kind=ActionKind.RESTART_SERVICE, risk=Risk.MEDIUM,
        description="Restart one service on a host (brief unavailability of that service)",
        verification="the service's error/saturation metrics return to baseline",
        parameters={"service": "service (unit) name"}, playbook="restart_service.yml"),
    CatalogEntry(
        name="rollback_config", kind=ActionKind.ANSIBLE_PLAYBOOK, risk=Risk.MEDIUM,
        description="Restore a service's last known-good configuration file and restart it",
        verification="the service stays up (restart count stops increasing)",
        parameters={"service": "service name", "config_path": "configuration file path"},
        playbook="rollback_config.yml"),
    CatalogEntry(
        name="escalate_to_oncall", kind=ActionKind.NOTIFY_ONLY, risk=Risk.LOW,
        description="No safe automatic fix: hand the diagnosis to the on-call engineer",
        verification="a human acknowledges", parameters={}, dry_runnable=False),
]}


def _register_toolsets() -> None:
    """Toolsets declare their entries beside the code that runs them (tools/<toolset>/actions.py)."""
    from tools.proxmox.actions import catalog_entries as proxmox_entries
    from tools.routeros.actions import catalog_entries as routeros_entries

    for entry in [*proxmox_entries(), *routeros_entries()]:
        if entry.name in CATALOG:
            raise RuntimeError(f"catalog entry {entry.name} is declared twice")
        CATALOG[entry.name] = entry


def _declare_fits() -> None:
    """Every entry's fit, declared in one place (tools/fit.py) so the situations can be read side by side."""
    from tools.fit import FITS

    for name, entry in CATALOG.items():
        entry.fit = FITS.get(name, NO_FIT)


_register_toolsets()
_declare_fits()
