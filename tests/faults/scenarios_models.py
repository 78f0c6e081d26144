"""Fault scenarios for the models and memory: each LLM provider, Milvus, the embeddings endpoint.

Every scenario runs the real incident graph in-process (the crashloop recording, as the integration
tests do) with the dependency broken for real: the real langchain-openai client pointed at a dead
loopback port, or at the OpenAI-protocol simulator answering 500 / hanging past LLM_TIMEOUT; memory
pointed at a dead Milvus port or at an embeddings simulator that was stopped / answers 500.

Measured (`fallback_ms`): the wall time of the first incident after the fault, from its first call to
the report the fallback produced (rules mode / no memory). `details` adds each following incident's
time, so the cost with the breaker open can be compared with the first failing one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from agents.degraded import is_unavailable_note
from agents.diagnosis import DiagnosisOutput
from core import resilience
from core.llm import LLMChain, M, build_llm_chain
from core.models import IncidentReport, LLMCall
from core.settings import Settings, load_settings
from service.runner import IncidentRunner
from service.toolbox_factory import make_toolbox_factory, replay_spec
from tests.conftest import recording
from tests.faults.scenario import Degradation, degradation
from tests.servers import free_port
from tests.sim.embeddings_server import EmbeddingsServer
from tests.sim.openai_server import OpenAISim, function_call, serve
from tools.replay.recording import load_recorded

RECORDING = "crashloop"  # two LLM nodes (diagnosis, remediation); rules mode resolves it after approval
LLM_TIMEOUT = 1.0  # seconds, for the hanging simulator
MAX_RUNS = 5  # incidents per LLM scenario at most (the breaker opens within CB_FAILURE_THRESHOLD calls)


def base_settings(tmp: Path, **extra: Any) -> Settings:
    """Settings for one fault run: nothing ambient (no Ollama unless asked), fast retries."""
    values: dict[str, Any] = {
        "AIOPS_DATA_DIR": tmp / "var", "VERIFY_SETTLE_SECONDS": 0, "ENABLE_MEMORY": False,
        "ENABLE_CACHING": False, "OPENAI_API_KEY": None, "OPENAI_BASE_URL": None, "OLLAMA_BASE_URL": None,
        "MILVUS_URI": None, "EMBEDDINGS_BASE_URL": None, "LLM_MODE": "auto", "RETRY_BASE_DELAY": 0.01,
        "RETRY_MAX_DELAY": 0.05, "CB_TIMEOUT": 60,
    }
    values.update(extra)
    s = load_settings(**values)
    resilience.configure(s)
    return s


def run_incident(s: Settings, *, decide: str | None = None, llm: LLMChain | None = None,
                 memory: Any = None) -> tuple[IncidentReport, float, str]:
    """One in-process incident on the recording; (report, wall ms, status). `decide` ("approve",
    "reject") answers the approval, so the run reaches its end (and memory's remember)."""
    rec = load_recorded(recording(RECORDING))

    async def go() -> tuple[IncidentReport, str]:
        async with IncidentRunner(s, make_toolbox_factory(s, llm=llm, memory=memory)) as runner:
            out = await runner.analyze(rec.webhook, replay_spec(recording(RECORDING), s))
            if decide and out.status.value == "awaiting_approval" and out.plan_id:
                out = await runner.decide(out.plan_id, approver="alice", decision=decide)
            assert out.report is not None
            return out.report, out.status.value

    started = time.perf_counter()
    report, status = asyncio.run(go())
    return report, (time.perf_counter() - started) * 1000, status


@dataclass
class TimedChain(LLMChain):
    """The real chain, timing each node's ask: from the first provider call to the answer the node
    gets (a model's, or None: the rules answer). Measurement only; behaviour is LLMChain's."""

    timings: list[dict[str, Any]] = field(default_factory=list)

    def _note(self, node: str, started: float, answered: bool, calls: list[LLMCall], before: int) -> None:
        self.timings.append({"node": node, "ms": round((time.perf_counter() - started) * 1000, 2),
                             "answered_by": "model" if answered else "rules",
                             "attempts": len([c for c in calls[before:] if c.latency_ms > 0])})

    async def step(self, node: str, messages: Sequence[BaseMessage], tools: Sequence[Any],
                   calls: list[LLMCall], tool_choice: str | None = None) -> AIMessage | None:
        started, before = time.perf_counter(), len(calls)
        out = await super().step(node, messages, tools, calls, tool_choice)
        self._note(node, started, out is not None, calls, before)
        return out

    async def structured(self, node: str, messages: Sequence[BaseMessage], schema: type[M],
                         calls: list[LLMCall]) -> M | None:
        started, before = time.perf_counter(), len(calls)
        out = await super().structured(node, messages, schema, calls)
        self._note(node, started, out is not None, calls, before)
        return out


class TimedMemory:
    """The real IncidentMemory, timing each call the agents make (until it returns or raises)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.timings: list[dict[str, Any]] = []

    def _timed(self, op: str, fn: Any, *args: Any, **kw: Any) -> Any:
        started = time.perf_counter()
        try:
            out = fn(*args, **kw)
        except Exception as exc:
            self.timings.append({"op": op, "ms": round((time.perf_counter() - started) * 1000, 2),
                                 "error": f"{type(exc).__name__}: {exc}"[:160]})
            raise
        self.timings.append({"op": op, "ms": round((time.perf_counter() - started) * 1000, 2), "error": ""})
        return out

    def similar_incidents(self, text: str, **kw: Any) -> Any:
        return self._timed("similar_incidents", self.inner.similar_incidents, text, **kw)

    def search_runbooks(self, text: str, **kw: Any) -> Any:
        return self._timed("search_runbooks", self.inner.search_runbooks, text, **kw)

    def remember(self, record: Any) -> None:
        self._timed("remember", self.inner.remember, record)


def crashloop_responder(body: dict[str, Any]) -> dict[str, Any]:
    """A model that would diagnose and plan the crashloop (only reached when the simulator is healthy)."""
    names = [t["function"]["name"] for t in body.get("tools", [])]
    if "RemediationPlan" in names:
        return function_call("RemediationPlan", {"rationale": "restore the last good config", "steps": [
            {"action": "rollback_config", "target": "app-02",
             "parameters": {"service": "payments-api", "config_path": "/etc/payments-api/config.yaml"}}]})
    return function_call("Diagnosis", {"summary": "bad config", "hypotheses": [
        {"component": "payments-api", "cause": "config.yaml fails to parse", "confidence": 0.85,
         "evidence_ids": ["ev-1"]}]})


def _llm_until_open(tmp: Path, url: str, fault: str, sim: OpenAISim | None = None, **extra: Any) -> Degradation:
    """Incidents one after another (fresh data dirs, one process: the breaker is process-wide) until the
    "llm-openai" breaker is open; then one more ask with it open, to time the rules answer then."""
    s = base_settings(tmp / "run0", OPENAI_BASE_URL=url, OPENAI_MODEL="sim-model", **extra)
    chain = TimedChain(build_llm_chain(s).providers)
    runs: list[dict[str, Any]] = []
    for n in range(MAX_RUNS):
        report, ms, _status = run_incident(base_settings(tmp / f"run{n}", OPENAI_BASE_URL=url,
                                                         OPENAI_MODEL="sim-model", **extra), llm=chain)
        runs.append({"incident_ms": round(ms, 1), "mode": report.mode, "hypotheses": len(report.hypotheses),
                     "llm_calls": [{"node": c.node, "ok": c.ok, "ms": round(c.latency_ms, 1), "error": c.error[:80]}
                                   for c in report.llm_calls]})
        if resilience.breaker("llm-openai").state == "open":
            break
    requests_before = len(sim.requests) if sim else None
    asked = asyncio.run(chain.structured("diagnosis", [HumanMessage("diagnose")], DiagnosisOutput, []))
    b = resilience.breaker("llm-openai")
    first, open_ask = chain.timings[0], chain.timings[-1]
    return Degradation(
        dependency="llm-openai", fault=fault,
        behaviour=f"breaker opens after {b.failure_threshold} failed attempts; rules mode answers; while open "
                  "no call is paid (report: one ok=False 'circuit open' LLMCall per node)",
        fallback_ms=first["ms"], breaker_state=b.state,
        details={"first_ask": first, "open_ask_ms": open_ask["ms"], "asks": chain.timings, "runs": runs,
                 "incidents_until_open": len(runs), "open_ask_answered": asked is not None,
                 "open_ask_reached_sim": (len(sim.requests) - requests_before) if sim and requests_before is not None
                 else None, "total_failures": b.total_failures})


@degradation("llm-dead-port")
def llm_dead_port(tmp: Path) -> Degradation:
    return _llm_until_open(tmp, f"http://127.0.0.1:{free_port()}/v1", "OPENAI_BASE_URL at a dead loopback port")


@degradation("llm-500")
def llm_500(tmp: Path) -> Degradation:
    sim = OpenAISim(crashloop_responder, fail_with=500)
    with serve(sim) as url:
        d = _llm_until_open(tmp, url, "OpenAI simulator answering HTTP 500", sim)
    d.details["requests_to_sim"] = len(sim.requests)
    return d


@degradation("llm-hang")
def llm_hang(tmp: Path) -> Degradation:
    sim = OpenAISim(crashloop_responder, hang_for=60)
    with serve(sim) as url:
        d = _llm_until_open(tmp, url, f"OpenAI simulator hanging (LLM_TIMEOUT={LLM_TIMEOUT:g} s)", sim,
                            LLM_TIMEOUT=LLM_TIMEOUT)
    d.details["requests_to_sim"] = len(sim.requests)
    return d


# --- memory -----------------------------------------------------------------------------------------

def _memory_run(tmp: Path, dependency: str, fault: str, **extra: Any) -> Degradation:
    """One incident with memory broken (recall skipped with a note, remember deferred to the pending
    file), then one more recall with the breaker open, to time the skip then."""
    from memory.incidents import IncidentMemory

    s = base_settings(tmp / "run0", ENABLE_MEMORY=True, LLM_MODE="rules", **extra)
    memory = TimedMemory(IncidentMemory.from_settings(s))
    # rejected by the approver: the run ends at once (no playbook to wait for) and is remembered all the same
    report, ms, status = run_incident(s, decide="reject", memory=memory)
    notes = [e.excerpt for e in report.evidence if is_unavailable_note(e) and e.excerpt.startswith("memory")]
    try:
        memory.similar_incidents("HostHighCpuLoad web-01", alertname="HostHighCpuLoad")
    except Exception:  # noqa: BLE001, S110 - expected: memory is down; the timing is what is wanted
        pass
    b = resilience.breaker(dependency)
    first, open_call = memory.timings[0], memory.timings[-1]
    return Degradation(
        dependency=dependency, fault=fault,
        behaviour="recall skipped ('memory unavailable: <dep> breaker open (...)' DEGRADED line in the report), incident completes; "
                  "finished incident kept in memory-pending.jsonl, stored when memory is back",
        fallback_ms=first["ms"], breaker_state=b.state,
        details={"first_call": first, "open_call_ms": open_call["ms"], "calls": memory.timings,
                 "incident_ms": round(ms, 1), "status": status, "incident_id": report.incident_id,
                 "note": notes[0] if notes else "", "pending": memory.inner.pending.count(),
                 "pending_file": str(memory.inner.pending.path), "hypotheses": len(report.hypotheses),
                 "total_failures": b.total_failures, "milvus_breaker": resilience.breaker("milvus").state,
                 "milvus_failures": resilience.breaker("milvus").total_failures,
                 "embeddings_breaker": resilience.breaker("embeddings").state})


@degradation("milvus-down")
def milvus_down(tmp: Path) -> Degradation:
    with EmbeddingsServer(dim=16) as emb:  # embeddings healthy: only Milvus is down
        return _memory_run(tmp, "milvus", "MILVUS_URI at a dead loopback port (Milvus server down)",
                           MILVUS_URI=f"http://127.0.0.1:{free_port()}", EMBEDDINGS_BASE_URL=emb.base_url)


@degradation("embeddings-down")
def embeddings_down(tmp: Path) -> Degradation:
    with EmbeddingsServer(dim=16) as emb:
        url = emb.base_url
    # the simulator is stopped: its port refuses connections. Milvus (a lite file) is never opened.
    return _memory_run(tmp, "embeddings", "embeddings simulator stopped (EMBEDDINGS_BASE_URL refuses)",
                       MILVUS_URI=str(tmp / "milvus.db"), EMBEDDINGS_BASE_URL=url)


@degradation("embeddings-500")
def embeddings_500(tmp: Path) -> Degradation:
    with EmbeddingsServer(dim=16) as emb:
        emb.fail_next = [500] * 1000
        d = _memory_run(tmp, "embeddings", "embeddings simulator answering HTTP 500",
                        MILVUS_URI=str(tmp / "milvus.db"), EMBEDDINGS_BASE_URL=emb.base_url)
        d.details["requests_to_sim"] = len(emb.requests)
    return d


@degradation("ollama-fallback")
def ollama_fallback(tmp: Path) -> Degradation:
    """OpenAI at a dead port, Ollama (the wire simulator, real langchain-ollama client) healthy."""
    from tests.sim.ollama_server import OllamaSim
    from tests.sim.ollama_server import serve as serve_ollama

    ollama = OllamaSim(crashloop_responder, model="llama3.1:8b")
    with serve_ollama(ollama) as ollama_url:
        s = base_settings(tmp / "run0", OPENAI_BASE_URL=f"http://127.0.0.1:{free_port()}/v1", OPENAI_MODEL="sim-model",
                          OLLAMA_BASE_URL=ollama_url, OLLAMA_MODEL="llama3.1:8b", ENABLE_LLM_FALLBACK=True)
        chain = TimedChain(build_llm_chain(s).providers)
        report, ms, _status = run_incident(s, llm=chain)
    b = resilience.breaker("llm-openai")
    first, later = chain.timings[0], chain.timings[1:]
    return Degradation(
        dependency="llm-openai", fault="OPENAI_BASE_URL at a dead loopback port, Ollama (simulated) up",
        behaviour=f"openai breaker opens after {b.failure_threshold} failed attempts; Ollama answers the same "
                  "node; later nodes go straight to Ollama",
        fallback_ms=first["ms"], breaker_state=b.state,
        details={"first_ask": first, "open_ask_ms": later[0]["ms"] if later else None, "asks": chain.timings,
                 "incident_ms": round(ms, 1), "mode": report.mode, "hypotheses": len(report.hypotheses),
                 "top_cause": report.hypotheses[0].cause if report.hypotheses else "",
                 "llm_calls": [{"node": c.node, "provider": c.provider, "ok": c.ok, "ms": round(c.latency_ms, 1),
                                "error": c.error[:80]} for c in report.llm_calls],
                 "ollama_requests": len(ollama.requests), "ollama_breaker": resilience.breaker("llm-ollama").state})
