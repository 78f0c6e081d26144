"""What a read tool hands back: one result type, and the observations diagnosis turns into evidence.

Callers never parse `"error: ..."` strings or catch a toolset's own exceptions: a read is `ok` (with
its data), `no_data` (the call worked, there was nothing), or `error` (one readable line). The
`Observation`s a toolset derives from its reads are evidence drafts: diagnosis gives them ids and
cites them; verification re-runs their `query`.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, Field


class ToolResult(BaseModel):
    status: Literal["ok", "error", "no_data"]
    tool: str
    query: str = ""
    data: Any = None
    error: str = ""

    @classmethod
    def ok(cls, tool: str, query: str, data: Any) -> ToolResult:
        empty = data is None or (isinstance(data, list | dict) and not data)
        return cls(status="no_data" if empty else "ok", tool=tool, query=query, data=data)

    @classmethod
    def failed(cls, tool: str, query: str, error: str) -> ToolResult:
        return cls(status="error", tool=tool, query=query, error=error)

    def text(self, limit: int = 4000) -> str:
        """Compact JSON for a model (the status first, so a cut-off answer still says what happened)."""
        body: dict[str, Any] = {"status": self.status, "query": self.query}
        if self.status == "error":
            body["error"] = self.error
        else:
            body["data"] = self.data
        return json.dumps(body, default=str, separators=(",", ":"))[:limit]


class Observation(BaseModel):
    """An evidence draft: core.models.Evidence without its id (the diagnosis' book assigns ids)."""

    tool: str
    query: str
    excerpt: str
    component: str = ""
    signal: Literal["metric", "log", "memory", "runbook", "state"] = "state"
    value: float | None = None
    baseline: float | None = None
    score: float | None = None
    anomalous: bool = False
    extra: dict[str, Any] = Field(default_factory=dict, exclude=True)  # toolset-private details

    def evidence_kwargs(self) -> dict[str, Any]:
        return self.model_dump(exclude={"extra"})
