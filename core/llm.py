"""The LLM provider chain: OpenAI-compatible first, Ollama as fallback, rule-based mode last.

Agents never talk to a chat model directly; they ask the chain for a structured answer (a Pydantic
model, obtained through a forced tool call, which works on OpenAI, Ollama and llama.cpp alike) or for
one tool-calling step. Every attempt, successful or not, is recorded as an `LLMCall` (provider, model,
tokens, latency) so cost is visible in the incident state. When no provider is configured, or every
provider fails, the chain returns None and the agent uses its deterministic rules.

Resilience: each provider is one named dependency ("llm-openai", "llm-ollama") called through
`core.resilience.guarded()`, which is the ONLY retry layer: the OpenAI client is built with
`max_retries=0` (the openai SDK's own back-off is off) and the Ollama client has none. guarded()
retries a refused connection, a 5xx or a 429 (RETRY_ATTEMPTS, exponential back-off with jitter);
a timeout (LLM_TIMEOUT) is not retried, since a model that hung once will likely hang again and each
retry would cost another LLM_TIMEOUT before the fallback answers. A 400/422 (the request was refused
by a healthy server) is neither retried nor charged to the breaker. Every attempt is one `LLMCall`
in the report; a provider skipped because its breaker is open is one `LLMCall` with ok=False and
latency 0, so the report says why the rules answered.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from core.models import LLMCall
from core.resilience import CircuitBreaker, CircuitOpenError, breaker, configure, guarded
from core.settings import Settings

if TYPE_CHECKING:  # annotations only: langchain_core's models and tracers cost ~0.3 s CPU to import,
    # which commands that run no graph (self-healing, notify) need not pay
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage, BaseMessage

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)


@dataclass
class Provider:
    name: str  # "openai", "ollama", "scripted", ...
    model: str
    chat: BaseChatModel
    dependency: str  # the breaker's name in core.resilience: "llm-openai", "llm-ollama"

    def __post_init__(self) -> None:
        breaker(self.dependency)  # registered now, so /api/v1/circuit-breakers lists it before any call

    @property
    def breaker(self) -> CircuitBreaker:
        return breaker(self.dependency)  # process-wide, looked up so a re-configured registry is seen


@dataclass
class LLMChain:
    providers: list[Provider] = field(default_factory=list)

    @property
    def mode(self) -> str:
        """'rules' when there is no model; otherwise the primary model's name."""
        return self.providers[0].model if self.providers else "rules"

    @property
    def available(self) -> bool:
        return any(p.breaker.allow() for p in self.providers)

    @staticmethod
    def _usable(provider: Provider, node: str, calls: list[LLMCall]) -> bool:
        """False (and one ok=False LLMCall saying so) while the provider's breaker is open."""
        if provider.breaker.allow():
            return True
        calls.append(LLMCall(node=node, provider=provider.name, model=provider.model, ok=False,
                             error=str(CircuitOpenError(provider.dependency))))
        return False

    async def _invoke(self, provider: Provider, node: str, messages: Sequence[BaseMessage],
                      tools: Sequence[Any], tool_choice: str | None,
                      calls: list[LLMCall]) -> AIMessage:
        chat: Any = provider.chat
        if tools:
            chat = chat.bind_tools(list(tools), tool_choice=tool_choice) if tool_choice else chat.bind_tools(list(tools))
        async def attempt() -> Any:
            started = time.perf_counter()
            try:
                msg = await chat.ainvoke(list(messages))
            except Exception as exc:
                calls.append(LLMCall(node=node, provider=provider.name, model=provider.model, ok=False,
                                     latency_ms=(time.perf_counter() - started) * 1000,
                                     error=f"{type(exc).__name__}: {exc}"[:300]))
                raise
            usage = getattr(msg, "usage_metadata", None) or {}
            calls.append(LLMCall(node=node, provider=provider.name, model=provider.model,
                                 input_tokens=int(usage.get("input_tokens", 0) or 0),
                                 output_tokens=int(usage.get("output_tokens", 0) or 0),
                                 latency_ms=(time.perf_counter() - started) * 1000))
            return msg

        msg = await guarded(provider.dependency, attempt, retry_on=_retryable_types(),
                            never_retry=_never_retry_types(), counts=provider_failed)
        return msg  # type: ignore[no-any-return]

    async def step(self, node: str, messages: Sequence[BaseMessage], tools: Sequence[Any],
                   calls: list[LLMCall], tool_choice: str | None = None) -> AIMessage | None:
        """One model turn with tools bound. None when no provider answered."""
        for provider in self.providers:
            if not self._usable(provider, node, calls):
                continue
            try:
                return await self._invoke(provider, node, messages, tools, tool_choice, calls)
            except Exception as exc:
                log.warning("LLM provider %s failed in %s: %s", provider.name, node, exc)
        return None

    async def structured(self, node: str, messages: Sequence[BaseMessage], schema: type[M],
                         calls: list[LLMCall]) -> M | None:
        """Ask for one `schema` object via a forced tool call. None when no provider gave a valid one."""
        for provider in self.providers:
            if not self._usable(provider, node, calls):
                continue
            try:
                msg = await self._invoke(provider, node, messages, [schema], schema.__name__, calls)
            except Exception as exc:
                log.warning("LLM provider %s failed in %s: %s", provider.name, node, exc)
                continue
            parsed = parse_tool_call(msg, schema)
            if parsed is not None:
                return parsed
            log.warning("LLM provider %s gave no valid %s in %s", provider.name, schema.__name__, node)
            calls[-1] = calls[-1].model_copy(update={"ok": False, "error": f"no valid {schema.__name__}"})
        return None


# Looked up at the first call, not at import: the openai and ollama SDKs cost about half a second of
# CPU to import, which every `aiops` command paid although most never call a model (rules mode).
@functools.cache
def _retryable_types() -> tuple[type[BaseException], ...]:
    """Transient provider errors worth another attempt: refused/broken connections, 5xx, 429."""
    import httpx

    out: list[type[BaseException]] = [ConnectionError, httpx.TransportError]
    try:
        import openai

        out += [openai.APIConnectionError, openai.InternalServerError, openai.RateLimitError]
    except ImportError:  # pragma: no cover - openai is a dependency of langchain-openai
        pass
    try:
        import ollama

        out.append(ollama.ResponseError)  # a 4xx among them is a refusal: not charged, so not retried
    except ImportError:  # pragma: no cover
        pass
    return tuple(out)


@functools.cache
def _never_retry_types() -> tuple[type[BaseException], ...]:
    """Timeouts: the model already cost LLM_TIMEOUT; the next provider or the rules answer instead."""
    import httpx

    out: list[type[BaseException]] = [TimeoutError, httpx.TimeoutException]
    try:
        import openai

        out.append(openai.APITimeoutError)  # a subclass of APIConnectionError
    except ImportError:  # pragma: no cover
        pass
    return tuple(out)


def _status_of(exc: BaseException) -> int | None:
    code = getattr(exc, "status_code", None)  # openai.APIStatusError, ollama.ResponseError
    return code if isinstance(code, int) and code > 0 else None


def provider_failed(exc: BaseException) -> bool:
    """Whether an error is the provider's fault (charged to its breaker). A 400/422 is a refusal of
    this request by a healthy server (e.g. context too long): not charged, not retried. A 5xx, 429,
    401/403/404 (misconfigured key or model: unusable until fixed), timeout or connection error is."""
    status = _status_of(exc)
    return status not in (400, 422)


def parse_tool_call(msg: AIMessage, schema: type[M]) -> M | None:
    for call in msg.tool_calls or []:
        if call.get("name") == schema.__name__:
            try:
                return schema.model_validate(call.get("args") or {})
            except ValidationError as exc:
                log.warning("invalid %s arguments: %s", schema.__name__, exc.errors()[:3])
                return None
    return None


def build_llm_chain(settings: Settings) -> LLMChain:
    """OpenAI-compatible when a key or base URL is set; Ollama as fallback when enabled and configured."""
    if settings.LLM_MODE == "rules":
        return LLMChain([])
    configure(settings)  # one process-wide breaker per provider: "llm-openai", "llm-ollama"
    providers: list[Provider] = []
    if settings.OPENAI_API_KEY or settings.OPENAI_BASE_URL:
        from langchain_openai import ChatOpenAI

        chat = ChatOpenAI(model=settings.OPENAI_MODEL, api_key=settings.OPENAI_API_KEY or "not-needed",  # type: ignore[arg-type]
                          base_url=settings.OPENAI_BASE_URL, timeout=settings.LLM_TIMEOUT,
                          max_retries=0,  # guarded() is the one retry layer (see the module docstring)
                          temperature=0)
        providers.append(Provider("openai", settings.OPENAI_MODEL, chat, "llm-openai"))
    if settings.OLLAMA_BASE_URL and (settings.ENABLE_LLM_FALLBACK or not providers):
        from langchain_ollama import ChatOllama

        ollama = ChatOllama(model=settings.OLLAMA_MODEL, base_url=settings.OLLAMA_BASE_URL, temperature=0,
                            client_kwargs={"timeout": settings.LLM_TIMEOUT})
        providers.append(Provider("ollama", settings.OLLAMA_MODEL, ollama, "llm-ollama"))
    return LLMChain(providers)
