"""One catalog entry: a typed, risk-rated, verifiable action the platform may execute.

Each toolset declares its entries in its own folder (`Toolset.entries()`); `tools/catalog.py` collects
them through the registry. An entry says what it does, its parameters (each typed and constrained,
`tools/params.py`, and marked when it names an object), where it fits and on which evidence
(`tools/fit.py`), the values an automatic run may have (`bounds`: without them it never runs without
a human, and a self-healing policy rule naming it is refused at start), and which entry undoes it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from core.models import Action, Risk
from tools.fit import NO_FIT, Fit
from tools.objects import norm_path, under
from tools.params import Param, ParameterRefused, ParamValue, check_target


class ParamBound(BaseModel):
    """What one parameter may hold in an automatic run (stricter than what a human may approve)."""

    under: tuple[str, ...] = ()  # a path at or under one of these ...
    under_setting: str = ""  # ... or one of the comma-separated roots of this setting
    subset_of: frozenset[str] | None = None  # comma-separated values, every one from this set
    minimum: int | None = None
    maximum: int | None = None
    what: str = ""  # what the allowed set is, in words ("rotated-log globs")
    unit: str = ""  # of minimum/maximum ("day")

    def problem(self, name: str, value: Any, settings: Any) -> str | None:
        if self.under or self.under_setting:
            roots = list(self.under)
            if self.under_setting:
                roots += [r.strip() for r in str(getattr(settings, self.under_setting, "") or "").split(",")
                          if r.strip()]
            if not any(under(str(value), r) and r != "/" for r in roots) and norm_path(str(value)) not in roots:
                where = f"{self.under_setting} ({', '.join(roots)})" if self.under_setting else ", ".join(roots)
                return f"{name} {value} is outside {where}"
        if self.subset_of is not None:
            odd = sorted(set(str(value).split(",")) - self.subset_of)
            if odd:
                return (f"{name} {', '.join(odd)} are not {self.what or 'allowed values'} "
                        f"({', '.join(sorted(self.subset_of))})")
        if self.minimum is not None or self.maximum is not None:
            if isinstance(value, bool) or not isinstance(value, int):
                return f"{name} {value!r} is not a number"
            unit = f" {self.unit}" if self.unit else ""
            if self.minimum is not None and value < self.minimum:
                return f"{name} {value} is below {self.minimum}{unit}"
            if self.maximum is not None and value > self.maximum:
                return f"{name} {value} is above {self.maximum}{unit}"
        return None


class AutoBounds(BaseModel):
    """The auto-approval bounds of an entry: every parameter of an automatic run within these."""

    params: dict[str, ParamBound] = Field(default_factory=dict)
    note: str = ""  # what they mean, in words (docs, the approver)

    def problem(self, action: Action, settings: Any) -> str | None:
        for name, bound in self.params.items():
            why = bound.problem(name, action.parameters.get(name), settings)
            if why:
                return why
        return None


class CatalogEntry(BaseModel):
    name: str
    kind: str
    risk: Risk
    description: str
    verification: str
    parameters: dict[str, Param] = Field(default_factory=dict)
    defaults: dict[str, ParamValue] = Field(default_factory=dict)
    playbook: str | None = None
    dry_runnable: bool = True
    toolset: str = ""  # set by the catalog from the toolset that declares it
    target_kind: str = "host"  # what the target names: a host, a PVE node, a router ("" : nothing checked)
    fit: Fit = NO_FIT  # where it belongs and the evidence it needs (tools/fit.py); the default fits nothing
    bounds: AutoBounds | None = None  # None: never without a human
    inverse: str | None = None  # the entry that undoes it with the same parameters

    @property
    def known_fix(self) -> bool:
        """A well-understood, reversible or harmless fix: eligible for auto-approval within its bounds."""
        return self.bounds is not None

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
        return {name: spec.check(self.name, name, merged[name], target) for name, spec in self.parameters.items()}

    def playbook_parameters(self) -> list[str]:
        """Parameters holding generated playbook text (vetted by their toolset)."""
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
