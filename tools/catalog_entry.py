"""One catalog entry: a typed, risk-rated, verifiable action the platform may execute.

Kept apart from the catalog itself (`tools/catalog.py`) so the toolsets (`tools/<name>/actions.py`) can
declare their entries without importing the catalog that registers them (no import cycle).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from core.models import Action, ActionKind, Risk
from tools.ansible.generated import GeneratedPlaybookRefused, check_hosts, parse
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

    def validate_parameters(self, params: dict[str, ParamValue], target: str | None = None) -> dict[str, ParamValue]:
        """Every declared parameter present and within its constraint (normalised), or ParameterRefused.

        With the target: a generated playbook's plays must name exactly that host."""
        unknown = set(params) - set(self.parameters)
        if unknown:
            raise ParameterRefused(self.name, ",".join(sorted(unknown)), "", f"unknown parameters {sorted(unknown)}",
                                   whole=True)
        merged = {**self.defaults, **params}
        missing = [p for p in self.parameters if p not in merged]
        if missing:
            raise ParameterRefused(self.name, ",".join(missing), "", f"missing parameters {missing}", whole=True)
        checked = {name: spec.check(self.name, name, merged[name]) for name, spec in self.parameters.items()}
        for name in self.playbook_parameters():
            if target is not None:
                try:
                    check_hosts(parse(str(checked[name])), target)
                except GeneratedPlaybookRefused as exc:
                    raise ParameterRefused(self.name, name, "", str(exc), whole=True) from None
        return checked

    def playbook_parameters(self) -> list[str]:
        """Parameters holding generated playbook text (vetted by tools/ansible/generated.py)."""
        return [n for n, p in self.parameters.items() if p.type == "playbook"]

    def action(self, target: str, **params: ParamValue) -> Action:
        target = check_target(self.name, target)
        checked = self.validate_parameters(params, target)
        return Action(kind=self.kind, name=self.name, target=target, parameters=checked,
                      risk=self.risk, dry_runnable=self.dry_runnable, verification=self.verification,
                      description=self.description)

    def path_roots(self) -> list[str]:
        """The roots this entry's path parameters may point under (the playbook checks them again)."""
        return [r for p in self.parameters.values() if p.type == "path" for r in p.roots]

    def brief(self) -> str:
        """One line for a model or an approver: name, risk, what it does, each parameter's constraint."""
        params = "; ".join(f"{n} ({p.constraint()}): {p.description}" for n, p in self.parameters.items())
        return f"{self.name} (risk {self.risk.value}): {self.description}; parameters: {params or 'none'}"
