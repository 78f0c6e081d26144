"""The self-healing loop around the approval gate: ask the policy, remember, and back off on failure.

- `authorize` is what the gate's auto-approval consults: the policy's decision (agents/policy.py)
  over the recorded history, taken and recorded in one transaction (store/autonomy.py);
- `record_verification` stores whether the automatic fix was confirmed: a failed one is never
  retried automatically (the `failed-verification` guard);
- `inverse_plan` is the next plan after a failed automatic fix: the action that undoes it, as its
  toolset declares it (a disable -> the enable; a change preceded by a snapshot -> the rollback to
  it), else an escalation. It always waits for a human;
- `set_self_healing` is the run-time kill switch (`POST /api/v1/self-healing {"enabled": false}`).
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

from agents.policy import decision_model, executed_key, load_policy, self_healing_decision
from agents.toolbox import Toolbox
from core.models import (
    Action,
    ActionKind,
    ExecutionResult,
    Incident,
    Plan,
    SelfHealingDecision,
    Verification,
    utcnow,
)
from core.settings import Settings, load_settings
from store.autonomy import AutoAction, SelfHealingStore, SwitchState
from tools.catalog import CATALOG
from tools.registry import toolset


@lru_cache(maxsize=32)
def _store(data_dir: str, database_url: str | None) -> SelfHealingStore:
    return SelfHealingStore(load_settings(AIOPS_DATA_DIR=data_dir, DATABASE_URL=database_url))


def store_for(settings: Settings) -> SelfHealingStore:
    """One store (one open connection) per database per process."""
    return _store(str(settings.AIOPS_DATA_DIR), settings.DATABASE_URL)


def authorize(plan: Plan, incident: Incident, toolbox: Toolbox) -> SelfHealingDecision:
    """May `plan` run without a human? Records the actions when it may (they count against the limits)."""
    settings = toolbox.settings
    if not plan.known_fix:  # planning's fit verdict comes first: evidence missing, or not a catalog known fix
        return SelfHealingDecision(allowed=False, rule="not-a-known-fix", reason=(
            "not a known fix whose required evidence is present (see the fit notes): a human decides"))
    policy = load_policy(settings.POLICY_FILE)
    now = toolbox.clock()
    acting = [a for a in plan.actions if a.kind != ActionKind.NOTIFY_ONLY]

    def decide(history: list[AutoAction], switch: SwitchState) -> tuple[bool, str, str]:
        return self_healing_decision(plan, incident, history, settings, policy=policy, switch_on=switch.enabled,
                                     switch_note=switch.note, now=now)

    result = store_for(settings).decide_and_record(
        incident_id=incident.id, plan_id=plan.id, fingerprint=incident.fingerprint,
        actions=[executed_key(a) for a in acting], now=now, decide=decide)
    return decision_model(result)


def forget(plan: Plan, settings: Settings) -> None:
    """Another gate check refused a plan the policy allowed: it never ran, so it must not count."""
    store_for(settings).forget(plan.id)


def record_verification(plan: Plan, executions: list[ExecutionResult], verification: Verification,
                        settings: Settings) -> None:
    """True: confirmed; False: a step failed, or it ran and was not confirmed (never retried); None: nothing ran."""
    if verification_failed(executions, verification):
        verified: bool | None = False
    else:
        verified = True if verification.recovered else None
    store_for(settings).set_verified(plan.id, verified)


def verification_failed(executions: list[ExecutionResult], verification: Verification | None) -> bool:
    """Something really ran and was not confirmed (recovered False, or no way to tell)."""
    ran = any(e.status == "ok" for e in executions)
    failed = any(e.status == "failed" for e in executions)
    return failed or (ran and (verification is None or verification.recovered is not True))


def _inverse(action: Action, result: ExecutionResult | None) -> Action | None:
    """What undoes `action`, as the toolset that ran it declares (None: nothing does)."""
    entry = CATALOG.get(action.name)
    if entry is None or not entry.toolset:
        return None
    return toolset(entry.toolset).inverse(action, result)


def inverse_plan(plan: Plan, executions: list[ExecutionResult], settings: Settings) -> Plan:
    """The plan offered to a human after an automatic fix failed verification."""
    by_step = {(e.action, e.target): e for e in executions}
    ran = [a for a in plan.actions if (a.name, a.target) in by_step and by_step[(a.name, a.target)].status == "ok"]
    undo = [inv for a in reversed(ran) if (inv := _inverse(a, by_step.get((a.name, a.target)))) is not None]
    what = ", ".join(f"{a.name} on {a.target}" for a in plan.actions)
    if undo:
        rationale = (f"the automatic {what} did not fix the problem (verification failed) and is not retried "
                     f"automatically; undoing it: {', '.join(f'{u.name} on {u.target}' for u in undo)}")
        actions = undo
    else:
        target = plan.actions[0].target if plan.actions else "unknown"
        rationale = (f"the automatic {what} did not fix the problem (verification failed) and is not retried "
                     "automatically; it has no inverse in the catalog, so a human takes over")
        actions = [CATALOG["escalate_to_oncall"].action(target)]
    follow = Plan(incident_id=plan.incident_id, actions=actions, rationale=rationale, known_fix=False)
    return follow.with_expiry(settings.APPROVAL_TTL_SECONDS)


def set_self_healing(settings: Settings, enabled: bool, by: str, now: datetime | None = None) -> SwitchState:
    """The run-time kill switch, persisted in the database: every worker and process sees it at once."""
    return store_for(settings).set_switch(enabled, by, now or utcnow())


def self_healing_status(settings: Settings) -> dict[str, Any]:
    """What `GET /api/v1/self-healing` shows: both switches and the policy in force."""
    switch = store_for(settings).switch()
    policy = load_policy(settings.POLICY_FILE)
    return {"enabled": settings.SELF_HEALING and switch.enabled, "env_enabled": settings.SELF_HEALING,
            "runtime_enabled": switch.enabled, "changed_by": switch.changed_by or None,
            "changed_at": switch.changed_at.isoformat() if switch.changed_at else None,
            "policy": policy.source, "rules": [r.name for r in policy.rules],
            "limits": policy.limits.model_dump(by_alias=True), "flap_window_seconds": settings.FLAP_WINDOW_SECONDS}
