"""LangChain log tools: typed arguments, redaction, no future lines, baseline comparison."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from langchain_core.tools import BaseTool

from tools.logs import InMemoryLogSource, LogRecord, make_log_tools

NOW = datetime(2024, 5, 1, 13, 0, tzinfo=UTC)


def _source() -> InMemoryLogSource:
    recs = []
    for m in range(120):  # one health line per minute for two hours (one hour after NOW is "future")
        recs.append(LogRecord(timestamp=NOW - timedelta(minutes=60) + timedelta(minutes=m),
                              message=f"GET /health 200 {m}ms", service="api", level="info"))
    for s in range(0, 300, 30):  # new error in the last 5 minutes
        recs.append(LogRecord(timestamp=NOW - timedelta(seconds=300 - s), service="api", level="error",
                              message=f"payment declined: Authorization: Bearer tok{s}abcdefghijkl"))
    recs.append(LogRecord(timestamp=NOW + timedelta(minutes=5), message="FUTURE line", service="api", level="error"))
    return InMemoryLogSource(recs)


def _tools() -> dict[str, BaseTool]:
    tools = make_log_tools(_source(), now=lambda: NOW)
    assert all(isinstance(t, BaseTool) for t in tools)
    return {t.name: t for t in tools}


def test_tools_have_typed_schemas() -> None:
    tools = _tools()
    assert set(tools) == {"search_logs", "summarize_log_templates"}
    schema = tools["search_logs"].args
    assert schema["minutes"]["type"] == "integer" and "service" in schema and "level" in schema


def test_search_logs_redacts_and_never_reads_the_future() -> None:
    out = asyncio.run(_tools()["search_logs"].ainvoke({"service": "api", "minutes": 10, "level": "error"}))
    assert "10 line(s)" in out and "[REDACTED:token]" in out
    assert "tok0abc" not in out and "FUTURE" not in out
    late = asyncio.run(_tools()["search_logs"].ainvoke(
        {"service": "api", "minutes": 10, "end": (NOW + timedelta(hours=1)).isoformat()}))
    assert "FUTURE" not in late


def test_summarize_flags_the_new_error_template_first() -> None:
    out = asyncio.run(_tools()["summarize_log_templates"].ainvoke({"service": "api", "minutes": 5}))
    lines = out.splitlines()
    assert "baseline" in lines[0]
    assert lines[1].startswith("[10] payment declined:") and "NEW" in lines[1] and "error:10" in lines[1]
    assert "Bearer tok" not in out
    health = next(line for line in lines if line.startswith("[6] GET /health"))  # 12:55..13:00 inclusive
    assert "x1.309 vs baseline" in health  # (6 / 300 s) / (55 / 3600 s): steady, not a spike


def test_empty_window_says_so() -> None:
    out = asyncio.run(_tools()["search_logs"].ainvoke({"service": "nope", "minutes": 5}))
    assert out.startswith("no log lines for nope")
