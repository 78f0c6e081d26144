"""Issue 16, finding 2: every switch behind the right person, and booleans that mean what they say.

`POST /api/v1/self-healing` goes through the same approval gate as a decision and as
`aiops self-healing on --by NAME` (`agents.approval.authorised`, i.e. `APPROVERS`): a user with a valid
token who may not approve cannot turn automatic actions back on. Request bodies are strict: `"yes"`,
`0`, `1` or `"true"` is not a boolean (422), and a number is not a string.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from core.settings import load_settings
from interfaces.api.app import create_app
from tests.conftest import LOCAL_CLIENT
from tests.security.decision_helpers import aiops

pytestmark = pytest.mark.integration

ALICE, BOB, SERVICE = "alice-token-0123456789", "bob-token-0123456789ab", "service-token-0123456789"
ENV = {"API_TOKENS": f"alice:{ALICE},bob:{BOB}", "APPROVERS": "alice", "AIOPS_API_TOKEN": SERVICE}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def api(tmp_path: Path):
    settings = load_settings(AIOPS_DATA_DIR=tmp_path / "var", ENABLE_MEMORY=False, LLM_MODE="rules", **ENV)
    with TestClient(create_app(settings, worker=False), client=LOCAL_CLIENT) as c:
        yield c


def test_only_an_approver_flips_the_kill_switch(api: TestClient, tmp_path: Path) -> None:
    off = api.post("/api/v1/self-healing", json={"enabled": False}, headers=auth(ALICE))
    assert off.status_code == 200 and off.json()["runtime_enabled"] is False and off.json()["changed_by"] == "alice"
    # bob has a valid user token but is not in APPROVERS: refused, as `aiops self-healing on --by bob` is
    refused = api.post("/api/v1/self-healing", json={"enabled": True}, headers=auth(BOB))
    assert refused.status_code == 403 and "not an authorised approver" in refused.json()["detail"], refused.text
    assert api.post("/api/v1/self-healing", json={"enabled": True}, headers=auth(SERVICE)).status_code == 403
    status = api.get("/api/v1/self-healing", headers=auth(BOB)).json()
    assert status["runtime_enabled"] is False and status["changed_by"] == "alice"  # nothing changed
    cli = aiops(tmp_path, "self-healing", "on", "--by", "bob", env={"APPROVERS": "alice"})
    assert cli.returncode == 2 and "not an authorised approver" in cli.stderr  # the same gate
    assert api.post("/api/v1/self-healing", json={"enabled": True}, headers=auth(ALICE)).json()["enabled"] is True


@pytest.mark.parametrize("value", ["yes", "true", 0, 1, "0", None, [], {}])
def test_booleans_are_strict(api: TestClient, value: object) -> None:
    resp = api.post("/api/v1/self-healing", json={"enabled": value}, headers=auth(ALICE))
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"].startswith("enabled") and "\n" not in resp.json()["detail"]
    assert api.get("/api/v1/self-healing", headers=auth(ALICE)).json()["runtime_enabled"] is True


@pytest.mark.parametrize(("path", "body"), [
    ("/api/v1/analyze", {"service_name": 12345}),
    ("/api/v1/analyze", {"service_name": "checkout", "time_range": 1}),
    ("/api/v1/plans/plan-x/approve", {"plan_hash": "0" * 64, "comment": 7}),
    ("/api/v1/plans/plan-x/reject", {"plan_hash": 0}),
])
def test_strings_are_strict(api: TestClient, path: str, body: dict) -> None:
    resp = api.post(path, json=body, headers=auth(ALICE))
    assert resp.status_code == 422, resp.text
