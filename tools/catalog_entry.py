"""One catalog entry: a typed, risk-rated, verifiable action the platform may execute.

Kept apart from the catalog itself (`tools/catalog.py`) so the toolsets (`tools/<name>/actions.py`) can
declare their entries without importing the catalog that registers them (no import cycle).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from core.models import Action, ActionKind, Risk
from tools.fit import NO_FIT, Fit
from tools.params import Param, ParameterRefused, ParamValue, check_target


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
