"""The approval policy and the checks every human decision must pass before anything executes.

Auto-approval is only for known fixes whose every parameter is within the bounds its catalog entry
declares (`CatalogEntry.bounds`, beside the toolset's code): the catalog allows more (a human may
approve a cleanup of /data/log), the bounds only what is safe without one - e.g. a cleanup under
`AUTO_APPROVE_LOG_ROOTS`, of rotated-log globs from a fixed allow-list, of files at least a day old -
on at most `MAX_TARGETS_PER_AUTO_PLAN` hosts. An entry with no declared bounds is never auto-approved,
so a value picked by a model or taken from an alert outside these bounds always reaches a human.
Low risk is the default; medium risk only under an explicit self-healing policy rule; high never.
The reason is recorded either way.

A human decision is accepted only if it names the plan's current content hash, comes from an
authorised approver, arrives before expiry, and has not been used before (the gate consumes it).
Anything else leaves the plan unexecuted. `blast_radius` refuses plans that touch too many hosts,
or too much of one inventory group, whoever approves them.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from agents.policy import load_policy
from core.models import Action, Approval, Plan, Risk, SelfHealingDecision, utcnow
from core.settings import Settings
from tools.catalog import CATALOG


def auto_approval_verdict(plan: Plan, settings: Settings) -> tuple[bool, str]:
    """(auto-approve?, why) - the why is recorded in the plan's checks or the approval's comment.

    Every action needs its catalog entry's auto-approval bounds (`CatalogEntry.bounds`, declared by its
    toolset) and every parameter within them. A low-risk action may go on those alone; a medium-risk
    one only where a self-healing policy rule explicitly allows it at that risk (POLICY_FILE); a
    high-risk one never."""

    if not settings.AUTO_APPROVE_LOW_RISK:
        return False, "auto-approval is off (AUTO_APPROVE_LOW_RISK=false)"
    if plan.risk == Risk.HIGH:
        return False, "risk is high: a human decides"
    if not plan.known_fix:
        return False, "not a known fix: a human decides"
    targets = {a.target for a in plan.actions}
    if len(targets) > settings.MAX_TARGETS_PER_AUTO_PLAN:
        return False, (f"touches {len(targets)} hosts, more than MAX_TARGETS_PER_AUTO_PLAN "
                       f"({settings.MAX_TARGETS_PER_AUTO_PLAN}) for an automatic run")
    for a in plan.actions:
        entry = CATALOG.get(a.name)
        if entry is None or entry.bounds is None:
            return False, f"{a.name} has no auto-approval bounds: a human decides"
        problem = entry.bounds.problem(a, settings)
        if problem:
            return False, f"{a.name}: {problem}: a human decides"
        if a.risk != Risk.LOW and load_policy(settings.POLICY_FILE).rule_for(a.name, a.target, a.risk) is None:
            return False, f"{a.name} is {a.risk.value} risk and no self-healing policy rule allows it: a human decides"
    return True, "known fix, every parameter within the auto-approval bounds"


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


SHORT_HASH = 12  # the fewest hex digits of a plan's content hash a person may type (the cards show 12)
_HEX = frozenset("0123456789abcdef")


def authorised(approver: str, channel: str, settings: Settings) -> bool:
    """May `approver` decide plans and change incidents through `channel`? The one rule, for every
    channel (the gate, the runner, the lifecycle, the API's switch, the console, the Telegram buttons)."""
    if channel == "telegram":  # the user's id, or the name TELEGRAM_APPROVER_IDS gives it (alice:111)
        return approver in settings.admin_chat_ids or approver in set(settings.telegram_names.values())
    if channel in ("cli", "http", "demo"):
        return not settings.approvers or approver in settings.approvers
    return False


def short_hash_ok(value: str) -> bool:
    """Is `value` a usable short plan hash: at least SHORT_HASH lowercase hex digits (anything shorter,
    or empty, would name too many plan versions by prefix)?"""
    return len(value) >= SHORT_HASH and all(c in _HEX for c in value)


def names_plan(given: str, content_hash: str, *, prefix: bool = False) -> bool:
    """Does `given` name this version of the plan? The gate and the executor want the full content hash;
    a person (a typed hash, a card's button) may give a prefix of at least SHORT_HASH hex digits
    (`prefix=True`), which the runner then replaces by the full hash for the gate."""
    if not prefix:
        return given == content_hash
    return short_hash_ok(given) and content_hash.startswith(given)


def expired(plan: Plan, now: datetime | None = None) -> bool:
    """Is the plan's approval window over? (A plan with no expiry never expires.)"""
    return plan.expires_at is not None and (now or utcnow()) > plan.expires_at


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
    if not names_plan(approval.plan_hash, plan.content_hash):
        problems.append("plan changed since approval was requested (content hash mismatch)")
    if not authorised(approval.approver, approval.channel, settings):
        problems.append(f"{approval.approver!r} is not an authorised approver for {approval.channel}")
    if expired(plan, now):
        problems.append(f"approval window expired at {plan.expires_at:%Y-%m-%d %H:%M:%S}Z")
    if problems:
        return approval.model_copy(update={"valid": False, "reason": "; ".join(problems)})
    return approval
