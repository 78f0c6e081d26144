"""The action catalog: every step the platform can execute, typed, risk-rated and verifiable.

Planning (rules or LLM) may only pick entries from here and fill their declared parameters; the
executor hands each entry to the toolset that declares it. Nothing else runs. The entries come from
the toolsets in `tools/registry.py` (each declares its own, beside the code that runs them), plus the
one step every deployment has: hand the incident to a human. Every parameter declares a type and a
constraint (`tools/params.py`), and `CatalogEntry.action()` - the only way an `Action` is built from a
plan, a model's answer, a remembered fix or a toolset - validates every value and the target,
raising `ParameterRefused` with the reason.
"""

from __future__ import annotations

from core.models import Action, ActionKind, Risk
from tools.catalog_entry import AutoBounds, CatalogEntry
from tools.fit import ALL_CATEGORIES, Fit
from tools.params import ParameterRefused
from tools.registry import toolsets

__all__ = ["CATALOG", "ESCALATE", "CatalogEntry", "escalation", "toolset_of"]

ESCALATE = "escalate_to_oncall"

_ESCALATION = CatalogEntry(
    name=ESCALATE, kind=ActionKind.NOTIFY_ONLY, risk=Risk.LOW, target_kind="",
    description="No safe automatic fix: hand the diagnosis to the on-call engineer",
    verification="a human acknowledges", parameters={}, dry_runnable=False,
    fit=Fit(categories=ALL_CATEGORIES), bounds=AutoBounds(note="changes nothing"))


def _collect() -> dict[str, CatalogEntry]:
    catalog = {ESCALATE: _ESCALATION}
    for ts in toolsets():
        for entry in ts.entries():
            if entry.name in catalog:
                raise RuntimeError(f"catalog entry {entry.name} is declared twice")
            catalog[entry.name] = entry.model_copy(update={"toolset": ts.name})
    return catalog


CATALOG: dict[str, CatalogEntry] = _collect()


def toolset_of(action_name: str) -> str:
    """The toolset that runs an entry ("" for the escalation, which runs nowhere)."""
    entry = CATALOG.get(action_name)
    return entry.toolset if entry is not None else ""


def escalation(target: str) -> Action:
    """The always-available step: hand it to a human (target kept only if it is a valid name)."""
    try:
        return CATALOG[ESCALATE].action(target)
    except ParameterRefused:
        return CATALOG[ESCALATE].action("unknown")
