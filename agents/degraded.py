"""When an evidence source (Prometheus, Elasticsearch, the log files) cannot be read: one line saying so.

Diagnosis, verification and the anomaly watcher all degrade the same way: they carry on with the
sources they can read, and say plainly which one they could not and why, e.g.
"metrics unavailable: prometheus breaker open (connection refused)". In a diagnosis that line is an
evidence item (`query == UNAVAILABLE_QUERY`, signal "state", not anomalous: it corroborates nothing),
so it is stored with the incident, shown in the report and seen by the model.
"""

from __future__ import annotations

import re
from typing import Any

from core import resilience

UNAVAILABLE_QUERY = "dependency unavailable"


def _short(error: str) -> str:
    low = error.lower()
    if "refused" in low:
        return "connection refused"
    if "timed out" in low or "timeout" in low:
        return "timed out"
    if m := re.search(r"\b(5\d\d|429)\b", error):
        return f"HTTP {m.group(1)}"
    return error.split(":", 1)[0][:60]


def outage_note(kind: str, exc: BaseException, default_dependency: str = "") -> str:
    """`"<kind> unavailable: <dependency> <why>"`, with the breaker's state when it is open.

    `exc` is a `MetricsUnavailable` / `LogsUnavailable` (they carry `dependency` and `reason`), or
    any other backend error (a refused query, an unreadable file): then its first line is the why.
    """
    dependency = getattr(exc, "dependency", "") or default_dependency
    reason = getattr(exc, "reason", "")
    if not reason:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"{kind} unavailable: {text[:200]}"
    b = resilience.breaker(dependency) if dependency else None
    if b is not None and b.state == "open":
        cause = reason if reason != "breaker open" else (_short(b.last_error) if b.last_error else "")
        return f"{kind} unavailable: {dependency} breaker open" + (f" ({cause})" if cause else "")
    return f"{kind} unavailable: {dependency} {reason}"


def is_unavailable_note(evidence: Any) -> bool:
    return getattr(evidence, "query", None) == UNAVAILABLE_QUERY
