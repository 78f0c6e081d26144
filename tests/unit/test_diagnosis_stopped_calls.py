"""The diagnosis cites calls that stopped as what they are (issue 21 item 4): a caller that no longer
calls a healthy callee is ranked first, with the silent edge as its evidence and a cause that says so."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from agents.diagnosis import STOPPED_CAUSE, gather_evidence, rank_rules
from agents.toolbox import Toolbox
from agents.triage import triage_rules
from core.llm import LLMChain
from core.models import Alert, Incident
from tools.metric_types import Series
from tools.metrics.inmemory import InMemoryMetricsSource

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _edge(caller: str, callee: str, stop_minutes_before_now: int = 0) -> Series:
    """Per-minute p50 latency of caller -> callee over the last 90 minutes, nothing in the last minutes."""
    pts = []
    for i in range(91 - stop_minutes_before_now):
        pts.append((NOW - timedelta(minutes=90 - i), 0.004 + (0.0002 if i % 2 else -0.0002)))
    return Series(metric="edge_latency_p50_seconds", points=pts,
                  labels={"service": callee, "source_service": caller, "destination_service": callee})


def test_a_caller_that_stopped_calling_is_the_first_hypothesis_with_that_cause() -> None:
    alert = Alert(status="firing", labels={"alertname": "ServiceAnomaly", "system": "shop", "severity": "warning"},
                  annotations={"summary": "anomaly in shop"}, startsAt=NOW - timedelta(minutes=1))
    inc = Incident(title="ServiceAnomaly", fingerprint="fp", alerts=[alert], service=alert.target)
    source = InMemoryMetricsSource([_edge("frontend", "checkout"), _edge("checkout", "payment", 2),
                                    _edge("checkout", "email", 2), _edge("frontend", "catalog")], now=NOW)
    toolbox = Toolbox(metrics=source, now=NOW, llm=LLMChain([]),
                      call_graph={"frontend": ["checkout", "catalog"], "checkout": ["payment", "email"]})
    verdict = triage_rules(inc, None)
    f = asyncio.run(gather_evidence(inc, toolbox, verdict))
    d = rank_rules(inc, verdict, f)
    top = d.hypotheses[0]
    assert top.component == "checkout" and top.cause == STOPPED_CAUSE
    cited = [e for e in f.book.items if e.id in top.evidence_ids and e.tool == "metrics"]
    assert cited and cited[0].excerpt.startswith("calls from checkout to ")
    assert "stopped: no sample since 11:58Z" in cited[0].excerpt
    assert 'source_service="checkout"' in cited[0].query
