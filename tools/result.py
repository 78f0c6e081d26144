"""What a read tool hands back: one result type, and the observations diagnosis turns into evidence.

Callers never parse `"error: ..."` strings or catch a toolset's own exceptions: a read is `ok` (with
its data), `no_data` (the call worked, there was nothing), or `error` (one readable line). Each
result carries the `Observation`s it produced: evidence drafts that diagnosis gives ids and cites,
and whose `query` verification re-runs.

LangChain wiring lives here too, so every toolset exposes its tools the same way: `result_tool`
wraps a coroutine returning a `ToolResult` as a tool whose message content is the compact text the
model reads and whose artifact is the `ToolResult` itself; `invoke_tool` runs one model tool call
and always returns a `ToolResult` (a bad argument from the model is an `error` result too).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, ValidationError

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool, StructuredTool

Signal = Literal["metric", "log", "memory", "runbook", "state"]
# How the excerpt of a failed read starts: "could not read the status of guest web-01: 403 ...". One
# such item stands for one item a toolset could not read (the others stay); it never satisfies a fit.
UNREAD = "could not read"


class Observation(BaseModel):
    """An evidence draft: core.models.Evidence without its id (the diagnosis' book assigns ids)."""

    tool: str
    query: str
    excerpt: str
    component: str = ""
    signal: Signal = "state"
    value: float | None = None
    baseline: float | None = None
    score: float | None = None
    anomalous: bool = False
    about: dict[str, str] = Field(default_factory=dict)  # the objects it is about, by kind (core.models.Evidence)
    extra: dict[str, Any] = Field(default_factory=dict, exclude=True)  # toolset-private details

    def evidence_kwargs(self) -> dict[str, Any]:
        return self.model_dump(exclude={"extra"})


class ToolResult(BaseModel):
    status: Literal["ok", "error", "no_data"]
    tool: str
    query: str = ""
    data: Any = None
    error: str = ""
    evidence: list[Observation] = Field(default_factory=list)  # what this call showed (none for an error)

    @classmethod
    def ok(cls, tool: str, query: str, data: Any, *, signal: Signal = "state", component: str = "",
           anomalous: bool = False) -> ToolResult:
        """A successful read (`no_data` when `data` is empty); its evidence is the reading itself."""
        empty = data is None or (isinstance(data, list | dict) and not data)
        result = cls(status="no_data" if empty else "ok", tool=tool, query=query, data=data)
        return result.observed(signal=signal, component=component, anomalous=anomalous)

    @classmethod
    def empty(cls, tool: str, query: str, data: Any = None, *, signal: Signal = "state",
              component: str = "") -> ToolResult:
        """The call worked and found nothing; `data` may still say where it looked (window, filters)."""
        return cls(status="no_data", tool=tool, query=query, data=data).observed(signal=signal, component=component)

    @classmethod
    def failed(cls, tool: str, query: str, error: str) -> ToolResult:
        return cls(status="error", tool=tool, query=query, error=error)

    def observed(self, *, signal: Signal, component: str = "", anomalous: bool = False, **kw: Any) -> ToolResult:
        """This result with one observation of itself (excerpt: the text the model reads, cut short)."""
        self.evidence = [Observation(tool=self.tool, query=self.query, excerpt=self.text(600), signal=signal,
                                     component=component, anomalous=anomalous, **kw)]
        return self

    def text(self, limit: int = 4000) -> str:
        """Compact JSON for a model (the status first, so a cut-off answer still says what happened)."""
        body: dict[str, Any] = {"status": self.status, "query": self.query}
        if self.status == "error":
            body["error"] = self.error
        else:
            body["data"] = self.data
        return json.dumps(body, default=str, separators=(",", ":"))[:limit]


def result_tool(fn: Callable[..., Awaitable[ToolResult]], *, name: str, args_schema: type[BaseModel],
                description: str) -> StructuredTool:
    """A LangChain tool over `fn`: content = `ToolResult.text()`, artifact = the `ToolResult`."""
    from langchain_core.tools import StructuredTool

    async def run(**kwargs: Any) -> tuple[str, ToolResult]:
        result = await fn(**kwargs)
        return result.text(), result

    return StructuredTool.from_function(coroutine=run, name=name, args_schema=args_schema,
                                        description=description, response_format="content_and_artifact")


async def invoke_tool(tool: BaseTool, call: Mapping[str, Any]) -> ToolResult:
    """Run one tool call of a model (`{"name", "args", "id"}`); never raises for a bad call."""
    name, args = str(call.get("name", tool.name)), dict(call.get("args") or {})
    query = json.dumps(args, default=str, sort_keys=True)
    try:
        message = await tool.ainvoke({"type": "tool_call", "name": name, "args": args, "id": call.get("id") or name})
    except ValidationError as exc:  # the model's arguments do not fit the schema: tell it which
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'args'}: {e['msg']}" for e in exc.errors())
        return ToolResult.failed(name, query, f"invalid arguments: {problems}")
    except Exception as exc:  # noqa: BLE001 - a tool's own bug must not end the diagnosis
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return ToolResult.failed(name, query, f"{type(exc).__name__}: {first}"[:400])
    artifact = getattr(message, "artifact", None)
    if isinstance(artifact, ToolResult):
        return artifact
    content = getattr(message, "content", message)  # a tool not built with `result_tool`
    return ToolResult.ok(name, query, content if isinstance(content, str) else json.dumps(content, default=str))
