"""A corrupted store file is one line naming the file and what to do, exit 2, never a traceback."""

from __future__ import annotations

import json

import pytest

from tests.conftest import recording
from tests.security.decision_helpers import aiops

pytestmark = pytest.mark.e2e

GARBAGE = b"this is not an sqlite file\x00\xff" * 200


def _one_line(out, path) -> None:
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert str(path) in out.stderr and "move it aside" in out.stderr


@pytest.mark.parametrize("command", [["incidents"], ["show", "inc-000000000000"], ["approve", "plan-x", "--by", "a"]])
def test_corrupted_incident_registry(tmp_path, command):
    path = tmp_path / "var" / "incidents.sqlite"
    path.parent.mkdir(parents=True)
    path.write_bytes(GARBAGE)
    out = aiops(tmp_path, *command)
    _one_line(out, path)
    assert "incident registry" in out.stderr


def test_corrupted_checkpoint_file(tmp_path):
    path = tmp_path / "var" / "checkpoints.sqlite"
    path.parent.mkdir(parents=True)
    path.write_bytes(GARBAGE)
    alert = tmp_path / "alert.json"
    alert.write_text(json.dumps(json.loads(recording("disk-full").read_text())["webhook"]))
    for command in (["show", "inc-000000000000"], ["analyze", "--alert", str(alert)]):
        out = aiops(tmp_path, *command)
        _one_line(out, path)
        assert "checkpoints" in out.stderr
    assert path.read_bytes() == GARBAGE  # evidence left as it was


def test_corrupted_checkpoint_file_at_a_custom_path(tmp_path):
    path = tmp_path / "elsewhere" / "ckpt.db"
    path.parent.mkdir()
    path.write_bytes(GARBAGE)
    _one_line(aiops(tmp_path, "show", "inc-000000000000", env={"CHECKPOINT_DB": str(path)}), path)


def test_damaged_pages_inside_a_checkpoint_file(tmp_path):
    """The header is intact (the file opens), the pages holding the checkpoints are not."""
    import sqlite3

    from tests.security.decision_helpers import hot_vm_alert

    out = aiops(tmp_path, "analyze", "--alert", str(hot_vm_alert(tmp_path)), "--json")
    assert out.returncode == 0, out.stderr
    incident_id = json.loads(out.stdout)["incident_id"]
    path = tmp_path / "var" / "checkpoints.sqlite"
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page = db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    data = bytearray(path.read_bytes())
    data[3 * page:] = b"\xab" * (len(data) - 3 * page)
    path.write_bytes(bytes(data))
    for extra in ("-wal", "-shm"):
        path.with_name(path.name + extra).unlink(missing_ok=True)
    out = aiops(tmp_path, "show", incident_id)
    _one_line(out, path)
    assert "malformed" in out.stderr
    assert aiops(tmp_path, "incidents").returncode == 0  # the registry is another file, still fine
