"""What the agents work with: tool backends, the LLM chain, memory, executor, and the clock.

The graph receives a `Toolbox` as its runtime context. A replay (demo, eval) pins `now` to the
recorded alert time so no tool can read the future; a live run leaves it None (wall clock).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel

from core.llm import LLMChain
from core.models import utcnow
from core.settings import Settings, get_settings
from tools.logs import LogSource
from tools.metrics import MetricsSource
from tools.proxmox.client import ProxmoxClient
from tools.routeros.client import RouterOSClient

M = TypeVar("M", bound=BaseModel)


@dataclass
class Toolbox:
    metrics: MetricsSource | None = None
    logs: LogSource | None = None
    call_graph: dict[str, list[str]] | None = None  # caller -> callees
    proxmox: ProxmoxClient | None = None  # PVE cluster the alerts' guests/nodes live on (live runs)
    routeros: RouterOSClient | None = None  # the MikroTik router network alerts are about (live runs)
    now: datetime | None = None  # pinned "current time" for replays; None = wall clock
    llm: LLMChain = field(default_factory=LLMChain)
    memory: Any | None = None  # memory.incidents.IncidentMemory when configured
    executor: Any | None = None  # tools.executor.ActionExecutor
    cache: Any | None = None  # memory.cache.Cache: the same LLM question is not paid for twice
    settings: Settings = field(default_factory=get_settings)
    open_incident: Callable[[str], str | None] | None = None  # fingerprint -> id of an open incident
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

    async def cached(self, kind: str, payload: dict[str, Any], fn: Callable[[], Awaitable[M | None]],
                     model: type[M]) -> M | None:
        """An LLM answer from the cache when this exact (normalised) question was answered before."""
        if self.cache is None:
            return await fn()
        from memory.cache import cached_call

        result = await cached_call(self.cache, kind, {"llm": self.llm.mode, **payload}, fn,  # type: ignore[arg-type]
                                   model=model)
        return result  # type: ignore[no-any-return]
