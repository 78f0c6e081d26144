"""Why a person's request to the runner does not count: one exception per reason, each with the HTTP
status every interface maps it to (the CLI exits 2 with its message). Decisions (service/runner.py) and
on-call changes (service/lifecycle.py) raise them alike."""

from __future__ import annotations


class DecisionRefused(Exception):
    """A decision that does not count. The plan is left as it was (nothing consumed, nothing run).

    `status` is the HTTP status every interface maps it to; the CLI exits non-zero with the message.
    """

    status = 409


class UnknownPlan(DecisionRefused, LookupError):
    status = 404


class PlanNotPending(DecisionRefused):
    """Not awaiting approval: already decided (by whom, when), executing, interrupted, or closed."""

    status = 409


class HashMismatch(DecisionRefused):
    """The decision names a different content hash than the plan's current one."""

    status = 409


class PlanExpired(DecisionRefused):
    """The approval window ended; expiry closes the plan."""

    status = 409


class NotAuthorised(DecisionRefused, PermissionError):
    status = 403


class PlanWithdrawn(DecisionRefused):
    """The incident was closed by a person while its plan waited: the plan can never run."""

    status = 409


# On-call changes (service/lifecycle.py)
class UnknownIncident(DecisionRefused, LookupError):
    status = 404


class NotAllowedNow(DecisionRefused):
    """The transition does not apply to the incident's state (closed, already acknowledged, running...)."""

    status = 409


class BadChange(DecisionRefused, ValueError):
    """The request itself is wrong (empty reason, snooze in the past, a name that is not one)."""

    status = 422
