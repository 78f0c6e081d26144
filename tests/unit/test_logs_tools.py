"""LangChain log tools: typed arguments, redaction, no future lines, baseline comparison."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from langchain_core.tools import BaseTool

from tools.log_types import LogQuery, LogRecord, LogSourceError
from tools.logs.inmemory import InMemoryLogSource
from tools.logs.tools import make_log_tools
from tools.result import ToolResult, invoke_tool

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


def _call(name: str, tools: dict[str, BaseTool] | None = None, **args: object) -> ToolResult:
    """The way the diagnosis loop calls a tool: a model tool call in, one ToolResult out."""
    tools = tools or _tools()
    return asyncio.run(invoke_tool(tools[name], {"name": name, "args": args, "id": "call-1"}))


def test_search_logs_redacts_and_never_reads_the_future() -> None:
    r = _call("search_logs", service="api", minutes=10, level="error")
    assert r.status == "ok" and r.data["count"] == 10
    out = r.text()
    assert "[REDACTED:token]" in out and "tok0abc" not in out and "FUTURE" not in out
    (ev,) = r.evidence
    assert (ev.tool, ev.signal, ev.component) == ("search_logs", "log", "api") and "[REDACTED:token]" in ev.excerpt
    late = _call("search_logs", service="api", minutes=10, end=(NOW + timedelta(hours=1)).isoformat())
    assert "FUTURE" not in late.text()
    # what the model reads is the same compact text (plain `ainvoke` returns only the content)
    assert asyncio.run(_tools()["search_logs"].ainvoke({"service": "api", "minutes": 10, "level": "error"})) == out


def test_summarize_flags_the_new_error_template_first() -> None:
    r = _call("summarize_log_templates", service="api", minutes=5)
    assert r.status == "ok" and r.data["baseline_minutes"] == 60
    first = r.data["templates"][0]
    assert first["template"].startswith("payment declined:") and first["new"] and first["levels"] == {"error": 10}
    assert first["count"] == 10 and "Bearer tok" not in r.text()
    health = next(t for t in r.data["templates"] if t["template"].startswith("GET /health"))
    assert health["count"] == 6  # 12:55..13:00 inclusive
    assert health["spike_ratio"] == 1.309 and "new" not in health  # (6 / 300 s) / (55 / 3600 s): steady
    assert r.evidence[0].anomalous  # a new template is what makes this reading notable


def test_empty_window_is_no_data_not_an_error() -> None:
    r = _call("search_logs", service="nope", minutes=5)
    assert r.status == "no_data" and r.error == "" and "service=nope" in r.query
    assert r.evidence and r.evidence[0].signal == "log"  # "nothing logged" is still something seen


class _Broken:
    name = "broken"

    async def search(self, query: LogQuery) -> list[LogRecord]:
        raise LogSourceError("Elasticsearch search failed (HTTP 503): all shards failed")


def test_a_backend_failure_is_an_error_result_with_no_evidence() -> None:
    tools = {t.name: t for t in make_log_tools(_Broken(), now=lambda: NOW)}
    for name in tools:
        r = _call(name, tools, service="api")
        assert r.status == "error" and "HTTP 503" in r.error and r.evidence == []
        assert r.text().startswith('{"status":"error"')


def test_a_bad_argument_from_the_model_is_an_error_result() -> None:
    r = _call("search_logs", minutes=0)
    assert r.status == "error" and r.error.startswith("invalid arguments: minutes:")
