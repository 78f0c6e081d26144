"""The one mapping of the application service's domain errors to HTTP answers.

service/refusals.py says why a request does not count, in the domain's words; this says which status
each reason is over HTTP (the API's routes and the console's forms, which call them). The CLI maps
the same errors to exit 2 with the message, Telegram to a "⛔ Refused" line.

    UnknownPlan, UnknownIncident                    404
    NotAuthorised                                   403
    BadChange                                       422
    PlanNotPending, HashMismatch, PlanExpired,
    PlanWithdrawn, NotAllowedNow (any other)        409
"""

from __future__ import annotations

from fastapi import HTTPException

from service.refusals import (
    BadChange,
    DecisionRefused,
    HashMismatch,
    NotAllowedNow,
    NotAuthorised,
    PlanExpired,
    PlanNotPending,
    PlanWithdrawn,
    UnknownIncident,
    UnknownPlan,
)

STATUS: dict[type[DecisionRefused], int] = {
    UnknownPlan: 404,
    UnknownIncident: 404,
    NotAuthorised: 403,
    BadChange: 422,
    PlanNotPending: 409,
    HashMismatch: 409,
    PlanExpired: 409,
    PlanWithdrawn: 409,
    NotAllowedNow: 409,
    DecisionRefused: 409,  # a refusal with no more specific reason: a conflict with the plan's state
}


def status_of(exc: DecisionRefused) -> int:
    """The HTTP status of a refusal: its own class's, else its nearest ancestor's."""
    return next(STATUS[cls] for cls in type(exc).__mro__ if cls in STATUS)


def line(exc: BaseException) -> str:
    """An error as the API's one-line `detail`: its first line, unquoted, at most 300 characters."""
    text = str(exc).strip().strip("'\"")
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


def refused(exc: DecisionRefused) -> HTTPException:
    """The HTTP answer to a refusal: its status and its one line."""
    return HTTPException(status_of(exc), line(exc))
