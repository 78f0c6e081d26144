"""The incident graph's state: the domain models themselves (core/models.py), typed end to end.

LangGraph's checkpoint serializer stores a pydantic v2 model as its class and field values and
rebuilds the model on read; `CHECKPOINT_TYPES` lists every class a state can hold, so the checkpointer
allows exactly those (store/checkpoint.py) instead of warning about, or refusing to rebuild, them.

Versions. A checkpoint written before the state was typed (schema version 1, no `schema_version`
key) holds each model as its `model_dump(mode="json")` dict. Such checkpoints live on in deployments
for as long as an incident waits for approval, so every read of the state goes through `typed()`: the
versioned reader, which turns a version-1 value (or a dict someone wrote with `aupdate_state`) into
its model and leaves models alone. Nodes and edges get their state through it (graphs/incident.py),
and so does the runner's every read of a snapshot (service/runner.py).
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from enum import Enum
from types import UnionType
from typing import Annotated, Any, Literal, TypedDict, cast, get_args, get_origin, get_type_hints

from pydantic import BaseModel

from core.models import (
    AlertmanagerWebhook,
    Approval,
    Attempt,
    Escalation,
    Evidence,
    ExecutionResult,
    Hypothesis,
    Incident,
    IncidentReport,
    IncidentStatus,
    LLMCall,
    Plan,
    SelfHealingDecision,
    TriageVerdict,
    Verification,
)

# 1: every model value a JSON dict (before issue 18); 2: the models themselves.
SCHEMA_VERSION = 2


class IncidentState(TypedDict, total=False):
    schema_version: int  # SCHEMA_VERSION of the run's first write; absent in version-1 checkpoints
    webhook: AlertmanagerWebhook
    incident: Incident
    triage: TriageVerdict
    evidence: list[Evidence]
    hypotheses: list[Hypothesis]  # ranked
    summary: str
    known_fix: dict[str, Any] | None  # a past incident's verified fix that applies again (a memory record)
    plan: Plan | None
    approval: Approval | None
    executions: list[ExecutionResult]
    verification: Verification | None
    escalation: Escalation | None  # handed to a human, the incident ended
    failed_step: str | None  # a step that failed unexpectedly: the run escalated instead (service/runner.py)
    llm_calls: Annotated[list[LLMCall], operator.add]  # appended by every node
    llm_used: Annotated[list[str], operator.add]  # nodes whose output came from an LLM
    status: IncidentStatus
    self_healing: SelfHealingDecision | None  # why the plan did or did not run without a human
    attempts: list[Attempt]  # earlier plans (an automatic fix that failed verification)
    report: IncidentReport
    read_only: bool  # investigate(): a question, not an incident; nothing is remembered


def _model_keys() -> tuple[dict[str, type[BaseModel]], dict[str, type[BaseModel]]]:
    """The model each model-valued key holds, read from `IncidentState`'s own annotations: keys holding
    one model (`X` or `X | None`) and keys holding a list of them (`list[X]`, appended or not)."""
    one: dict[str, type[BaseModel]] = {}
    many: dict[str, type[BaseModel]] = {}
    for key, hint in get_type_hints(IncidentState, include_extras=True).items():
        if get_origin(hint) is Annotated:
            hint = get_args(hint)[0]
        if get_origin(hint) is list:
            (item,) = get_args(hint)
            if isinstance(item, type) and issubclass(item, BaseModel):
                many[key] = item
            continue
        options = [a for a in get_args(hint) if a is not type(None)] if get_origin(hint) is UnionType else [hint]
        if len(options) == 1 and isinstance(options[0], type) and issubclass(options[0], BaseModel):
            one[key] = options[0]
    return one, many


_ONE, _MANY = _model_keys()


def _model(cls: type[BaseModel], value: Any) -> Any:
    return value if value is None or isinstance(value, cls) else cls.model_validate(value)


def typed(values: Mapping[str, Any]) -> IncidentState:
    """The state with every value its model: a version-1 dict is validated into it (the webhook from
    its Alertmanager camelCase names, the status from its string), a model is kept as it is."""
    out = dict(values)
    for key, cls in _ONE.items():
        if key in out:
            out[key] = _model(cls, out[key])
    for key, cls in _MANY.items():
        if out.get(key) is not None:
            out[key] = [_model(cls, v) for v in out[key]]
    if isinstance(out.get("status"), str) and not isinstance(out["status"], IncidentStatus):
        out["status"] = IncidentStatus(out["status"])
    return cast(IncidentState, out)


def version(values: Mapping[str, Any]) -> int:
    """The schema version a state was started with (1: written before the state was typed)."""
    return int(values.get("schema_version") or 1)


def _classes(tp: Any, found: set[type], seen: set[Any]) -> None:
    """Every pydantic model and enum class a value of type `tp` can contain, nested fields included."""
    if id(tp) in seen:
        return
    seen.add(id(tp))
    origin = get_origin(tp)
    if origin is Annotated:
        _classes(get_args(tp)[0], found, seen)
    elif origin is Literal:
        return
    elif origin is not None:  # list[X], dict[K, V], X | None, tuple[...]
        for arg in get_args(tp):
            _classes(arg, found, seen)
    elif isinstance(tp, type) and issubclass(tp, BaseModel):
        found.add(tp)
        for field in tp.model_fields.values():
            _classes(field.annotation, found, seen)
        for computed in tp.model_computed_fields.values():
            _classes(computed.return_type, found, seen)
    elif isinstance(tp, type) and issubclass(tp, Enum):
        found.add(tp)


def _checkpoint_types() -> frozenset[type]:
    found: set[type] = set()
    seen: set[Any] = set()
    for hint in get_type_hints(IncidentState, include_extras=True).values():
        _classes(hint, found, seen)
    return frozenset(found)


# What a checkpoint of this state may rebuild (and nothing else of ours): store/checkpoint.py.
CHECKPOINT_TYPES: frozenset[type] = _checkpoint_types()
