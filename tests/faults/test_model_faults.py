"""Fault tests for the models and memory (the scenarios of scenarios_models.py, asserted on behaviour:
breaker opened, fallback answered, nothing lost; the benchmark prints their times)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core import resilience
from tests.faults.scenarios_models import (
    embeddings_500,
    embeddings_down,
    llm_500,
    llm_dead_port,
    llm_hang,
    milvus_down,
)

pytestmark = pytest.mark.integration


def _circuit_open(call: dict) -> bool:
    return not call["ok"] and call["ms"] == 0 and "is open" in call["error"]


def _assert_llm_degraded(d, failure_text: str) -> None:
    assert d.dependency == "llm-openai" and d.breaker_state == "open"
    first = d.details["runs"][0]
    assert first["mode"] == "rules" and first["hypotheses"] > 0  # the rules answered the incident
    failed = [c for r in d.details["runs"] for c in r["llm_calls"] if not c["ok"] and c["ms"] > 0]
    assert failed and all(failure_text in c["error"] for c in failed)  # the report shows each failure
    # once open, nothing is paid: every later node is an ok=False 'circuit open' entry, answered by rules
    assert _circuit_open(d.details["runs"][-1]["llm_calls"][-1])
    assert d.details["open_ask_answered"] is False and d.details["asks"][-1]["attempts"] == 0
    # one retry layer: exactly CB_FAILURE_THRESHOLD (3) attempts reached the provider, no SDK retries
    assert d.details["total_failures"] == 3 == len(failed)


def test_llm_dead_port_opens_breaker_and_rules_answer(tmp_path: Path) -> None:
    d = llm_dead_port(tmp_path)
    _assert_llm_degraded(d, "Connection error")
    assert d.details["incidents_until_open"] == 1  # 3 refused attempts in the first node (retried)


def test_llm_500_retried_once_per_attempt_then_open(tmp_path: Path) -> None:
    d = llm_500(tmp_path)
    _assert_llm_degraded(d, "500")
    assert d.details["requests_to_sim"] == 3 and d.details["open_ask_reached_sim"] == 0


def test_llm_hang_times_out_not_retried_then_open(tmp_path: Path) -> None:
    d = llm_hang(tmp_path)
    _assert_llm_degraded(d, "timed out")
    # a timeout is not retried: each node pays one LLM_TIMEOUT, so the third timed-out node opens it
    assert d.details["requests_to_sim"] == 3 and d.details["incidents_until_open"] == 2
    assert all(a["attempts"] <= 1 for a in d.details["asks"])
    assert d.details["open_ask_reached_sim"] == 0


def _pending_ids(path: str) -> list[str]:
    return [json.loads(line)["id"] for line in Path(path).read_text().splitlines() if line.strip()]


def _assert_memory_degraded(d, dependency: str) -> None:
    assert d.dependency == dependency and d.breaker_state == "open"
    assert d.details["status"] == "rejected" and d.details["hypotheses"] > 0  # the run completed
    # visible in the report (a DEGRADED row), naming the dependency and its breaker
    assert d.details["note"].startswith(f"memory unavailable: {dependency} breaker open (")
    assert d.details["pending"] == 1 and _pending_ids(d.details["pending_file"]) == [d.details["incident_id"]]
    assert "CircuitOpenError" in d.details["calls"][-1]["error"]  # once open, the skip costs no call


def test_milvus_down_skips_recall_and_defers_the_incident_until_milvus_is_back(tmp_path: Path) -> None:
    pytest.importorskip("pymilvus")
    d = milvus_down(tmp_path / "fault")
    _assert_memory_degraded(d, "milvus")
    assert d.details["embeddings_breaker"] == "closed"

    # Milvus is back (a working store; the breaker half-opens after CB_TIMEOUT): the next remember
    # stores the new incident and replays the pending one
    from core.settings import load_settings
    from memory.embeddings import HttpEmbedder
    from memory.incidents import IncidentMemory
    from memory.records import IncidentRecord
    from tests.sim.embeddings_server import EmbeddingsServer

    resilience.configure(load_settings(CB_TIMEOUT=1, RETRY_BASE_DELAY=0.01))
    time.sleep(1.05)  # let the open breaker reach half-open (not a timed assertion)
    assert resilience.breaker("milvus").state == "half_open"
    with EmbeddingsServer(dim=16) as emb:
        mem = IncidentMemory(str(tmp_path / "milvus.db"), embedder=HttpEmbedder(emb.base_url),
                             pending=Path(d.details["pending_file"]))
        try:
            mem.remember(IncidentRecord(id="inc-later", signature="s", alertname="KubePodCrashLooping",
                                        service="payments-api", symptoms="pod restarting",
                                        occurred_at=datetime(2026, 1, 1, tzinfo=UTC)))
            assert mem.pending.count() == 0
            assert mem.counts()["incidents"] == 2
            ids = {m.record.id for m in mem.similar_incidents("payments-api crash loop", limit=5)}
            assert ids == {"inc-later", d.details["incident_id"]}
        finally:
            mem.close()
    assert resilience.breaker("milvus").state == "closed"


def test_embeddings_down_skips_recall_defers_and_never_charges_milvus(tmp_path: Path) -> None:
    pytest.importorskip("pymilvus")
    d = embeddings_down(tmp_path)
    _assert_memory_degraded(d, "embeddings")
    assert d.details["milvus_breaker"] == "closed" and d.details["milvus_failures"] == 0
    assert not (tmp_path / "milvus.db").exists()  # texts are embedded first: Milvus was never opened


def test_embeddings_500_is_retried_until_the_breaker_opens(tmp_path: Path) -> None:
    pytest.importorskip("pymilvus")
    d = embeddings_500(tmp_path)
    _assert_memory_degraded(d, "embeddings")
    assert d.details["requests_to_sim"] == 3  # RETRY_ATTEMPTS on the first recall; nothing after it opened


def test_openai_down_falls_back_to_ollama(tmp_path: Path) -> None:
    from tests.faults.scenarios_models import ollama_fallback

    d = ollama_fallback(tmp_path)
    assert d.breaker_state == "open" and d.details["ollama_breaker"] == "closed"
    assert [a["answered_by"] for a in d.details["asks"]] == ["model", "model"]  # Ollama answered both nodes
    assert d.details["top_cause"] == "config.yaml fails to parse"  # the model's diagnosis, not the rules'
    calls = d.details["llm_calls"]
    assert [c["provider"] for c in calls if not c["ok"] and c["ms"] > 0] == ["openai"] * 3
    assert [c["node"] for c in calls if c["provider"] == "ollama" and c["ok"]] == ["diagnosis", "remediation"]
    assert any(c["provider"] == "openai" and _circuit_open(c) for c in calls)  # remediation skipped openai
    assert d.details["ollama_requests"] == 2
