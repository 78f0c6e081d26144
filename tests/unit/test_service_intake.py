"""Idempotency keys, on-demand webhooks, token tables and constant-time auth (no server needed)."""

from __future__ import annotations

import json

import pytest
from starlette.requests import Request

from core.models import AlertmanagerWebhook
from core.settings import SettingsError, load_settings
from interfaces.api.auth import Authenticator
from service.intake import AlertJob, alert_key, on_demand_webhook, parse_time_range
from tests.conftest import recording


def _webhook() -> AlertmanagerWebhook:
    return AlertmanagerWebhook.model_validate(json.loads(recording("crashloop").read_text())["webhook"])


def test_same_notification_same_incident_changed_notification_new_one() -> None:
    hook = _webhook()
    job, key = AlertJob.from_webhook(hook)
    again, key2 = AlertJob.from_webhook(AlertmanagerWebhook.model_validate(hook.model_dump(by_alias=True)))
    assert (job.incident_id, key) == (again.incident_id, key2)
    resolved = hook.model_copy(update={"status": "resolved", "alerts": [
        hook.alerts[0].model_copy(update={"status": "resolved"})]})
    assert alert_key(resolved) != key
    later = hook.model_copy(update={"alerts": [
        hook.alerts[0].model_copy(update={"starts_at": hook.alerts[0].starts_at.replace(year=2030)})]})
    assert alert_key(later) != key


def test_on_demand_webhooks_are_distinct_and_bounded() -> None:
    (a, ka), (b, kb) = on_demand_webhook("checkout", "1h"), on_demand_webhook("checkout", "1h")
    assert ka != kb and a.group_key != b.group_key and a.alerts[0].labels["service"] == "checkout"
    assert parse_time_range("30m").total_seconds() == 1800
    for bad in ("1y", "0m", "31d", "1h; rm"):
        with pytest.raises(ValueError):
            parse_time_range(bad)


def _request(token: str | None, approver: str = "") -> Request:
    headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
    if approver:
        headers.append((b"x-aiops-approver", approver.encode()))
    return Request({"type": "http", "headers": headers, "method": "GET", "path": "/"})


def test_token_table_and_roles(tmp_path) -> None:  # type: ignore[no-untyped-def]
    file = tmp_path / "tokens"
    file.write_text("# ops\ncarol:carol-token-0123456789\n")
    s = load_settings(API_TOKENS="alice:alice-token-0123456789", API_TOKENS_FILE=file,
                      AIOPS_API_TOKEN="svc-token-0123456789")
    assert s.api_users == {"alice-token-0123456789": "alice", "carol-token-0123456789": "carol"}
    auth = Authenticator(s, local_token="local-token-0123456789")
    assert auth.approver(_request("carol-token-0123456789")).name == "carol"
    local = auth.approver(_request("local-token-0123456789", "dave"))
    assert (local.name, local.channel) == ("dave", "cli")
    assert auth.reader(_request("svc-token-0123456789")).kind == "service"
    from fastapi import HTTPException

    for token, status in (("svc-token-0123456789", 403), ("alice-token-012345678", 401), (None, 401)):
        with pytest.raises(HTTPException) as err:
            auth.approver(_request(token))
        assert err.value.status_code == status
    with pytest.raises(SettingsError):
        _ = load_settings(API_TOKENS="alice:short").api_users
