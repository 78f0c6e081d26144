"""Why a person's request to the application service does not count: one domain error per reason.

Decisions (service/runner.py) and on-call changes (service/lifecycle.py) raise them alike. They say
what went wrong in the domain's words, never in a protocol's: each adapter maps them to its own
answer, in one place each (HTTP status codes: interfaces/api/errors.py; the CLI: exit 2 with the
message; Telegram: a "⛔ Refused" line). `refusal` names the reason in the event log.
"""

from __future__ import annotations


class DecisionRefused(Exception):
    """A decision that does not count. The plan is left as it was (nothing consumed, nothing run)."""

    refusal = "refused"


class UnknownPlan(DecisionRefused, LookupError):
    refusal = "unknown_plan"


class PlanNotPending(DecisionRefused):
    """Not awaiting approval: already decided (by whom, when), executing, interrupted, or closed."""

    refusal = "not_pending"


class HashMismatch(DecisionRefused):
    """The decision names a different content hash than the plan's current one."""

    refusal = "hash_mismatch"


class PlanExpired(DecisionRefused):
    """The approval window ended; expiry closes the plan."""

    refusal = "expired"


class NotAuthorised(DecisionRefused, PermissionError):
    """Who asks is not an approver for the channel they ask through (agents.approval.authorised)."""

    refusal = "not_authorised"


class PlanWithdrawn(DecisionRefused):
    """The incident was closed by a person while its plan waited: the plan can never run."""

    refusal = "withdrawn"


# On-call changes (service/lifecycle.py)
class UnknownIncident(DecisionRefused, LookupError):
    refusal = "unknown_incident"


class NotAllowedNow(DecisionRefused):
    """The transition does not apply to the incident's state (closed, already acknowledged, running...)."""

    refusal = "not_allowed_now"


class BadChange(DecisionRefused, ValueError):
    """The request itself is wrong (empty reason, snooze in the past, a name that is not one)."""

    refusal = "bad_change"
