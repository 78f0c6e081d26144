"""The action catalog: every step the platform can execute, typed, risk-rated and verifiable.

Planning (rules or LLM) may only pick entries from here and fill their declared parameters; the
executor maps each entry to exactly one tool call. Nothing else runs. Every parameter declares a
type and a constraint (`tools/params.py`), and `CatalogEntry.action()` - the only way an `Action`
is built from a plan, a model's answer, a remembered fix or a toolset - validates every value and
the target, raising `ParameterRefused` with the reason.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from core.models import Action, ActionKind, Risk
from tools.fit import NO_FIT, Fit
from tools.params import Param, ParameterRefused, ParamValue, check_target, service_param

# Where each path parameter may point (after normalisation). Anything else is refused at planning.
CLEANUP_ROOTS = ("/var/log", "/var/tmp", "/tmp", "/srv", "/opt", "/data", "/mnt")
CONFIG_ROOTS = ("/etc", "/opt", "/srv", "/usr/local/etc")


class CatalogEntry(BaseModel):
    name: str
    kind: ActionKind
    risk: Risk
    description: str
    verification: str
    parameters: dict[str, Param] = Field(default_factory=dict)
    defaults: dict[str, ParamValue] = Field(default_factory=dict)
    playbook: str | None = None
    known_fix: bool = False  # a well-understood, reversible or harmless fix (eligible for auto-approval)
    dry_runnable: bool = True
    fit: Fit = NO_FIT  # where it belongs and the evidence it needs (tools/fit.py); the default fits nothing

    def validate_parameters(self, params: dict[str, ParamValue]) -> dict[str, ParamValue]:
        """Every declared parameter present and within its constraint (normalised), or ParameterRefused."""
        unknown = set(params) - set(self.parameters)
        if unknown:
            raise ParameterRefused(self.name, ",".join(sorted(unknown)), "", f"unknown parameters {sorted(unknown)}",
                                   whole=True)
        merged = {**self.defaults, **params}
        missing = [p for p in self.parameters if p not in merged]
        if missing:
            raise ParameterRefused(self.name, ",".join(missing), "", f"missing parameters {missing}", whole=True)
        return {name: spec.check(self.name, name, merged[name]) for name, spec in self.parameters.items()}

    def action(self, target: str, **params: ParamValue) -> Action:
        checked = self.validate_parameters(params)
        return Action(kind=self.kind, name=self.name, target=check_target(self.name, target), parameters=checked,
                      risk=self.risk, dry_runnable=self.dry_runnable, verification=self.verification,
                      description=self.description)

    def path_roots(self) -> list[str]:
        """The roots this entry's path parameters may point under (the playbook checks them again)."""
        return [r for p in self.parameters.values() if p.type == "path" for r in p.roots]

    def brief(self) -> str:
        """One line for a model or an approver: name, risk, what it does, each parameter's constraint."""
        params = "; ".join(f"{n} ({p.constraint()}): {p.description}" for n, p in self.parameters.items())
        return f"{self.name} (risk {self.risk.value}): {self.description}; parameters: {params or 'none'}"


CATALOG: dict[str, CatalogEntry] = {e.name: e for e in [
    CatalogEntry(
        name="cleanup_rotated_logs", kind=ActionKind.CLEANUP_DISK, risk=Risk.LOW, known_fix=True,
        description="Delete rotated/compressed logs older than N days to free disk space",
        verification="filesystem usage back under the alert threshold",
        parameters={"path": Param(description="directory to clean", type="path", roots=CLEANUP_ROOTS),
                    "patterns": Param(description="comma-separated globs of rotated log file names", type="globs",
                                      allow="*?[],"),
                    "older_than_days": Param(description="minimum age in days", type="int", minimum=0,
                                             maximum=3650)},
        defaults={"path": "/var/log", "patterns": "*.gz,*.[0-9],*.old", "older_than_days": 3},
        playbook="cleanup_rotated_logs.yml"),
    CatalogEntry(
        name="restart_service", kind=ActionKind.RESTART_SERVICE, risk=Risk.MEDIUM,
        description="Restart one service on a host (brief unavailability of that service)",
        verification="the service's error/saturation metrics return to baseline",
        parameters={"service": service_param()}, playbook="restart_service.yml"),
    CatalogEntry(
        name="rollback_config", kind=ActionKind.ANSIBLE_PLAYBOOK, risk=Risk.MEDIUM,
        description="Restore a service's last known-good configuration file and restart it",
        verification="the service stays up (restart count stops increasing)",
        parameters={"service": service_param("service name"),
                    "config_path": Param(description="configuration file path", type="path", roots=CONFIG_ROOTS)},
        playbook="rollback_config.yml"),
    CatalogEntry(
        name="escalate_to_oncall", kind=ActionKind.NOTIFY_ONLY, risk=Risk.LOW,
        description="No safe automatic fix: hand the diagnosis to the on-call engineer",
        verification="a human acknowledges", parameters={}, dry_runnable=False),
]}


def escalation(target: str) -> Action:
    """The always-available step: hand it to a human (target kept only if it is a valid name)."""
    try:
        return CATALOG["escalate_to_oncall"].action(target)
    except ParameterRefused:
        return CATALOG["escalate_to_oncall"].action("unknown")


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
