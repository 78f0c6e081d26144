"""A deterministic chat model for tests: replays scripted AIMessages (with real tool calls) in order.

It implements `bind_tools` like a real provider model and reports token usage, so the code under test
exercises the same paths it would with ChatOpenAI; it also records every request for assertions.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict, Field

_ids = itertools.count(1)


def tool_call(name: str, **args: Any) -> dict[str, Any]:
    return {"name": name, "args": args, "id": f"call_{next(_ids)}", "type": "tool_call"}


def reply(*calls: dict[str, Any], content: str = "") -> AIMessage:
    return AIMessage(content=content, tool_calls=list(calls))


class ScriptedChatModel(BaseChatModel):
    """Answers each request with the next scripted message (or the result of a callable on the request)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    script: list[Any] = Field(default_factory=list)  # AIMessage | callable(messages, tools) -> AIMessage | Exception
    requests: list[dict[str, Any]] = Field(default_factory=list)
    bound_tools: list[str] = Field(default_factory=list)
    tool_choice: str | None = None
    model_name: str = "scripted-1"

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: str | None = None, **kw: Any) -> ScriptedChatModel:
        names = []
        for t in tools:
            names.append(getattr(t, "name", None) or getattr(t, "__name__", str(t)))
        bound = self.model_copy()
        bound.bound_tools = names
        bound.tool_choice = tool_choice
        bound.script = self.script  # shared: one script across bindings
        bound.requests = self.requests
        return bound

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        self.requests.append({"messages": messages, "tools": list(self.bound_tools), "tool_choice": self.tool_choice})
        if not self.script:
            raise RuntimeError("scripted model: script exhausted")
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        msg = step(messages, self.bound_tools) if callable(step) else step
        text = " ".join(str(m.content) for m in messages)
        msg = msg.model_copy(update={"usage_metadata": {"input_tokens": len(text) // 4, "output_tokens": 20,
                                                         "total_tokens": len(text) // 4 + 20}})
        return ChatResult(generations=[ChatGeneration(message=msg)])


def crashloop_model() -> ScriptedChatModel:
    """A model that diagnoses the bundled crash loop (bad config) and plans the config rollback."""
    return ScriptedChatModel(script=[
        reply(tool_call("Diagnosis", hypotheses=[
            {"component": "payments-api", "cause": "config.yaml fails to parse", "confidence": 0.9,
             "evidence_ids": ["ev-1"]}])),
        reply(tool_call("RemediationPlan", rationale="restore last good config", steps=[
            {"action": "rollback_config", "target": "app-02",
             "parameters": {"service": "payments-api", "config_path": "/etc/payments-api/config.yaml"}}])),
    ])
