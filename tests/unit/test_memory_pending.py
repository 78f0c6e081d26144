"""The learning loop's outbox: incidents kept while memory is down, stored once it is back."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from memory.failures import reason
from memory.records import IncidentRecord
from store.pending import PendingRecords


def _rec(i: str) -> IncidentRecord:
    return IncidentRecord(id=i, signature="s", alertname="A", service="svc", symptoms="x",
                          occurred_at=datetime(2026, 1, 1, tzinfo=UTC))


def test_pending_records_survive_a_failed_replay_and_are_stored_once(tmp_path: Path) -> None:
    pending = PendingRecords(tmp_path / "d" / "memory-pending.jsonl", IncidentRecord.model_validate)
    assert pending.count() == 0 and pending.replay(lambda rs: None) == 0
    assert pending.add(_rec("a")) == 1 and pending.add(_rec("b")) == 2

    def down(records: list[IncidentRecord]) -> None:
        raise ConnectionError("milvus down")

    with pytest.raises(ConnectionError):
        pending.replay(down)
    assert pending.count() == 2  # nothing lost

    stored: list[str] = []
    assert pending.replay(lambda rs: stored.extend(r.id for r in rs)) == 2
    assert stored == ["a", "b"] and pending.count() == 0
    assert pending.replay(lambda rs: stored.extend(r.id for r in rs)) == 0 and stored == ["a", "b"]


def test_unreadable_pending_line_is_set_aside_not_blocking(tmp_path: Path) -> None:
    path = tmp_path / "memory-pending.jsonl"
    pending = PendingRecords(path, IncidentRecord.model_validate)
    pending.add(_rec("a"))
    with path.open("a") as fh:
        fh.write('{"id": "broken"\n')
    stored: list[str] = []
    assert pending.replay(lambda rs: stored.extend(r.id for r in rs)) == 1 and stored == ["a"]
    assert pending.count() == 0
    assert '"broken"' in (tmp_path / "memory-pending.jsonl.rejected").read_text()


def test_reason_names_the_dependency_in_one_line() -> None:
    from core.resilience import CircuitOpenError
    from memory.embeddings import EmbeddingError

    assert reason(EmbeddingError("endpoint said 500\ntrace")) == "embeddings: endpoint said 500"
    assert reason(CircuitOpenError("milvus")).startswith("milvus: circuit 'milvus' is open")
    assert reason(RuntimeError("no route")) == "milvus: no route"
