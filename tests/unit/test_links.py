"""Links back from an incident (runbook, rule graph, silence form, Alertmanager, recalled runbooks):
untrusted input, so only bounded http(s) URLs, escaped again by every renderer."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs, unquote, urlsplit

from core.links import MAX_URL, incident_links, safe_url
from core.models import Alert, Evidence, Incident, IncidentReport, IncidentStatus, Link, TriageVerdict
from interfaces.notify.channels import pagerduty_event, slack_payload
from interfaces.notify.events import EventKind, Notification
from interfaces.render import render_report
from interfaces.telegram.render import incident_card

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def incident(**annotations: str) -> Incident:
    alert = Alert(status="firing", startsAt=T0, generatorURL="http://prom.example:9090/graph?g0.expr=up%3D%3D0",
                  labels={"alertname": "HostDown", "host": "web-01", "severity": "critical"},
                  annotations={"summary": "web-01 is down", **annotations})
    return Incident(title="HostDown: web-01 is down", fingerprint="fp1", alerts=[alert], service="web-01")


def test_only_bounded_http_urls_are_links() -> None:
    assert safe_url("https://runbooks.example/host-down") == "https://runbooks.example/host-down"
    for bad in ("javascript:alert(1)", "/relative/path", "ftp://x.example/a", "https://", "https://a b.example",
                'https://x.example/"onmouseover="x', "https://x.example/<script>", "https://x.example/a\nb",
                "https://x.example/" + "a" * MAX_URL, "data:text/html,<b>x</b>", ""):
        assert safe_url(bad) is None, bad


def test_incident_links_runbook_rule_silence_alertmanager_and_recalled() -> None:
    inc = incident(runbook_url="https://runbooks.example/host-down", dashboard_url="javascript:alert(1)")
    recalled = Evidence(id="ev-3", tool="runbooks", query="search_runbooks(HostDown)", excerpt="runbook HostDown",
                        signal="runbook", component="web-01", url="https://runbooks.prometheus-operator.dev/x")
    links = incident_links(inc, "http://am.example:9093", [recalled])
    assert [lk.kind for lk in links] == ["runbook", "rule", "silence", "alertmanager", "recalled_runbook"]
    assert links[0].url == "https://runbooks.example/host-down"
    silence = links[2].url
    assert silence.startswith("http://am.example:9093/#/silences/new?filter=")
    matchers = unquote(parse_qs(urlsplit(silence.replace("/#/", "/")).query)["filter"][0])
    assert matchers == '{alertname="HostDown",host="web-01",severity="critical"}'
    assert incident_links(inc, "not a url", [])[-1].kind == "rule"  # no externalURL: no silence, no Alertmanager


def report_with(links: list[Link]) -> IncidentReport:
    return IncidentReport(incident_id="inc-1", title="HostDown <b>", status=IncidentStatus.RUNNING, mode="rules",
                          triage=TriageVerdict(kind="incident", reason="r", severity="critical"), links=links)


def test_every_rendering_shows_the_links_escaped() -> None:
    # A URL that passed safe_url can still hold & and ?: each format escapes it its own way.
    url = "https://runbooks.example/a?x=1&y=<2>"
    assert safe_url(url) is None  # < and > never make it
    url = "https://runbooks.example/a?x=1&y=2|3"
    report = report_with([Link(kind="runbook", label="runbook <i>", url=url),
                          Link(kind="rule", label="rule", url="javascript:alert(1)")])  # a forged Link is re-checked
    card = incident_card(report, pending=False)
    assert '<a href="https://runbooks.example/a?x=1&amp;y=2|3">runbook &lt;i&gt;</a>' in card
    assert "javascript" not in card
    assert f"LINK       runbook <i>: {url}" in render_report(report)
    n = Notification(incident_id="inc-1", event=EventKind.OPENED, severity="critical", title="t", summary="s",
                     report=report)
    text = str(slack_payload(n))
    assert "<https://runbooks.example/a?x=1&amp;y=2%7C3|runbook &lt;i&gt;>" in text and "javascript" not in text
    event = pagerduty_event(n, "k" * 32)
    assert event is not None and event["links"] == [{"href": url, "text": "runbook <i>"}]
