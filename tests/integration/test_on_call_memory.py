"""A closed incident is remembered with how it was closed: `aiops close` with memory on (milvus-lite and
the embedding model, as the service runs by default) stores the incident with `closed by NAME: reason`,
and the record read back from the collection carries it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.settings import load_settings
from memory.incidents import INCIDENTS, IncidentMemory, _row_to_incident
from tests.conftest import recording
from tests.security.decision_helpers import aiops

pytestmark = pytest.mark.integration


def test_close_remembers_the_reason(tmp_path: Path) -> None:
    env = {"ENABLE_MEMORY": "true", "LLM_MODE": "rules"}
    alert = tmp_path / "crashloop.json"
    alert.write_text(json.dumps(json.loads(recording("crashloop").read_text())["webhook"]))
    paused = aiops(tmp_path, "analyze", "--alert", str(alert), "--replay", str(recording("crashloop")), "--json",
                   env=env)
    assert paused.returncode == 0, paused.stderr
    incident_id = json.loads(paused.stdout)["incident_id"]
    closed = aiops(tmp_path, "close", incident_id, "--reason", "rolled back by hand at 10:40", "--by", "alice",
                   "--json", env=env)
    assert closed.returncode == 0, closed.stderr
    assert json.loads(closed.stdout)["decision_state"] == "withdrawn"
    settings = load_settings(AIOPS_DATA_DIR=tmp_path / "var", ENABLE_MEMORY=True)
    memory = IncidentMemory.from_settings(settings)
    try:
        memory._ensure(INCIDENTS)
        rows = memory._client().query(INCIDENTS, filter=f'id == "{incident_id}"', output_fields=["*"])
    finally:
        memory.close()
    assert len(rows) == 1
    record = _row_to_incident(rows[0])
    assert record.resolution == "closed by alice: rolled back by hand at 10:40"
    assert record.actions == [] and record.alertname == "ServiceCrashLooping"  # nothing ran
