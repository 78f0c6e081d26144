"""The web console over the real app (runner, registry, checkpointer; the crash-loop recording replayed):
sessions, CSRF, who may decide, the same decision path as the API, the self-healing switch, and pages
and API docs that load nothing from another origin."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.settings import load_settings
from interfaces.api.app import create_app
from service.toolbox_factory import replay_spec
from tests.conftest import recording
from tools.replay.recording import load_recorded

pytestmark = pytest.mark.integration
ALICE, BOB, SERVICE = "alice-token-0123456789", "bob-token-0123456789ab", "service-token-0123456789"
SECRET = "console-secret-for-tests"


def settings(tmp_path: Path, **kw: Any) -> Any:
    base: dict[str, Any] = dict(AIOPS_DATA_DIR=tmp_path / "var", VERIFY_SETTLE_SECONDS=0, ENABLE_MEMORY=False,
                                LLM_MODE="rules", API_TOKENS=f"alice:{ALICE},bob:{BOB}", AIOPS_API_TOKEN=SERVICE,
                                APPROVERS="alice", CONSOLE_SESSION_SECRET=SECRET)
    return load_settings(**{**base, **kw})


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


def sign_in(client: TestClient, token: str) -> None:
    form = client.get("/ui/login")
    assert form.status_code == 200
    done = client.post("/ui/login", data={"csrf": csrf_of(form.text), "token": token, "next": "/ui/"},
                       follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/ui/", done.text


def incident_with_plan(client: TestClient) -> Any:
    runner = client.app.state.svc.runner  # type: ignore[attr-defined]
    s = client.app.state.svc.settings  # type: ignore[attr-defined]
    rec = load_recorded(recording("crashloop"))
    return client.portal.call(runner.analyze, rec.webhook, replay_spec(recording("crashloop"), s))  # type: ignore[union-attr]


def external_assets(html: str) -> list[str]:
    """src/href of scripts, styles, images, icons and frames that point at another origin."""
    tags = re.findall(r"<(?:script|link|img|iframe|source|embed)\b[^>]*>", html, re.I)
    refs = [m for t in tags for m in re.findall(r'(?:src|href)\s*=\s*["\']([^"\']+)', t, re.I)]
    inline = re.findall(r"url\(\s*['\"]?(https?:)?//", html)
    return [r for r in refs if re.match(r"^(https?:)?//", r, re.I)] + inline


def test_nothing_is_visible_without_a_session(tmp_path: Path) -> None:
    with TestClient(create_app(settings(tmp_path), worker=False)) as client:
        outcome = incident_with_plan(client)
        page = client.get("/ui/", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"] == "/ui/login?next=%2Fui%2F"
        deep = client.get(f"/ui/incidents/{outcome.incident_id}", follow_redirects=False)
        assert deep.headers["location"].startswith("/ui/login?next=%2Fui%2Fincidents%2Finc-")
        for path in ("/ui/rows", "/ui/events", f"/ui/incidents/{outcome.incident_id}/charts/ev-3.svg"):
            assert client.get(path).status_code == 401, path
        posted = client.post(f"/ui/incidents/{outcome.incident_id}/actions/approve",
                             data={"plan_id": outcome.plan_id, "plan_hash": outcome.plan_hash}, follow_redirects=False)
        assert posted.status_code == 303 and posted.headers["location"].startswith("/ui/login")
        login = client.get("/ui/login")
        assert outcome.incident_id not in login.text and "crash" not in login.text.lower()
        # a forged session cookie, a bad token, a stale sign-in form: still nothing
        client.cookies.set("aiops_session", "eyJ1c2VyIjoiYWxpY2UifQ.AAAA", path="/ui")
        assert client.get("/ui/", follow_redirects=False).status_code == 303
        bad = client.post("/ui/login", data={"csrf": csrf_of(client.get("/ui/login").text), "token": "nope"},
                          follow_redirects=False)
        assert bad.headers["location"].startswith("/ui/login") and "aiops_session=" not in bad.headers.get(
            "set-cookie", "")
        assert "unknown token" in client.get(bad.headers["location"]).text
        client.cookies.clear()
        stale = client.post("/ui/login", data={"csrf": "x" * 32, "token": ALICE}, follow_redirects=False)
        assert "aiops_session=" not in stale.headers.get("set-cookie", "")


def test_an_approver_decides_through_the_runner_and_the_page_shows_it(tmp_path: Path) -> None:
    with TestClient(create_app(settings(tmp_path), worker=False)) as client:
        outcome = incident_with_plan(client)
        form = client.get("/ui/login")
        done = client.post("/ui/login", data={"csrf": csrf_of(form.text), "token": ALICE,
                                              "next": f"/ui/incidents/{outcome.incident_id}"}, follow_redirects=False)
        cookie = done.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict") and "Path=/ui" in cookie
        assert "Secure" not in cookie  # plain http here; https sets it
        assert done.headers["location"] == f"/ui/incidents/{outcome.incident_id}"
        listed = client.get("/ui/")
        assert outcome.incident_id in listed.text and "awaiting_approval" in listed.text
        assert outcome.incident_id in client.get("/ui/?severity=critical&service=payments").text
        assert outcome.incident_id not in client.get("/ui/?service=nginx").text
        assert outcome.incident_id not in client.get("/ui/?status=resolved").text
        page = client.get(f"/ui/incidents/{outcome.incident_id}")
        assert page.status_code == 200 and "Content-Security-Policy" in page.headers
        charted = next(e.id for e in outcome.report.evidence if e.series)  # the first metric item with a series
        for shown in ("payments-api", "Hypotheses", "Pre-checks", "Decision trail", "Log excerpts",
                      f"/ui/incidents/{outcome.incident_id}/charts/{charted}.svg", "Approve plan-", "Reject"):
            assert shown in page.text, shown
        svg = client.get(f"/ui/incidents/{outcome.incident_id}/charts/{charted}.svg")
        assert svg.status_code == 200 and svg.headers["content-type"] == "image/svg+xml" and b"<svg" in svg.content
        assert client.get(f"/ui/incidents/{outcome.incident_id}/charts/ev-1.svg").status_code == 404
        token = csrf_of(page.text)
        action = f"/ui/incidents/{outcome.incident_id}/actions/approve"
        body = {"plan_id": outcome.plan_id, "plan_hash": outcome.plan_hash, "comment": "from the console"}
        assert client.post(action, data=body, follow_redirects=False).status_code == 403  # no CSRF token
        stale = client.post(action, data={**body, "csrf": token, "plan_hash": "0" * 64}, follow_redirects=False)
        assert "refused" in client.get(stale.headers["location"]).text  # a plan changed since it was read
        approved = client.post(action, data={**body, "csrf": token})
        assert approved.status_code == 200 and f"{outcome.plan_id} approved: the incident is resolved" in approved.text
        report = client.get(f"/api/v1/incidents/{outcome.incident_id}", headers={"Authorization": f"Bearer {ALICE}"})
        approval = report.json()["approval"]
        assert approval["approver"] == "alice" and approval["channel"] == "http"
        assert approval["comment"] == "from the console"
        assert "Recovered" in approved.text and f"verification chart of {charted}" in approved.text
        trail = approved.text.split("Decision trail")[1]
        assert "<td>alice</td><td>http</td><td>approve</td><td>won</td>" in trail
        again = client.post(action, data={**body, "csrf": token})
        assert "refused: plan" in again.text and "not awaiting approval" in again.text  # exactly once
        # sign-out ends the session, also for a copy of its cookie
        old = client.cookies.get("aiops_session")
        assert client.post("/ui/logout", data={"csrf": token}, follow_redirects=False).status_code == 303
        client.cookies.set("aiops_session", old or "", path="/ui")
        assert client.get("/ui/", follow_redirects=False).status_code == 303


def test_who_may_decide_and_switch_is_the_apis_rule(tmp_path: Path) -> None:
    with TestClient(create_app(settings(tmp_path), worker=False)) as client:
        outcome = incident_with_plan(client)
        url = f"/ui/incidents/{outcome.incident_id}"
        body = {"plan_id": outcome.plan_id, "plan_hash": outcome.plan_hash}
        for token, why in ((SERVICE, "service token"), (BOB, "bob is not in APPROVERS")):
            client.cookies.clear()
            sign_in(client, token)
            page = client.get(url)
            assert "Approve plan-" not in page.text and why.split(" ")[0] in page.text
            refused = client.post(f"{url}/actions/approve", data={**body, "csrf": csrf_of(page.text)})
            assert "refused" in refused.text, refused.text[:300]
            heal = client.get("/ui/self-healing")
            assert "only an approver may switch" in heal.text and "Policy in force" in heal.text
            switched = client.post("/ui/self-healing", data={"csrf": csrf_of(heal.text), "enabled": "false"})
            assert "refused" in switched.text
        bobs = client.cookies.get("aiops_session")
        assert client.app.state.svc.runner.registry.get(outcome.incident_id).status == "awaiting_approval"  # type: ignore[attr-defined]
        client.cookies.clear()
        sign_in(client, ALICE)
        heal = client.get("/ui/self-healing")
        off = client.post("/ui/self-healing", data={"csrf": csrf_of(heal.text), "enabled": "false"})
        assert "self-healing switched off" in off.text and "switched by alice" in off.text
        status = client.get("/api/v1/self-healing", headers={"Authorization": f"Bearer {SERVICE}"}).json()
        assert status["runtime_enabled"] is False and status["changed_by"] == "alice"
    # the same signing key, but bob's token rotated: his session is over; alice's goes on
    with TestClient(create_app(settings(tmp_path, API_TOKENS=f"alice:{ALICE},bob:bob-rotated-0123456789"),
                               worker=False)) as again:
        again.cookies.update(client.cookies)
        assert again.get("/ui/", follow_redirects=False).status_code == 200  # alice's cookie, still valid
        again.cookies.clear()
        again.cookies.set("aiops_session", bobs or "", path="/ui")
        assert again.get("/ui/", follow_redirects=False).status_code == 303  # bob's: his token changed


def test_pages_and_api_docs_load_nothing_from_another_origin(tmp_path: Path) -> None:
    with TestClient(create_app(settings(tmp_path), worker=False)) as client:
        outcome = incident_with_plan(client)
        sign_in(client, ALICE)
        pages = {p: client.get(p) for p in ("/ui/login", "/ui/", f"/ui/incidents/{outcome.incident_id}",
                                            "/ui/self-healing", "/docs", "/redoc", "/docs/oauth2-redirect")}
        for path, page in pages.items():
            assert page.status_code == 200, path
            assert external_assets(page.text) == [], path
            assert "default-src 'self'" in page.headers["content-security-policy"], path
        docs = pages["/docs"].text
        assert "/docs-static/swagger-ui-bundle.js" in docs and '"validatorUrl": null' in docs
        assert "/docs-static/redoc.standalone.js" in pages["/redoc"].text
        assert "fonts.googleapis" not in pages["/redoc"].text
        for asset in ("/docs-static/swagger-ui-bundle.js", "/docs-static/swagger-ui.css",
                      "/docs-static/redoc.standalone.js", "/ui/static/console.css", "/ui/static/console.js"):
            assert client.get(asset).status_code == 200, asset


def test_on_call_actions_go_through_the_api_gate(tmp_path: Path) -> None:
    """The console's ack/assign/comment/close: CSRF, the service token and non-approvers refused (nothing
    changes), an approver's change in the audit trail as theirs on `http`, the closed plan withdrawn."""
    with TestClient(create_app(settings(tmp_path), worker=False)) as client:
        outcome = incident_with_plan(client)
        url = f"/ui/incidents/{outcome.incident_id}"
        registry = client.app.state.svc.runner.registry  # type: ignore[attr-defined]
        for token in (SERVICE, BOB):
            client.cookies.clear()
            sign_in(client, token)
            page = client.get(url)
            assert "button.ack" not in page.text and 'class="ack"' not in page.text  # no buttons offered
            for action, data in (("ack", {}), ("close", {"reason": "not mine to close"})):
                refused = client.post(f"{url}/actions/{action}", data={**data, "csrf": csrf_of(page.text)})
                assert "refused" in refused.text, refused.text[:300]
        assert registry.get(outcome.incident_id).ack_by is None
        client.cookies.clear()
        sign_in(client, ALICE)
        page = client.get(url)
        assert 'class="ack"' in page.text and 'class="close"' in page.text
        forged = client.post(f"{url}/actions/ack", data={"csrf": "x" * 32}, follow_redirects=False)
        assert forged.status_code == 403 and registry.get(outcome.incident_id).ack_by is None
        token = csrf_of(page.text)
        assert "acknowledged by alice" in client.post(f"{url}/actions/ack", data={"csrf": token}).text
        assigned = client.post(f"{url}/actions/assign", data={"csrf": token, "to": ""})  # empty: to myself
        assert "assigned to alice" in assigned.text
        bad = client.post(f"{url}/actions/comment", data={"csrf": token, "text": "x" * 2001})
        assert "refused: invalid comment" in bad.text
        assert "comment added" in client.post(f"{url}/actions/comment", data={"csrf": token, "text": "on it"}).text
        closed = client.post(f"{url}/actions/close", data={"csrf": token, "reason": "fixed by hand"})
        assert "closed (its plan is withdrawn)" in closed.text and 'id="status">closed<' in closed.text
        assert "Approve plan-" not in closed.text and "fixed by hand" in closed.text
        trail = client.app.state.svc.runner.decisions(outcome.incident_id)  # type: ignore[attr-defined]
        assert [(d.approver, d.channel, d.decision, d.outcome) for d in trail if d.outcome == "done"] == [
            ("alice", "http", op, "done") for op in ("ack", "assign", "comment", "close")]
        assert {(d.approver, d.outcome) for d in trail if d.outcome == "refused"} == {("bob", "refused")}


def test_the_incident_page_links_back_through_core_links(tmp_path: Path) -> None:
    """The page shows the report's links (core/links.py, the one place that checks them): the runbook,
    the rule (generatorURL), the silence form and Alertmanager (externalURL), as escaped links that
    open with no referrer; a `javascript:` URL from an annotation never appears."""
    from urllib.parse import unquote

    with TestClient(create_app(settings(tmp_path), worker=False)) as client:
        runner = client.app.state.svc.runner  # type: ignore[attr-defined]
        s = client.app.state.svc.settings  # type: ignore[attr-defined]
        rec = load_recorded(recording("crashloop"))
        alert = rec.webhook.alerts[0]
        alert = alert.model_copy(update={
            "annotations": {**alert.annotations, "runbook_url": "https://runbooks.example/payments-api/crashloop",
                            "dashboard_url": "javascript:alert(document.cookie)"},
            "generator_url": "http://prometheus.example:9090/graph?g0.expr=up&g0.tab=1"})
        webhook = rec.webhook.model_copy(update={"alerts": [alert], "external_url": "http://alertmanager.example:9093"})
        outcome = client.portal.call(runner.analyze, webhook, replay_spec(recording("crashloop"), s))  # type: ignore[union-attr]
        sign_in(client, BOB)  # a reader sees the links too
        page = client.get(f"/ui/incidents/{outcome.incident_id}").text
    section = page[page.index('id="links"'):]
    section = section[:section.index("</section>")]
    anchors = re.findall(r'<a href="([^"]*)" rel="([^"]*)" target="_blank">([^<]*)</a>', section)
    by_label = {label: href for href, _rel, label in anchors}
    assert all(rel == "noopener noreferrer" for _href, rel, _label in anchors)
    assert by_label["runbook"] == "https://runbooks.example/payments-api/crashloop"
    assert by_label["alert rule (generatorURL)"] == "http://prometheus.example:9090/graph?g0.expr=up&amp;g0.tab=1"
    silence = by_label["silence in Alertmanager"]
    assert silence.startswith("http://alertmanager.example:9093/#/silences/new?filter=")
    assert 'alertname="ServiceCrashLooping"' in unquote(silence)
    assert by_label["Alertmanager"] == "http://alertmanager.example:9093"
    assert [k for k in ("runbook", "rule", "silence", "alertmanager") if f">{k}<" in section] == [
        "runbook", "rule", "silence", "alertmanager"]
    assert "javascript" not in page.lower()
