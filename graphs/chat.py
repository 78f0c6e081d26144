"""Chat: a tool-calling agent over read-only tools, for questions in plain language (any language).

    agent ──tool calls?──▶ tools (ToolNode) ──▶ agent ... ──no more calls──▶ END

The tools only read: investigate a service (triage, diagnosis and a proposed plan, never executed and
never put up for approval), list and show incidents, list plans awaiting approval, the system status,
and the metric and log tools of the live toolbox. There is deliberately no tool that approves, rejects
or runs anything: a question can never turn into an action. Answers are cached for `CACHE_TTL_NL`.
The model's answer is untrusted text: the interface escapes it before showing it.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable
from typing import Annotated, Any, Protocol, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode
from pydantic import BaseModel, Field

from agents.prompts import CHAT_SYSTEM, fence
from agents.toolbox import Toolbox
from core.llm import LLMChain
from core.models import AlertmanagerWebhook, IncidentReport, LLMCall, utcnow
from core.settings import Settings
from memory.cache import build_cache, cached_call
from store.registry import IncidentRow
from tools.logs.tools import make_log_tools
from tools.metrics.tools import make_metric_tools

log = logging.getLogger(__name__)
MAX_STEPS = 6

class IncidentReader(Protocol):
    """What the chat's read-only tools need of the application service (service/runner.py
    `IncidentRunner`, which satisfies it): its read-only surface, nothing that decides or changes."""

    def live_toolbox(self) -> Toolbox: ...

    async def investigate(self, webhook: AlertmanagerWebhook) -> IncidentReport: ...

    def incidents(self, limit: int = 50, status: str | None = None) -> list[IncidentRow]: ...

    def pending(self, limit: int = 20) -> list[IncidentRow]: ...

    async def report(self, incident_id: str) -> IncidentReport | None: ...


class ChatState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    steps: int
    llm_calls: list[dict[str, Any]]
    failed: bool


class ServiceArgs(BaseModel):
    service: str = Field(description="service name, e.g. checkout or payments-api")
    time_range: str = Field("1h", description="how far back: 30m, 2h, 1d")


class IncidentArgs(BaseModel):
    incident_id: str = Field(description="an incident id such as inc-0123456789ab")


class ListArgs(BaseModel):
    status: str | None = Field(None, description="running, awaiting_approval, executed, resolved, rejected, failed")
    limit: int = Field(10, ge=1, le=50)


class NoArgs(BaseModel):
    pass


def read_only_tools(runner: IncidentReader, on_demand: Callable[[str, str], AlertmanagerWebhook]) -> list[BaseTool]:
    """The chat's tools. `on_demand(service, time_range) -> AlertmanagerWebhook` builds the synthetic alert."""
    toolbox = runner.live_toolbox()

    async def analyze_service(service: str, time_range: str = "1h") -> str:
        webhook: AlertmanagerWebhook = on_demand(service, time_range)
        report = await runner.investigate(webhook)
        ev = {e.id: e for e in report.evidence}
        out = {"hypotheses": [{"component": h.component, "cause": h.cause, "confidence": h.confidence,
                               "evidence": [ev[i].excerpt[:200] for i in h.evidence_ids if i in ev][:3]}
                              for h in report.hypotheses[:3]],
               "proposed_plan": ([f"{a.name} on {a.target}" for a in report.plan.actions] if report.plan else []),
               "note": "read-only investigation: no incident was opened, nothing was executed"}
        return fence("tool analyze_service", out)

    async def list_incidents(status: str | None = None, limit: int = 10) -> str:
        rows = runner.incidents(limit=limit, status=status)
        return fence("tool list_incidents", [{"incident_id": r.incident_id, "status": r.status, "title": r.title,
                                              "plan_id": r.plan_id, "updated_at": r.updated_at.isoformat()}
                                             for r in rows])

    async def show_incident(incident_id: str) -> str:
        report = await runner.report(incident_id)
        if report is None:
            return f"no incident {incident_id}"
        return fence("tool show_incident", report.model_dump_json(
            include={"incident_id", "title", "status", "triage", "hypotheses", "plan", "approval", "executions",
                     "verification"}), limit=6000)

    async def pending_plans() -> str:
        rows = runner.pending(limit=20)
        return fence("tool pending_plans",
                     [{"plan_id": r.plan_id, "incident_id": r.incident_id, "title": r.title} for r in rows])

    async def system_status() -> str:
        counts = Counter(r.status for r in runner.incidents(limit=1000))
        breakers = {p.name: p.breaker.state for p in toolbox.llm.providers}
        return json.dumps({"incidents_by_status": counts, "llm_breakers": breakers, "now": utcnow().isoformat()})

    tools: list[BaseTool] = [
        StructuredTool.from_function(coroutine=analyze_service, name="analyze_service", args_schema=ServiceArgs,
                                     description="Investigate a service over a time range (read-only): likely "
                                                 "causes with evidence and the fix that would be proposed."),
        StructuredTool.from_function(coroutine=list_incidents, name="list_incidents", args_schema=ListArgs,
                                     description="Recent incidents, optionally by status."),
        StructuredTool.from_function(coroutine=show_incident, name="show_incident", args_schema=IncidentArgs,
                                     description="One incident's report: diagnosis, plan, decision, result."),
        StructuredTool.from_function(coroutine=pending_plans, name="pending_plans", args_schema=NoArgs,
                                     description="Plans waiting for a human approval."),
        StructuredTool.from_function(coroutine=system_status, name="system_status", args_schema=NoArgs,
                                     description="Incidents by status and the LLM circuit breakers."),
    ]
    if toolbox.metrics is not None:
        tools += make_metric_tools(toolbox.metrics, call_graph=toolbox.call_graph)
    if toolbox.logs is not None:
        tools += make_log_tools(toolbox.logs, now=toolbox.current_time)
    return tools


def build_chat_graph(chain: LLMChain, tools: list[BaseTool]) -> Any:
    async def agent(state: ChatState) -> dict[str, Any]:
        calls: list[LLMCall] = []
        msg = await chain.step("chat", [SystemMessage(CHAT_SYSTEM), *state["messages"]], tools, calls)
        update: dict[str, Any] = {"steps": state.get("steps", 0) + 1,
                                  "llm_calls": [*state.get("llm_calls", []), *(c.model_dump() for c in calls)]}
        if msg is None:
            return {**update, "failed": True}
        return {**update, "messages": [msg]}

    def route(state: ChatState) -> str:
        last = state["messages"][-1] if state["messages"] else None
        if state.get("failed") or not isinstance(last, AIMessage) or not last.tool_calls:
            return END
        return "tools" if state.get("steps", 0) < MAX_STEPS else END

    g = StateGraph(ChatState)
    g.add_node("agent", agent)
    g.add_node("tools", ToolNode(tools, handle_tool_errors=True))
    g.add_edge(START, "agent")
    g.add_conditional_edges("agent", route, {"tools": "tools", END: END})
    g.add_edge("tools", "agent")
    return g.compile()


class ChatAnswer(BaseModel):
    text: str
    llm_calls: list[LLMCall] = Field(default_factory=list)


class ChatAgent:
    """One question in, one answer out (None when no model answered: the caller falls back to rules)."""

    def __init__(self, runner: IncidentReader, chain: LLMChain, settings: Settings,
                 on_demand: Callable[[str, str], AlertmanagerWebhook], *, cache: Any | None = None) -> None:
        self.chain = chain
        self.settings = settings
        self.graph = build_chat_graph(chain, read_only_tools(runner, on_demand))
        if cache is None:
            cache = build_cache(settings)
        self.cache = cache
        self.last: ChatAnswer | None = None

    async def answer(self, question: str) -> str | None:
        async def ask() -> ChatAnswer | None:
            state = await self.graph.ainvoke({"messages": [HumanMessage(question)], "steps": 0, "llm_calls": [],
                                              "failed": False}, {"recursion_limit": 4 * MAX_STEPS})
            last = state["messages"][-1]
            calls = [LLMCall.model_validate(c) for c in state.get("llm_calls", [])]
            if state.get("failed") or not isinstance(last, AIMessage) or last.tool_calls:
                log.warning("chat: no final answer from the model (failed=%s)", state.get("failed"))
                return None
            text = last.content if isinstance(last.content, str) else json.dumps(last.content)
            return ChatAnswer(text=text.strip(), llm_calls=calls) if text.strip() else None

        result = await cached_call(self.cache, "nl", {"q": question, "llm": self.chain.mode}, ask, model=ChatAnswer)
        self.last = result
        return result.text if result is not None else None
