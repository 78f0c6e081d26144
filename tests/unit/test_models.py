import json

import pytest
from pydantic import ValidationError

from core.models import AlertmanagerWebhook, Plan
from tests.conftest import recording
from tools.catalog import CATALOG


def _payload() -> dict:
    return json.loads(recording("crashloop").read_text())["webhook"]


def test_webhook_parses_alertmanager_v4_faithfully():
    wh = AlertmanagerWebhook.model_validate(_payload())
    a = wh.alerts[0]
    assert wh.version == "4" and wh.group_key.startswith("{}:{") and wh.status == "firing"
    assert a.name == "ServiceCrashLooping" and a.labels["service"] == "payments-api"
    assert a.ends_at is None  # Go zero time means "not ended"
    assert a.starts_at.tzinfo is not None and a.fingerprint == "a41d9c7e02b35f88"
    assert a.target == "payments-api"
    # round-trips with Alertmanager's own field names
    dumped = wh.model_dump(mode="json", by_alias=True)
    assert "groupKey" in dumped and "startsAt" in dumped["alerts"][0]


def test_fingerprint_falls_back_to_label_hash():
    p = _payload()
    p["alerts"][0]["fingerprint"] = ""
    a1 = AlertmanagerWebhook.model_validate(p).alerts[0]
    p["alerts"][0]["labels"] = dict(reversed(list(p["alerts"][0]["labels"].items())))
    a2 = AlertmanagerWebhook.model_validate(p).alerts[0]
    assert a1.effective_fingerprint() == a2.effective_fingerprint() and len(a1.effective_fingerprint()) == 16


@pytest.mark.parametrize("mutate, where", [
    (lambda p: p.pop("alerts"), "alerts"),
    (lambda p: p.update(alerts=[]), "alerts"),
    (lambda p: p.update(version="3"), "version"),
    (lambda p: p["alerts"][0]["labels"].pop("alertname"), "labels"),
    (lambda p: p["alerts"][0].update(status="pending"), "status"),
    (lambda p: p["alerts"][0].update(startsAt="yesterday"), "startsAt"),
])
def test_invalid_payloads_are_rejected(mutate, where):
    p = _payload()
    mutate(p)
    with pytest.raises(ValidationError) as err:
        AlertmanagerWebhook.model_validate(p)
    assert where in str(err.value)


def test_plan_hash_binds_actions_not_preflight_notes():
    a = CATALOG["restart_service"].action("app-02", service="payments-api")
    p = Plan(incident_id="inc-1", actions=[a], rationale="r")
    same = p.model_copy(update={"checks": ["ansible --check ok"]})
    other = Plan(incident_id="inc-1", actions=[CATALOG["restart_service"].action("app-02", service="checkout")],
                 rationale="r")
    assert p.content_hash == same.content_hash
    assert p.content_hash != other.content_hash
    assert p.risk.value == "medium"


def test_catalog_refuses_unknown_or_missing_parameters():
    with pytest.raises(ValueError, match="unknown parameters"):
        CATALOG["restart_service"].action("h", service="x", command="rm -rf /")
    with pytest.raises(ValueError, match="missing parameters"):
        CATALOG["rollback_config"].action("h", service="x")
