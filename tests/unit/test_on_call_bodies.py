"""The bodies people send: a short hash is 12 to 64 lowercase hex digits; the on-call bodies are strict."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from interfaces.api.schemas import AssignRequest, CloseRequest, CommentRequest, DecisionRequest, SnoozeRequest


@pytest.mark.parametrize("value", ["a" * 12, "0123456789ab", "f" * 40, "0" * 64])
def test_hashes_people_can_type(value: str) -> None:
    assert DecisionRequest(plan_hash=value).plan_hash == value


@pytest.mark.parametrize("value", ["", "a" * 11, "A" * 12, "g" * 12, "0" * 65, " " + "a" * 12, "a" * 12 + "\n"])
def test_hashes_refused(value: str) -> None:
    with pytest.raises(ValidationError):
        DecisionRequest(plan_hash=value)


def test_on_call_bodies_are_strict() -> None:
    assert AssignRequest(to="bob.ops@example").to == "bob.ops@example"
    assert SnoozeRequest.model_validate({"until": "2026-01-01T12:00:00Z"}).until.tzinfo is not None
    for model, body in ((AssignRequest, {"to": "bob smith"}), (AssignRequest, {"to": "-bob"}),
                        (AssignRequest, {"to": "b" * 101}), (CommentRequest, {"text": 5}),
                        (CommentRequest, {"text": "ok", "by": "mallory"}), (CloseRequest, {"reason": "x" * 501}),
                        (SnoozeRequest, {"until": "2026-01-01T12:00:00"}), (SnoozeRequest, {"until": 1767225600}),
                        (SnoozeRequest, {"until": "soon"})):
        with pytest.raises(ValidationError):
            model.model_validate(body)
