"""The approval policy and the checks every human decision must pass before anything executes.

Auto-approval is only for low-risk known fixes. A human decision is accepted only if it names the
plan's current content hash, comes from an authorised approver, arrives before expiry, and has not
been used before (the gate consumes it). Anything else leaves the plan unexecuted.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core.models import Approval, Plan, Risk, SelfHealingDecision, utcnow
from core.settings import Settings


def auto_approval(plan: Plan, settings: Settings, heal: SelfHealingDecision | None = None) -> Approval | None:
    """An approval by policy, or None (a human decides).

    Only a known fix qualifies (planning sets `known_fix` when every action fits with its required
    evidence and is a catalog known fix, or is a remembered fix that worked and still fits). `heal` is
    the self-healing policy's decision on top (agents/self_healing.authorize: which actions on which
    targets up to which risk, rate limits, cool-down, flap guard, kill switch); without one only
    low-risk known fixes qualify.
    """
    if not settings.AUTO_APPROVE_LOW_RISK or not plan.known_fix:
        return None
    if heal is None:
        if plan.risk != Risk.LOW:
            return None
        comment = "low-risk known fix: auto-approved by policy"
    elif not heal.allowed:
        return None
    else:
        comment = f"self-healing policy rule {heal.rule}"  # the reason is in the report's self_healing
    return Approval(plan_id=plan.id, plan_hash=plan.content_hash, approver="policy", decision="approve",
                    channel="policy", comment=comment)


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
