"""/health says what waits on disk for a dependency that was down (memory, the notification queue)."""

from pathlib import Path

from core.settings import load_settings
from interfaces.api.health import _add_backlogs
from interfaces.api.schemas import ComponentHealth


def test_pending_files_are_reported_on_their_components(tmp_path: Path) -> None:
    settings = load_settings(AIOPS_DATA_DIR=tmp_path / "var")
    components = {"queue": ComponentHealth(status="ok", detail="sqlite, depth 0, oldest 0s"),
                  "milvus": ComponentHealth(status="ok", detail="milvus-lite file x.db")}
    unchanged = dict(components)
    _add_backlogs(settings, unchanged)  # nothing pending: nothing said
    assert unchanged == components

    settings.AIOPS_DATA_DIR.mkdir(parents=True)
    (settings.AIOPS_DATA_DIR / "memory-pending.jsonl").write_text('{"a": 1}\n{"a": 2}\n')
    (settings.AIOPS_DATA_DIR / "notify-pending.jsonl").write_text('{"k": 1}\n')
    _add_backlogs(settings, components)
    assert components["milvus"].detail.startswith("milvus-lite file x.db; 2 incident(s) waiting to be stored")
    assert "1 notification(s) waiting to be queued" in components["queue"].detail
    assert components["queue"].status == "ok"  # a backlog is information, not an outage
