"""The web console in a real browser: Debian's chromium, headless, driven by Playwright, against a real
`aiops serve` whose incidents come from the CLI beside it (`aiops analyze --replay`, through the service).

A stranger sees only the sign-in form; an approver signs in, watches the list update itself from the
event stream, opens an incident, sees its chart, approves, and sees the status change. Every request
the browser makes stays on the service's origin (console and API docs alike).

Set AIOPS_SCREENSHOT_DIR (e.g. docs/img) to keep the screenshots the README shows.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, cli_env, recording
from tests.servers import aiops_serve

pytestmark = pytest.mark.e2e
CHROMIUM = Path("/usr/bin/chromium")
TOKEN = "alice-console-token-0123456789"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]

if not CHROMIUM.exists():
    pytest.skip("Debian's chromium is not installed (scripts/setup.sh installs it: apt-get install chromium)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")


def analyze(env: dict[str, str], tmp_path: Path, name: str) -> dict[str, Any]:
    alert = tmp_path / f"{name}.json"
    webhook = json.loads(recording(name).read_text())["webhook"]
    for a in webhook["alerts"]:  # a rule with a runbook, as a team's rules have (the page links to it)
        a["annotations"]["runbook_url"] = f"https://runbooks.example/{name}"
    alert.write_text(json.dumps(webhook))
    done = subprocess.run([sys.executable, "-m", "interfaces.cli", "analyze", "--alert", str(alert), "--replay",
                           str(recording(name)), "--json"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), headless=True, args=FLAGS,
            viewport={"width": 1280, "height": 860})
        try:
            yield context
        finally:
            context.close()


def test_sign_in_see_the_chart_approve_and_see_the_status_change(tmp_path: Path, browser: Any) -> None:
    env = cli_env(tmp_path, LLM_MODE="rules", API_TOKENS=f"alice:{TOKEN}", APPROVERS="alice",
                  VERIFY_SETTLE_SECONDS="0")
    shots = tmp_path / "shots"
    shots.mkdir()
    with aiops_serve(env, tmp_path / "serve.log") as svc:
        first = analyze(env, tmp_path, "crashloop")
        assert first["status"] == "awaiting_approval"
        requests: list[str] = []
        page = browser.new_page()
        page.on("request", lambda r: requests.append(r.url))

        # a stranger: the sign-in form and nothing else, whatever the address
        for path in ("/ui/self-healing", f"/ui/incidents/{first['incident_id']}", "/ui/"):  # sign-in returns to the last
            page.goto(f"{svc.url}{path}")
            assert page.url.startswith(f"{svc.url}/ui/login"), page.url
            shown = page.inner_text("body")  # (the address they typed is only the form's hidden `next`)
            assert "Sign in" in shown and first["incident_id"] not in shown and "payments" not in page.content()
        assert page.request.get(f"{svc.url}/ui/rows").status == 401

        # sign in; the list shows the incident and updates itself when another one opens
        page.fill("#token", TOKEN)
        page.click("#login button[type=submit]")
        page.wait_for_selector(f"a[href='/ui/incidents/{first['incident_id']}']")
        page.wait_for_function("() => document.getElementById('live').textContent === 'live updates: on'")
        second = analyze(env, tmp_path, "vm-high-cpu")
        page.wait_for_selector(f"a[href='/ui/incidents/{second['incident_id']}']", timeout=30_000)
        analyze(env, tmp_path, "router-uplink-flap")
        page.wait_for_function("() => document.querySelectorAll('#rows tr').length >= 3", timeout=30_000)
        page.screenshot(path=str(shots / "console-list.png"))

        # the incident page: its evidence charts load (SVG from the service), then approve
        page.click(f"a[href='/ui/incidents/{first['incident_id']}']")
        page.wait_for_function("() => { const i = document.getElementById('top-chart');"
                               " return i && i.complete && i.naturalWidth > 0; }")
        assert page.inner_text("#status") == "awaiting_approval"
        assert "service_restarts_per_minute" in page.get_attribute("#top-chart", "alt")
        assert page.locator("img.chart").count() >= 5  # and one per cited metric evidence item, lazily
        page.fill("form.action >> nth=0 >> input[name=comment]", "approved in the browser test")
        page.click("button.approve")
        page.wait_for_selector(".flash.ok", timeout=120_000)
        status = page.inner_text("#status")
        assert status in ("resolved", "executed"), status
        assert "approved: the incident is" in page.inner_text(".flash.ok")
        assert "approved in the browser test" in page.content() and page.locator("button.approve").count() == 0

        # on call, on the second incident: acknowledge, comment, close with a reason (its plan is withdrawn)
        page.goto(f"{svc.url}/ui/incidents/{second['incident_id']}")
        assert page.locator("button.approve").count() == 1
        page.click("button.ack")
        page.wait_for_selector(".flash.ok")
        assert "acknowledged by alice" in page.inner_text(".flash.ok")
        assert "acknowledged by alice" in page.inner_text("#on-call-state") and page.locator("button.ack").count() == 0
        page.fill("form.action input[name=text]", "looking at the guest from the browser")
        page.click("button.comment")
        page.wait_for_selector("#comments")
        assert "looking at the guest from the browser" in page.inner_text("#comments")
        # its links (core/links.py): the runbook, the rule, the silence form, Alertmanager; no referrer
        links = page.locator("#links a")
        assert links.count() == 4 and all(links.nth(i).get_attribute("rel") == "noopener noreferrer"
                                          for i in range(4))
        assert links.nth(0).get_attribute("href") == "https://runbooks.example/vm-high-cpu"
        assert "/#/silences/new?filter=" in (links.nth(2).get_attribute("href") or "")
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(shots / "console-incident.png"), full_page=False)  # decision, on call, links
        page.fill("form.action input[name=reason]", "known noisy neighbour, moved it by hand")
        page.click("button.close")
        page.wait_for_function("() => document.getElementById('status').textContent === 'closed'")
        assert "its plan is withdrawn" in page.inner_text(".flash.ok")
        assert page.locator("button.approve").count() == 0 and page.locator("button.close").count() == 0
        assert "known noisy neighbour" in page.inner_text("#on-call-state")

        # the API docs render from local assets too
        page.goto(f"{svc.url}/docs")
        page.wait_for_selector(".swagger-ui .info", timeout=30_000)
        page.goto(f"{svc.url}/redoc")
        page.wait_for_selector("redoc h1, .api-info h1, [role=navigation]", timeout=30_000)
        page.close()
    foreign = [u for u in requests if not u.startswith(svc.url) and not u.startswith(("data:", "blob:", "about:"))]
    assert foreign == [], foreign
    report = subprocess.run([sys.executable, "-m", "interfaces.cli", "show", first["incident_id"], "--json"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    approval = json.loads(report.stdout)["approval"]
    assert approval["approver"] == "alice" and approval["channel"] == "http"
    closed = subprocess.run([sys.executable, "-m", "interfaces.cli", "show", second["incident_id"], "--json"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    trail = [(d["approver"], d["channel"], d["decision"], d["outcome"]) for d in json.loads(closed.stdout)["decisions"]]
    assert trail == [("alice", "http", op, "done") for op in ("ack", "comment", "close")], trail
    keep = os.environ.get("AIOPS_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for shot in shots.iterdir():
            shutil.copy(shot, Path(keep) / shot.name)
