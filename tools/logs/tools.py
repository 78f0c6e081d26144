"""Read-only LangChain tools over a `LogSource`, for the diagnosis (and chat) model.

Lines are redacted before the model sees them; every tool has typed (Pydantic) arguments and returns
one `ToolResult` (ok / no_data / error, with the evidence it produced). A backend failure is an
`error` result, never an exception or an `"error: ..."` string the caller has to recognise.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from langchain_core.tools import BaseTool
from pydantic import BaseModel, Field

from core.models import utc
from tools.analysis.log_templates import summarize_logs
from tools.analysis.redact import redact
from tools.log_types import LogQuery, LogSource, LogSourceError
from tools.result import ToolResult, result_tool


class SearchLogsArgs(BaseModel):
    service: str | None = Field(None, description="service / unit / program name; omit for all services")
    minutes: int = Field(15, ge=1, le=7 * 24 * 60, description="look back this many minutes from the end time")
    end: datetime | None = Field(None, description="end of the window (ISO8601, UTC); default: now")
    level: str | None = Field(None, description="exact level, e.g. error, warning")
    text: str | None = Field(None, description="words the message must contain")
    limit: int = Field(50, ge=1, le=500, description="maximum lines returned")


class SummarizeLogsArgs(BaseModel):
    service: str | None = Field(None, description="service / unit / program name; omit for all services")
    minutes: int = Field(15, ge=1, le=7 * 24 * 60, description="window length in minutes, ending at `end`")
    end: datetime | None = Field(None, description="end of the window (ISO8601, UTC); default: now")
    baseline_minutes: int = Field(60, ge=0, le=7 * 24 * 60,
                                  description="baseline window just before it; 0 = no comparison")
    level: str | None = Field(None, description="exact level, e.g. error")
    top: int = Field(15, ge=1, le=100, description="number of templates returned")


def _query_text(service: str | None, level: str | None, text: str | None, start: datetime, stop: datetime) -> str:
    parts = [f"service={service or '*'}"]
    if level:
        parts.append(f"level={level}")
    if text:
        parts.append(f"text={text!r}")
    return " ".join(parts) + f" {start.isoformat()}..{stop.isoformat()}"


def make_log_tools(
    source: LogSource, now: Callable[[], datetime] | None = None, max_lines: int = 20_000
) -> list[BaseTool]:
    """LangChain tools over `source`. `now` fixes "the present" (recorded-incident replay)."""

    clock = now or (lambda: datetime.now(UTC))

    def window(end: datetime | None, minutes: int) -> tuple[datetime, datetime]:
        stop = utc(end) if end is not None else utc(clock())
        stop = min(stop, utc(clock()))
        return stop - timedelta(minutes=minutes), stop

    async def search_logs(service: str | None = None, minutes: int = 15, end: datetime | None = None,
                          level: str | None = None, text: str | None = None, limit: int = 50) -> ToolResult:
        start, stop = window(end, minutes)
        query = _query_text(service, level, text, start, stop)
        try:
            records = await source.search(LogQuery(start=start, end=stop, service=service, level=level,
                                                   text=text, limit=limit))
        except LogSourceError as exc:
            return ToolResult.failed("search_logs", query, str(exc))
        if not records:
            return ToolResult.empty("search_logs", query, signal="log", component=service or "")
        lines = [f"{r.timestamp.isoformat()} {r.service or '-'} {r.level or '-'}: {redact(r.message)[:400]}"
                 for r in records]
        return ToolResult.ok("search_logs", query, {"source": source.name, "count": len(records), "lines": lines},
                             signal="log", component=service or "")

    async def summarize_log_templates(service: str | None = None, minutes: int = 15,
                                      end: datetime | None = None, baseline_minutes: int = 60,
                                      level: str | None = None, top: int = 15) -> ToolResult:
        start, stop = window(end, minutes)
        query = _query_text(service, level, None, start, stop) + (f" baseline={baseline_minutes}m"
                                                                   if baseline_minutes else "")
        try:
            records = await source.search(LogQuery(start=start, end=stop, service=service, level=level,
                                                   limit=max_lines))
            baseline = None
            if baseline_minutes:
                baseline = await source.search(LogQuery(
                    start=start - timedelta(minutes=baseline_minutes), end=start - timedelta(microseconds=1),
                    service=service, level=level, limit=max_lines))
        except LogSourceError as exc:
            return ToolResult.failed("summarize_log_templates", query, str(exc))
        if not records:
            return ToolResult.empty("summarize_log_templates", query, signal="log", component=service or "")
        stats = summarize_logs(records, baseline, top=top, window_seconds=minutes * 60.0,
                               baseline_seconds=baseline_minutes * 60.0 or None)
        templates: list[dict[str, Any]] = []
        for s in stats:
            row: dict[str, Any] = {"count": s.count, "template": s.template, "example": s.example[:300]}
            if baseline is not None:
                row["baseline_count"] = s.baseline_count
            if s.is_new:
                row["new"] = True
            if s.spike_ratio is not None:
                row["spike_ratio"] = s.spike_ratio
            if s.levels:
                row["levels"] = dict(sorted(s.levels.items()))
            templates.append(row)
        data: dict[str, Any] = {"lines": len(records), "window_minutes": minutes, "templates": templates}
        if baseline is not None:
            data.update(baseline_lines=len(baseline), baseline_minutes=baseline_minutes)
        notable = any(t.get("new") or (t.get("spike_ratio") or 0) >= 3.0 for t in templates)
        return ToolResult.ok("summarize_log_templates", query, data, signal="log", component=service or "",
                             anomalous=notable)

    return [
        result_tool(search_logs, name="search_logs", args_schema=SearchLogsArgs,
                    description="Read log lines (redacted) for a service over a recent time window, optionally "
                                "filtered by level and text. Use for specific evidence after summarizing."),
        result_tool(summarize_log_templates, name="summarize_log_templates", args_schema=SummarizeLogsArgs,
                    description="Summarise a window of logs into templates with counts, flagging templates that "
                                "are new or spiking against the preceding baseline window. Start here."),
    ]
