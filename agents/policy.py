"""The self-healing policy: may this plan run without a human, now, and which rule says so?

`self_healing_decision` is a pure function of the plan, the incident, the history of automatic
actions and the settings, so every guard is testable without a graph. The guards, in order (the
first that refuses wins, and its name is the recorded `rule`):

1. `kill-switch`: `SELF_HEALING=false`, or the run-time switch (`POST /api/v1/self-healing`) is off;
2. `no-rule`: some action of the plan matches no policy rule (action name, target glob, max risk);
3. `failed-verification`: the same action on the same target and object (as executed: action name,
   target, and the objects its parameters name) ran automatically before and failed (a step failed,
   or it ran and verification did not confirm it): never retried automatically, a human decides
   (and is offered the inverse where there is one);
4. `flap-guard`: the same action on the same target and object ran automatically within
   `FLAP_WINDOW_SECONDS`: fixing it again would be a loop, so it goes to a human;
5. `cooldown`: an automatic action ran on the same target less than `cooldown_seconds` ago;
6. `rate-limit-target` / `rate-limit-global`: the per-target / global budget of automatic actions
   in the last `period_seconds` is spent.

Every guard keys on what was executed, never on the Alertmanager `fingerprint` a sender supplies:
four alerts about one guest that differ only in fingerprint get one automatic attempt, not three.

When all pass, `rule` names the policy rule(s) that allowed the plan. The built-in policy is
`agents/policy_default.yaml`; `POLICY_FILE` replaces it. A rule naming an action that has no
auto-approval bounds (its catalog entry declares none) is refused when the policy is loaded: it could
never make that action automatic, and a rule that silently never fires is a lie.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.config_files import ConfigFileError, read_yaml
from core.models import Action, ActionKind, Incident, Plan, Risk, SelfHealingDecision, utcnow
from core.settings import Settings
from store.autonomy import AutoAction
from tools.objects import object_key

DEFAULT_POLICY = Path(__file__).with_name("policy_default.yaml")


class PolicyError(ValueError):
    """The policy file is unreadable or invalid (one line, for the CLI/API)."""


class PolicyRule(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a typo in a safety policy must not pass silently

    name: str = Field(min_length=1, max_length=100)
    actions: list[str] = Field(min_length=1)  # catalog names; "*" for any
    targets: list[str] = Field(default_factory=lambda: ["*"])  # fnmatch globs on the action's target
    max_risk: Risk = Risk.LOW

    def allows(self, action: str, target: str, risk: Risk) -> bool:
        return ((action in self.actions or "*" in self.actions) and risk.rank <= self.max_risk.rank
                and any(fnmatch.fnmatchcase(target, g) for g in self.targets))


class PolicyLimits(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    per_target: int = Field(3, ge=0)
    global_: int = Field(20, ge=0, alias="global")
    period_seconds: int = Field(3600, ge=1)
    cooldown_seconds: int = Field(300, ge=0)


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[PolicyRule] = Field(default_factory=list)
    limits: PolicyLimits = Field(default_factory=lambda: PolicyLimits.model_validate({}))
    source: str = "built-in"

    def rule_for(self, action: str, target: str, risk: Risk) -> PolicyRule | None:
        return next((r for r in self.rules if r.allows(action, target, risk)), None)


def load_policy(path: Path | None) -> Policy:
    return _load(str(path or DEFAULT_POLICY))


@lru_cache(maxsize=8)
def _load(path: str) -> Policy:
    try:
        data = read_yaml(path, "POLICY_FILE") or {}
    except ConfigFileError as exc:
        raise PolicyError(str(exc)) from None
    if not isinstance(data, dict):
        raise PolicyError(f"POLICY_FILE {path}: expected a mapping with 'rules' and 'limits'")
    try:
        policy = Policy.model_validate({**data, "source": "built-in" if Path(path) == DEFAULT_POLICY else path})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise PolicyError(f"POLICY_FILE {path}: {where}: {err['msg']}") from None
    from tools.catalog import CATALOG

    for rule in policy.rules:
        unknown = [a for a in rule.actions if a != "*" and a not in CATALOG]
        if unknown:
            raise PolicyError(f"POLICY_FILE {path}: rule {rule.name!r} names unknown catalog actions {unknown}")
        unbounded = [a for a in rule.actions if a != "*" and CATALOG[a].bounds is None]
        if unbounded:
            raise PolicyError(f"POLICY_FILE {path}: rule {rule.name!r} names {', '.join(unbounded)}, which "
                              f"{'has' if len(unbounded) == 1 else 'have'} no auto-approval bounds and can never "
                              "run without a human")
    return policy


def executed_key(action: Action) -> tuple[str, str, str]:
    """(action, target, object) of an action as it runs: what the guards compare."""
    from tools.catalog import CATALOG

    entry = CATALOG.get(action.name)
    return action.name, action.target, object_key(action, entry) if entry is not None else ""


def self_healing_decision(plan: Plan, incident: Incident, history: Sequence[AutoAction], settings: Settings,
                          *, policy: Policy | None = None, switch_on: bool = True, switch_note: str = "",
                          now: datetime | None = None) -> tuple[bool, str, str]:
    """(allowed, rule, reason). See the module docstring for the guards and their order."""
    policy = policy or load_policy(settings.POLICY_FILE)
    now = now or utcnow()
    if not settings.SELF_HEALING:
        return False, "kill-switch", "self-healing is off (SELF_HEALING=false): every plan goes to a human"
    if not switch_on:
        return False, "kill-switch", f"self-healing was switched off at run time{switch_note}"
    acting = [a for a in plan.actions if a.kind != ActionKind.NOTIFY_ONLY]
    if not acting:
        return False, "no-rule", "the plan changes nothing (escalation only): a human takes it"
    rules = []
    for a in acting:
        rule = policy.rule_for(a.name, a.target, a.risk)
        if rule is None:
            return False, "no-rule", (f"no rule of the {policy.source} policy allows {a.name} "
                                      f"({a.risk.value} risk) on {a.target} without a human")
        rules.append(rule.name)
    keys = {executed_key(a) for a in acting}
    mine = [h for h in history if h.key in keys]
    failed = [h for h in mine if h.verified is False]
    if failed:
        f = failed[-1]
        return False, "failed-verification", (
            f"the automatic {f.action} on {f.target}{_obj(f.object)} ({f.incident_id}, {f.at:%H:%M:%S}Z) failed "
            "verification: the same action on the same object is never retried automatically")
    flap = timedelta(seconds=settings.FLAP_WINDOW_SECONDS)
    recent = [h for h in mine if h.at >= now - flap]
    if recent and settings.FLAP_WINDOW_SECONDS > 0:
        r = recent[-1]
        return False, "flap-guard", (
            f"the same fix is due again {int((now - r.at).total_seconds())} s after the automatic {r.action} on "
            f"{r.target}{_obj(r.object)} ({r.incident_id}); within FLAP_WINDOW_SECONDS="
            f"{settings.FLAP_WINDOW_SECONDS} a human decides instead of fixing it again")
    lim = policy.limits
    period_start = now - timedelta(seconds=lim.period_seconds)
    in_period = [h for h in history if h.at >= period_start]
    for target in sorted({a.target for a in acting}):
        on_target = [h for h in in_period if h.target == target]
        last = max((h.at for h in history if h.target == target), default=None)
        if last is not None and now - last < timedelta(seconds=lim.cooldown_seconds):
            return False, "cooldown", (f"an automatic action ran on {target} {int((now - last).total_seconds())} s "
                                       f"ago (cool-down {lim.cooldown_seconds} s)")
        if len(on_target) >= lim.per_target:
            return False, "rate-limit-target", (f"{len(on_target)} automatic actions on {target} in the last "
                                                f"{lim.period_seconds} s (limit {lim.per_target})")
    if len(in_period) + len(acting) > lim.global_:
        return False, "rate-limit-global", (f"{len(in_period)} automatic actions in the last {lim.period_seconds} s "
                                            f"over all targets (limit {lim.global_})")
    names = ", ".join(dict.fromkeys(rules))
    targets = ", ".join(sorted({a.target for a in acting}))
    used = max(len([h for h in in_period if h.target == t]) for t in {a.target for a in acting}) + 1
    return True, names, (f"the {policy.source} policy allows {', '.join(a.name for a in acting)} on {targets} "
                         f"without a human (automatic action {used}/{lim.per_target} on the target this period)")


def _obj(obj: str) -> str:
    return f" ({obj})" if obj else ""


def decision_model(result: tuple[bool, str, str]) -> SelfHealingDecision:
    allowed, rule, reason = result
    return SelfHealingDecision(allowed=allowed, rule=rule, reason=reason)
