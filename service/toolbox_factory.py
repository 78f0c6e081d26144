"""Builds the agents' toolbox from a source spec: live backends from settings, or a recording.

The spec is stored with each incident so a resumed run (another process, hours later) gets the same
kind of toolbox back: `{"kind": "live"}` or `{"kind": "replay", "path": ..., "standins": ...}`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from agents.correlation import Topology
from agents.policy import load_policy
from agents.toolbox import IncidentMemoryPort, Toolbox
from core.llm import LLMChain, build_llm_chain
from core.settings import Settings
from memory.cache import build_cache
from memory.incidents import IncidentMemory
from tools.executor import ActionExecutor
from tools.log_types import LogSource
from tools.metric_types import MetricsSource
from tools.registry import toolset, toolsets
from tools.replay.recording import load_recorded
from tools.replay.standins import prepare_stand_ins


def replay_spec(recording: str | Path, settings: Settings) -> dict[str, Any]:
    """Prepare the stand-in hosts of a recording (fresh files, inventory) and return its spec."""
    rec = load_recorded(recording)
    standins = settings.AIOPS_DATA_DIR / "standins" / rec.name
    prepare_stand_ins(rec, standins)
    return {"kind": "replay", "path": str(Path(recording).resolve()), "standins": str(standins.resolve())}


def live_metrics(settings: Settings) -> MetricsSource | None:
    """The metrics toolset's source, when the settings configure one."""
    source: MetricsSource | None = toolset("metrics").connect(settings)
    return source


def live_logs(settings: Settings) -> LogSource | None:
    """The logs toolset's source, when the settings configure one."""
    source: LogSource | None = toolset("logs").connect(settings)
    return source


def make_toolbox_factory(settings: Settings, llm: LLMChain | None = None,
                         memory: IncidentMemoryPort | None = None) -> Callable[[dict[str, Any]], Toolbox]:
    chain = llm if llm is not None else build_llm_chain(settings)
    cache = build_cache(settings)  # one per process: Redis when REDIS_URL is set, else an in-process LRU
    if memory is None and settings.ENABLE_MEMORY:
        memory = IncidentMemory.from_settings(settings)  # cheap: Milvus and the model load on first use

    topology = Topology.load(settings.TOPOLOGY_FILE)  # the same call graph correlation uses
    # Refused at start, in one line, rather than at the first incident: a self-healing rule that could
    # never fire (an action without auto-approval bounds), and a toolset's invalid settings.
    load_policy(settings.POLICY_FILE)
    for ts in toolsets():
        ts.settings(settings)

    def factory(spec: dict[str, Any]) -> Toolbox:
        if spec.get("kind") == "replay":
            rec = load_recorded(spec["path"])
            inventory = str(Path(spec["standins"]) / "inventory.ini")
            return Toolbox(metrics=rec.metrics_source(), logs=rec.logs_source(), call_graph=rec.call_graph,
                           now=rec.alert_time, llm=chain, memory=memory, settings=settings, cache=cache,
                           executor=ActionExecutor(settings, inventory=inventory, infrastructure=False),
                           recovery_after=timedelta(seconds=rec.recovery_after_seconds), source_spec=spec)
        executor = ActionExecutor(settings)
        return Toolbox(metrics=live_metrics(settings), logs=live_logs(settings), llm=chain, memory=memory,
                       call_graph=topology.calls or None,
                       settings=settings, executor=executor, source_spec=spec, cache=cache,
                       clients={k: v for k, v in executor.clients.items() if v is not None})

    return factory
