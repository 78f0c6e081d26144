"""The facts of a decision, each computed in one place (agents/approval.py), and the one mapping of the
service's domain refusals to HTTP answers (interfaces/api/errors.py)."""

from __future__ import annotations

import inspect
from datetime import timedelta

import pytest

from agents.approval import SHORT_HASH, expired, names_plan, short_hash_ok
from core.models import Plan, utcnow
from interfaces.api import errors
from service import refusals

FULL = "0123456789abcdef" * 4


def test_every_refusal_has_its_own_http_status() -> None:
    classes = {c for _, c in inspect.getmembers(refusals, inspect.isclass)
               if issubclass(c, refusals.DecisionRefused)}
    assert classes == set(errors.STATUS), "a new refusal needs its HTTP status in interfaces/api/errors.py"
    assert {c.__name__: errors.status_of(c("x")) for c in classes} == {
        "DecisionRefused": 409, "UnknownPlan": 404, "UnknownIncident": 404, "NotAuthorised": 403,
        "BadChange": 422, "PlanNotPending": 409, "HashMismatch": 409, "PlanExpired": 409, "PlanWithdrawn": 409,
        "NotAllowedNow": 409}
    assert len({c.refusal for c in classes}) == len(classes)  # the event log tells every reason apart


def test_a_refusal_answers_its_first_line_unquoted() -> None:
    exc = errors.refused(refusals.NotAuthorised("'mallory' is not an authorised approver for http\nmore"))
    assert (exc.status_code, exc.detail) == (403, "mallory' is not an authorised approver for http")


def test_a_refusal_knows_no_http() -> None:
    assert not any(hasattr(c, "status") for c in errors.STATUS)


@pytest.mark.parametrize(("given", "prefix", "ok"), [
    (FULL, False, True),
    (FULL[:SHORT_HASH], False, False),  # the gate wants the whole hash
    (FULL, True, True),
    (FULL[:SHORT_HASH], True, True),
    (FULL[:SHORT_HASH - 1], True, False),  # too short to name one version
    ("", True, False),
    (FULL[:SHORT_HASH].upper(), True, False),
    ("g" + FULL[1:SHORT_HASH], True, False),
    ("f" + FULL[1:SHORT_HASH], True, False),  # hex, but another version's
])
def test_names_plan(given: str, prefix: bool, ok: bool) -> None:
    assert names_plan(given, FULL, prefix=prefix) is ok


def test_short_hash_ok_is_the_format_alone() -> None:
    assert short_hash_ok("f" * SHORT_HASH) and not short_hash_ok("f" * (SHORT_HASH - 1))


def test_expired() -> None:
    now = utcnow()
    plan = Plan(id="p", incident_id="i", actions=[], rationale="r", expires_at=now)
    assert not expired(plan, now) and expired(plan, now + timedelta(microseconds=1))
    assert not expired(plan.model_copy(update={"expires_at": None}), now + timedelta(days=365))
