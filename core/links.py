"""Links back from an incident: the runbook (the alert's `runbook_url` annotation, and runbooks memory
recalled), the rule's graph (`generatorURL`), and Alertmanager (`externalURL`, with a silence form
filled with the alert's labels).

All of it comes from alerts and stored documents, so it is untrusted: only absolute http(s) URLs of at
most `MAX_URL` characters become links (no `javascript:`, no relative path, no whitespace or control
characters); renderers escape them again for their own format (HTML, Markdown).
"""

from __future__ import annotations

import json
from urllib.parse import quote, urlsplit

from core.models import Alert, Evidence, Incident, Link

MAX_URL = 2048
MAX_LINKS = 8
# The annotations that name a page about the alert, in the order they are shown.
RUNBOOK_ANNOTATIONS = ("runbook_url", "runbook", "playbook_url", "dashboard_url", "grafana_url")


def safe_url(url: str) -> str | None:
    """An absolute http(s) URL of at most MAX_URL characters, or None."""
    url = (url or "").strip()
    if not url or len(url) > MAX_URL or not url.isprintable() or any(c in url for c in " <>\"'`\\"):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return url if parts.scheme in ("http", "https") and parts.netloc else None


def silence_url(external_url: str, alert: Alert) -> str | None:
    """Alertmanager's "new silence" form, filled with the alert's labels (None: no usable externalURL)."""
    base = safe_url(external_url)
    if base is None:
        return None
    matchers = ",".join(f'{k}="{json.dumps(v)[1:-1]}"' for k, v in sorted(alert.labels.items()))
    return safe_url(f"{base.rstrip('/')}/#/silences/new?filter={quote('{' + matchers + '}', safe='')}")


def incident_links(incident: Incident, external_url: str, evidence: list[Evidence] | None = None) -> list[Link]:
    """The links of an incident, its first alert's first: runbook annotations, the rule's graph, the
    silence form, the Alertmanager, then the runbooks memory recalled (cited evidence)."""
    alert = incident.alert
    out: list[Link] = []
    for name in RUNBOOK_ANNOTATIONS:
        if url := safe_url(alert.annotations.get(name, "")):
            out.append(Link(kind="runbook", label=name.replace("_url", "").replace("_", " "), url=url))
    if url := safe_url(alert.generator_url):
        out.append(Link(kind="rule", label="alert rule (generatorURL)", url=url))
    if url := silence_url(external_url, alert):
        out.append(Link(kind="silence", label="silence in Alertmanager", url=url))
    if url := safe_url(external_url):
        out.append(Link(kind="alertmanager", label="Alertmanager", url=url))
    for e in evidence or []:
        if e.signal == "runbook" and (url := safe_url(e.url)):
            out.append(Link(kind="recalled_runbook", label=f"recalled runbook ({e.component or 'memory'})"[:80],
                            url=url))
    unique: dict[str, Link] = {}
    for link in out:
        unique.setdefault(link.url, link)
    return list(unique.values())[:MAX_LINKS]
