"""What the agents work with: tool backends, the LLM chain, memory, executor, and the clock.

The graph receives a `Toolbox` as its runtime context. A replay (demo, eval) pins `now` to the
recorded alert time so no tool can read the future; a live run leaves it None (wall clock).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from pydantic import BaseModel

from core.llm import LLMChain
from core.models import Action, Approval, ExecutionResult, Plan, utcnow
from core.settings import Settings, get_settings
from memory.cache import cached_call
from tools.log_types import LogSource
from tools.metric_types import MetricsSource
from tools.registry import toolsets

if TYPE_CHECKING:  # memory.incidents pulls in pymilvus: only its types are needed here
    from memory.cache import Cache
    from memory.records import IncidentMatch, IncidentRecord, RunbookMatch

M = TypeVar("M", bound=BaseModel)


class ActionRunner(Protocol):
    """What the agents need from an executor (tools.executor.ActionExecutor is the real one).

    Both calls block (Ansible, PVE task waits): agents run them in a worker thread.
    """

    def preflight(self, action: Action) -> str:
        """What the approver sees before deciding (a --check run, the exact call); changes nothing."""
        ...

    def execute(self, action: Action, plan_id: str = "") -> ExecutionResult:
        """Run one catalog action; a failure is a result (`failed`, `dry_run`), never an exception."""
        ...


class IncidentMemoryPort(Protocol):
    """What the agents need from memory (memory.incidents.IncidentMemory is the real one). Blocking."""

    def similar_incidents(self, text: str, *, service: str | None = None, alertname: str | None = None,
                          limit: int = 5) -> list[IncidentMatch]: ...

    def search_runbooks(self, text: str, *, alertname: str | None = None, limit: int = 3,
                        mode: str = "hybrid") -> list[RunbookMatch]: ...

    def remember(self, record: IncidentRecord) -> None: ...


@dataclass
class Toolbox:
    metrics: MetricsSource | None = None
    logs: LogSource | None = None
    call_graph: dict[str, list[str]] | None = None  # caller -> callees
    # The connected clients of the toolsets (tools/registry.py) that read live systems, by toolset name
    # (live runs only: a replay reads its recording, never the real infrastructure).
    clients: dict[str, Any] = field(default_factory=dict)
    now: datetime | None = None  # pinned "current time" for replays; None = wall clock
    llm: LLMChain = field(default_factory=LLMChain)
    memory: IncidentMemoryPort | None = None  # past incidents and runbooks, when memory is enabled
    executor: ActionRunner | None = None  # runs catalog actions; None: every action is a dry run
    cache: Cache | None = None  # the same LLM question is not paid for twice
    settings: Settings = field(default_factory=get_settings)
    open_incident: Callable[[str], str | None] | None = None  # fingerprint -> id of an open incident
    # Called once execution of an approved plan starts: the runner records it in the registry so a crash
    # from then on shows as `interrupted` and is never silently re-run.
    before_execute: Callable[[Plan, Approval], None] | None = None
    recovery_after: timedelta | None = None  # replays: how far the recording runs past the alert
    source_spec: dict[str, Any] = field(default_factory=lambda: {"kind": "live"})
    # Wall clock of decisions that happen *now* even in a replay (self-healing limits, correlation window).
    clock: Callable[[], datetime] = utcnow
    # Called with a core.models.Escalation when an incident ends escalated (notification channels hook in).
    on_escalation: Callable[[Any], Awaitable[None] | None] | None = None

    def current_time(self) -> datetime:
        return self.now or utcnow()

    def advance_to(self, when: datetime) -> None:
        """Move a replay's clock forward (verification after a remediation); no-op when live."""
        if self.now is None:
            return
        self.now = when
        for source in (self.metrics, self.logs):
            if source is not None and hasattr(source, "now"):
                source.now = when

    def notes(self) -> str:
        """The notes for the model of every toolset this toolbox has (appended to a system prompt)."""

        backends = {"metrics": self.metrics, "logs": self.logs, **self.clients}
        return "".join("\n\n" + ts.notes().strip() for ts in toolsets()
                       if backends.get(ts.name) is not None and ts.notes().strip())

    async def cached(self, kind: str, payload: dict[str, Any], fn: Callable[[], Awaitable[M | None]],
                     model: type[M]) -> M | None:
        """An LLM answer from the cache when this exact (normalised) question was answered before."""
        if self.cache is None:
            return await fn()

        result = await cached_call(self.cache, kind, {"llm": self.llm.mode, **payload}, fn,  # type: ignore[arg-type]
                                   model=model)
        return result  # type: ignore[no-any-return]
