"""The toolset plugin contract: one folder per system aiops reads and changes.

A toolset (the anchors: HolmesGPT's `holmes/plugins/toolsets/<name>/`, Keep's `providers/`) is a
folder under `tools/` that holds everything about one system, and nothing else in the product names
it:

- its **settings model** (`settings.py`: the env variables it reads, validated at start),
- its **client** (`connect`: None when it is not configured),
- **read tools** for the model (`read_tools`) and its **notes** for the model (`notes.md`),
- the **evidence** it reads for an incident (`investigate`: one observation per item read, and one
  "could not read X" observation per item that failed, never one failure for the whole toolset),
- its **catalog entries**, each with its fit declaration, auto-approval bounds and inverse
  (`entries`), and how an incident's objects bind each entry's parameters (`candidates`),
- how each entry is **checked before approval**, **executed**, **verified** and **settled** after
  verification (`preflight`, `execute`, `verify`, `settle`), and what **undoes** it (`inverse`).

`tools/registry.py` lists the toolsets, one line each. The executor, diagnosis, planning and
verification iterate over the registry; none branches on an action kind or a toolset name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, Field, ValidationError

from core.models import (
    Action,
    Diagnosis,
    Evidence,
    ExecutionResult,
    Incident,
    TriageVerdict,
    VerificationCheck,
)
from core.settings import SettingsError
from tools.params import ParameterRefused
from tools.result import Observation

if TYPE_CHECKING:
    from core.settings import Settings
    from tools.catalog_entry import CatalogEntry
    from tools.objects import Objects


class ToolsetSettingsError(SettingsError):
    """A toolset's settings are invalid (one line naming the variable)."""


class Outcome(BaseModel):
    """How one action ended, as its toolset reports it (the executor turns it into an ExecutionResult)."""

    status: Literal["ok", "failed", "dry_run", "skipped"]
    output: str
    details: dict[str, str | int | float | bool] = Field(default_factory=dict)


class Reading(BaseModel):
    """What a toolset read for an incident: observations to cite, and metric suspects for the ranking."""

    observations: list[Observation] = Field(default_factory=list)
    suspects: list[Any] = Field(default_factory=list)  # tools.analysis.metric_anomaly.Suspect


@dataclass
class ReadContext:
    """What a toolset gets to decide what to read: the alert, triage's reading of it, the window."""

    labels: dict[str, str]
    verdict: TriageVerdict | None
    start: datetime
    end: datetime
    baseline_start: datetime
    target: str  # the alert's own target (for items that name nothing better)


@dataclass
class PlanContext:
    """What a toolset binds its entries' parameters from: the incident, its evidence and its objects."""

    incident: Incident
    verdict: TriageVerdict
    diagnosis: Diagnosis
    evidence: list[Evidence]
    objects: Objects
    settings: Settings

    @property
    def labels(self) -> dict[str, str]:
        return self.incident.alert.labels


class Candidate(BaseModel):
    """One catalog action bound to this incident's objects, with why and how strongly it applies; or,
    when a value from the incident failed its constraint, why it was refused (never proposed)."""

    action: Action | None = None
    why: str
    score: float = 0.0  # ranks candidates whose fit is equally good (e.g. the share of the disk it frees)
    refused: str = ""  # the ParameterRefused message
    hostile: bool = False  # the refused value carried template, shell or path syntax


def bound(entry: CatalogEntry, target: str, params: dict[str, Any], why: str, score: float = 0.0) -> list[Candidate]:
    """`entry` bound to these values, or a refused candidate when a value fails its constraint."""

    try:
        return [Candidate(action=entry.action(target, **params), why=why, score=score)]
    except ParameterRefused as exc:
        return [Candidate(why=why, refused=str(exc), hostile=exc.hostile)]


@dataclass
class Vetting:
    """The dynamic checks an action needs before anyone may approve it (a generated playbook's
    syntax-check, lint and --check --diff); ok for every action that needs none."""

    ok: bool = True
    lines: list[str] = field(default_factory=list)  # what the approver sees
    refused: str = ""  # the first failed step and its reason

    def summary(self) -> str:
        return "; ".join(self.lines) if self.ok else f"REFUSED: {self.refused}"


class Toolset:
    """Base of every toolset: the hooks a plugin overrides, each with a safe default."""

    name: ClassVar[str]
    folder: ClassVar[Path]  # its folder (notes.md lives there)
    settings_model: ClassVar[type[BaseModel] | None] = None
    # Evidence sources the ranking reads directly (metrics, logs): every layer may use their types.
    shared_source: ClassVar[bool] = False
    # Whether a replay may run its actions: its targets are stood in for by the recording (the host
    # toolset's sandbox hosts); a replay never connects the others (a recorded incident must not
    # reboot a real guest).
    replayable: ClassVar[bool] = False

    # ------------------------------------------------------------------------ configuration --
    def settings(self, settings: Settings) -> Any:
        """This toolset's settings: its model read from the environment, overridden by values of the
        same name the core settings carry (tests, `load_settings(NAME=...)`); one-line error if invalid."""
        model = self.settings_model
        if model is None:
            return None
        given = {k: getattr(settings, k) for k in model.model_fields if k in type(settings).model_fields}
        given.update({k: v for k, v in (settings.model_extra or {}).items() if k in model.model_fields})
        try:
            return model(**given)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or self.name
            raise ToolsetSettingsError(f"invalid configuration: {where}: "
                                       f"{str(err['msg']).removeprefix('Value error, ')}") from None

    def connect(self, settings: Settings) -> Any:
        """The client of this system, or None when the settings do not configure it."""
        return None

    def notes(self) -> str:
        path = self.folder / "notes.md"
        return path.read_text(encoding="utf-8") if path.exists() else ""

    # --------------------------------------------------------------------------------- reads --
    def entries(self) -> list[CatalogEntry]:
        return []

    def read_tools(self, client: Any, *, now: Any = None, call_graph: Any = None) -> list[Any]:
        """Read-only LangChain tools over `client` for the model (each returns a ToolResult)."""
        return []

    def names(self, labels: dict[str, str]) -> dict[str, set[str]]:
        """The objects of this toolset's kinds that an alert's labels name (e.g. a guest id)."""
        return {}

    async def investigate(self, client: Any, ctx: ReadContext) -> Reading:
        """What this system says about the incident's objects (per item; a failed read is one item)."""
        return Reading()

    # ------------------------------------------------------------------------------ planning --
    def candidates(self, ctx: PlanContext) -> list[Candidate]:
        """This toolset's entries bound to the incident's objects (fit is checked afterwards)."""
        return []

    def vet(self, action: Action, client: Any) -> Vetting:
        """Dynamic checks before approval (only actions that need them; cached by the toolset)."""
        return Vetting()

    # ----------------------------------------------------------------------------- execution --
    def preflight(self, action: Action, client: Any) -> str:
        """What approvers see before deciding: the exact call and the object as it is now."""
        return "no change is made"

    def execute(self, action: Action, client: Any, *, plan_id: str = "") -> Outcome:
        return Outcome(status="skipped", output=f"no change made: {action.name} has no execution")

    async def verify(self, client: Any, evidence: list[Evidence], executions: list[ExecutionResult],
                     component: str) -> list[VerificationCheck]:
        """Re-read what this toolset's evidence showed, and what its executed actions changed."""
        return []

    def settle(self, client: Any, executions: list[ExecutionResult], recovered: bool) -> str:
        """After verification: keep or disarm what the change armed (e.g. a revert timer); a note."""
        return ""

    def inverse(self, action: Action, result: ExecutionResult | None) -> Action | None:
        """The action that undoes `action` (None: nothing does). Default: the entry's declared inverse
        with the same parameters."""
        entry = next((e for e in self.entries() if e.name == action.name), None)
        if entry is None or not entry.inverse:
            return None
        undo = next((e for e in self.entries() if e.name == entry.inverse), None)
        if undo is None:
            return None
        return undo.action(action.target, **{k: v for k, v in action.parameters.items() if k in undo.parameters})
