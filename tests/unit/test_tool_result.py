"""The one result type of every read tool, and how a model's tool call becomes one."""

from __future__ import annotations

import asyncio

from langchain_core.messages import ToolMessage
from langchain_core.tools import StructuredTool
from pydantic import BaseModel, Field

from tools.result import ToolResult, invoke_tool, result_tool


class Args(BaseModel):
    n: int = Field(ge=0)


def _call(tool: StructuredTool, **args: object) -> ToolResult:
    return asyncio.run(invoke_tool(tool, {"name": tool.name, "args": args, "id": "call-7"}))


def test_ok_no_data_and_error_carry_their_evidence() -> None:
    ok = ToolResult.ok("t", "q", {"x": 1}, signal="metric", component="api")
    assert ok.status == "ok" and [(e.tool, e.query, e.signal, e.component) for e in ok.evidence] == [
        ("t", "q", "metric", "api")]
    assert ok.evidence[0].excerpt == ok.text(600) and ok.text().startswith('{"status":"ok"')
    assert ToolResult.ok("t", "q", []).status == "no_data"  # the call worked and found nothing
    empty = ToolResult.empty("t", "q", {"window": "12:00-12:10"}, signal="log")
    assert empty.status == "no_data" and empty.evidence[0].signal == "log" and "12:00-12:10" in empty.text()
    failed = ToolResult.failed("t", "q", "HTTP 503")
    assert failed.evidence == [] and failed.text() == '{"status":"error","query":"q","error":"HTTP 503"}'


def test_a_result_tool_gives_the_model_text_and_the_caller_the_result() -> None:
    async def double(n: int) -> ToolResult:
        return ToolResult.ok("double", f"n={n}", {"twice": 2 * n})

    tool = result_tool(double, name="double", args_schema=Args, description="twice n")
    message = asyncio.run(tool.ainvoke({"type": "tool_call", "name": "double", "args": {"n": 4}, "id": "c1"}))
    assert isinstance(message, ToolMessage) and message.content == '{"status":"ok","query":"n=4","data":{"twice":8}}'
    assert isinstance(message.artifact, ToolResult) and message.artifact.data == {"twice": 8}
    assert _call(tool, n=4).data == {"twice": 8}
    bad = _call(tool, n=-1)
    assert bad.status == "error" and bad.error.startswith("invalid arguments: n:") and bad.query == '{"n": -1}'


def test_a_broken_tool_is_an_error_result_not_a_crash() -> None:
    async def broken(n: int) -> ToolResult:
        raise RuntimeError("boom\nsecond line")

    r = _call(result_tool(broken, name="broken", args_schema=Args, description="x"), n=1)
    assert (r.status, r.tool, r.error) == ("error", "broken", "RuntimeError: boom")


def test_a_plain_tool_is_wrapped_as_ok() -> None:
    async def plain(n: int) -> str:
        return f"n is {n}"

    tool = StructuredTool.from_function(coroutine=plain, name="plain", args_schema=Args, description="x")
    r = _call(tool, n=3)
    assert r.status == "ok" and r.data == "n is 3" and r.evidence
