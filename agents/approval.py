"""The approval policy and the checks every human decision must pass before anything executes.

Auto-approval is only for low-risk known fixes whose every parameter is one of the policy's own safe
values: the catalog allows more (a human may approve a cleanup of /data/log), the policy allows only
what it declares here - a cleanup under `AUTO_APPROVE_LOG_ROOTS`, of rotated-log globs from a fixed
allow-list, of files at least a day old, on at most `MAX_TARGETS_PER_AUTO_PLAN` hosts. An entry with
no declared bounds is never auto-approved, so a value picked by a model or taken from an alert
outside these bounds always reaches a human. The reason is recorded either way.

A human decision is accepted only if it names the plan's current content hash, comes from an
authorised approver, arrives before expiry, and has not been used before (the gate consumes it).
Anything else leaves the plan unexecuted. `blast_radius` refuses plans that touch too many hosts,
or too much of one inventory group, whoever approves them.
"""

from __future__ import annotations

import math
import posixpath
from datetime import datetime
from typing import Any

from core.models import Action, Approval, Plan, Risk, SelfHealingDecision, utcnow
from core.settings import Settings

# The only globs an automatic cleanup may delete: rotated and compressed logs, never "*" or "*.log".
ROTATED_LOG_GLOBS = frozenset({"*.gz", "*.[0-9]", "*.old", "*.bz2", "*.xz", "*.zst", "*.[0-9].gz",
                               "*.log.[0-9]", "*.log.[0-9].gz", "*.log-[0-9]*"})
MIN_CLEANUP_AGE_DAYS = 1


def _under(path: str, roots: list[str]) -> bool:
    norm = posixpath.normpath(path)
    return any(norm == r.rstrip("/") or norm.startswith(r.rstrip("/") + "/") for r in roots)


def _cleanup_bounds(a: Action, settings: Settings) -> str | None:
    p = a.parameters
    roots = settings.auto_approve_log_roots
    if not _under(str(p.get("path", "")), roots):
        return f"cleanup path {p.get('path')} is outside AUTO_APPROVE_LOG_ROOTS ({', '.join(roots)})"
    odd = sorted(set(str(p.get("patterns", "")).split(",")) - ROTATED_LOG_GLOBS)
    if odd:
        return f"patterns {', '.join(odd)} are not rotated-log globs ({', '.join(sorted(ROTATED_LOG_GLOBS))})"
    age = p.get("older_than_days")
    if isinstance(age, bool) or not isinstance(age, int) or age < MIN_CLEANUP_AGE_DAYS:
        return f"older_than_days {age} is below {MIN_CLEANUP_AGE_DAYS} day"
    return None


# Per catalog entry: why its parameters are outside the policy's bounds, or None. Entries not listed
# here are never auto-approved.
_BOUNDS = {
    "cleanup_rotated_logs": _cleanup_bounds,
    "escalate_to_oncall": lambda a, s: None,
}


def auto_approval_verdict(plan: Plan, settings: Settings) -> tuple[bool, str]:
    """(auto-approve?, why) - the why is recorded in the plan's checks or the approval's comment."""
    if not settings.AUTO_APPROVE_LOW_RISK:
        return False, "auto-approval is off (AUTO_APPROVE_LOW_RISK=false)"
    if plan.risk != Risk.LOW:
        return False, f"risk is {plan.risk.value}: a human decides"
    if not plan.known_fix:
        return False, "not a known fix: a human decides"
    targets = {a.target for a in plan.actions}
    if len(targets) > settings.MAX_TARGETS_PER_AUTO_PLAN:
        return False, (f"touches {len(targets)} hosts, more than MAX_TARGETS_PER_AUTO_PLAN "
                       f"({settings.MAX_TARGETS_PER_AUTO_PLAN}) for an automatic run")
    for a in plan.actions:
        bounds = _BOUNDS.get(a.name)
        if bounds is None:
            return False, f"{a.name} has no auto-approval bounds: a human decides"
        problem = bounds(a, settings)
        if problem:
            return False, f"{a.name}: {problem}: a human decides"
    return True, "low-risk known fix, every parameter within the auto-approval bounds"


def auto_approval(plan: Plan, settings: Settings, heal: SelfHealingDecision | None = None) -> Approval | None:
    """An approval by policy, or None (a human decides).

    Both must allow: the parameter bounds above (`auto_approval_verdict`: a low-risk known fix whose
    every parameter is a declared safe value) and, when given, the self-healing policy's decision
    `heal` (agents/self_healing.authorize: which actions on which targets, rate limits, cool-down,
    flap guard, kill switch).
    """
    ok, why = auto_approval_verdict(plan, settings)
    if not ok or (heal is not None and not heal.allowed):
        return None
    rule = f"; self-healing policy rule {heal.rule}" if heal is not None else ""
    return Approval(plan_id=plan.id, plan_hash=plan.content_hash, approver="policy", decision="approve",
                    channel="policy", comment=f"auto-approved by policy: {why}{rule}")


def blast_radius(actions: list[Action], settings: Settings, groups: dict[str, frozenset[str]]) -> str | None:
    """Why this plan touches too much at once (for any approver), or None.

    At most MAX_TARGETS_PER_PLAN distinct hosts, and never more than MAX_GROUP_FRACTION of an inventory
    group (one host of a group is always allowed, or a one-host group could never be fixed).
    """
    targets = {a.target for a in actions if a.name != "escalate_to_oncall"}
    if len(targets) > settings.MAX_TARGETS_PER_PLAN:
        return f"the plan touches {len(targets)} hosts, more than MAX_TARGETS_PER_PLAN ({settings.MAX_TARGETS_PER_PLAN})"
    for group, members in sorted(groups.items()):
        hit = targets & members
        allowed = max(1, math.floor(settings.MAX_GROUP_FRACTION * len(members)))
        if len(hit) > allowed:
            return (f"the plan touches {len(hit)} of the {len(members)} hosts of group {group}, more than "
                    f"MAX_GROUP_FRACTION ({settings.MAX_GROUP_FRACTION:g}) allows at once")
    return None


def authorised(approver: str, channel: str, settings: Settings) -> bool:
    if channel == "telegram":
        return approver in settings.admin_chat_ids
    if channel in ("cli", "http", "demo"):
        return not settings.approvers or approver in settings.approvers
    return False


def check_decision(raw: Any, plan: Plan, settings: Settings, now: datetime | None = None) -> Approval:
    """Turn a resume payload into an Approval, with valid=False and a reason when it must not count."""
    now = now or utcnow()
    if not isinstance(raw, dict):
        return Approval(plan_id=plan.id, plan_hash="", approver="?", decision="reject", valid=False,
                        reason="malformed decision")
    approval = Approval.model_validate({"plan_id": plan.id, **raw})
    problems = []
    if approval.plan_id != plan.id:
        problems.append(f"decision is for plan {approval.plan_id}, not {plan.id}")
    if approval.plan_hash != plan.content_hash:
        problems.append("plan changed since approval was requested (content hash mismatch)")
    if not authorised(approval.approver, approval.channel, settings):
        problems.append(f"{approval.approver!r} is not an authorised approver for {approval.channel}")
    if plan.expires_at is not None and now > plan.expires_at:
        problems.append(f"approval window expired at {plan.expires_at:%Y-%m-%d %H:%M:%S}Z")
    if problems:
        return approval.model_copy(update={"valid": False, "reason": "; ".join(problems)})
    return approval
