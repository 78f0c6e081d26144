"""One open incident per fingerprint, enforced by the store (a unique partial index, SQLite and Postgres).

Two concurrent `aiops analyze` of the same alert yield one incident and a duplicate of it; the
resolved alert then closes that one incident. The registry row is claimed at the start of the run.
Old data dirs (the schema before decisions, with the duplicate open incidents the bug made) migrate.
"""

from __future__ import annotations

import json
import sqlite3
import threading

import pytest

from core.models import utcnow
from core.settings import load_settings
from store.registry import IncidentRegistry, IncidentRow
from tests.security.decision_helpers import aiops, hot_vm_alert, incidents, pg_database, show, spawn

pytestmark = pytest.mark.e2e


def _concurrent_analyze(tmp_path, env: dict[str, str] | None = None) -> None:
    alert = hot_vm_alert(tmp_path)  # no backends configured: the alert itself is the evidence
    procs = [spawn(tmp_path, "analyze", "--alert", str(alert), "--json", env=env) for _ in range(2)]
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    results = [json.loads(o) for o, _ in outs]
    assert sorted(r["status"] for r in results) == ["awaiting_approval", "duplicate"], results
    first = next(r for r in results if r["status"] == "awaiting_approval")
    dup = next(r for r in results if r["status"] == "duplicate")
    if dup["incident_id"] != first["incident_id"]:  # the store refused the second claim: a duplicate row
        assert show(tmp_path, dup["incident_id"], env)["triage"]["duplicate_of"] == first["incident_id"]
    else:  # storm correlation joined the second alert to the first incident before any claim (no new row)
        assert (env or {}).get("CORRELATION_WINDOW_SECONDS") != "0"
        assert [i["incident_id"] for i in incidents(tmp_path, env)] == [first["incident_id"]]
    open_ = [i for i in incidents(tmp_path, env) if i["status"] not in ("duplicate", "resolved")]
    assert [i["incident_id"] for i in open_] == [first["incident_id"]]

    resolved = aiops(tmp_path, "analyze", "--alert", str(hot_vm_alert(tmp_path, status="resolved")), "--json", env=env)
    assert resolved.returncode == 0, resolved.stderr
    by_id = {i["incident_id"]: i["status"] for i in incidents(tmp_path, env)}
    assert by_id[first["incident_id"]] == "resolved"
    assert set(by_id.values()) <= {"resolved", "duplicate"}  # nothing left open
    late = aiops(tmp_path, "approve", first["plan_id"], "--by", "alice", env=env)  # its plan closed with it
    assert late.returncode == 2 and "is resolved" in late.stderr, late.stderr
    trail = show(tmp_path, first["incident_id"], env)["decisions"]
    assert [d["outcome"] for d in trail] == ["closed", "refused"] and "the alert resolved" in trail[0]["reason"]


# Correlation off ("0"): the registry's unique index alone must keep one open incident; on (the default):
# the second alert joins the first incident, or (if both pass correlation at once) the store refuses it.
@pytest.mark.parametrize("window", ["0", "300"])
def test_two_concurrent_analyze_of_one_fingerprint_open_one_incident(tmp_path, window):
    _concurrent_analyze(tmp_path, {"CORRELATION_WINDOW_SECONDS": window})


@pytest.mark.parametrize("window", ["0", "300"])
def test_two_concurrent_analyze_on_postgres(tmp_path, window):
    with pg_database() as url:
        _concurrent_analyze(tmp_path, {"DATABASE_URL": url, "CORRELATION_WINDOW_SECONDS": window})


def _row(incident_id: str, fingerprint: str = "fp", status: str = "running") -> IncidentRow:
    now = utcnow()
    return IncidentRow(incident_id=incident_id, fingerprint=fingerprint, status=status, title="t", mode="rules",
                       source={}, created_at=now, updated_at=now)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_the_store_refuses_a_second_open_incident(tmp_path, backend):
    import contextlib

    with pg_database() if backend == "postgres" else contextlib.nullcontext() as url:
        settings = load_settings(AIOPS_DATA_DIR=tmp_path / "var", DATABASE_URL=url)
        registry = IncidentRegistry(settings)
        claims: dict[str, str | None] = {}
        start = threading.Barrier(6)

        def claim(i: int) -> None:
            start.wait()
            claims[f"inc-{i}"] = IncidentRegistry(settings).claim_new(_row(f"inc-{i}"), f"owner-{i}")

        threads = [threading.Thread(target=claim, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [k for k, dup in claims.items() if dup is None]
        assert len(winners) == 1 and all(dup == winners[0] for k, dup in claims.items() if k != winners[0])
        with pytest.raises(Exception, match="(?i)unique"):  # a plain write cannot open a second one either
            registry.upsert(_row("inc-x", status="awaiting_approval"))
        registry.upsert(_row("inc-y", status="duplicate"))  # closed states are not limited
        registry.set_status(winners[0], "resolved")
        assert registry.claim_new(_row("inc-next"), "owner-next") is None  # closed: the next alert opens anew


def test_claimed_at_the_start_of_the_run(tmp_path, settings):
    """The row exists (running, owned) while the graph still diagnoses, not only when it ends."""
    import asyncio

    from core.models import AlertmanagerWebhook
    from service.runner import IncidentRunner
    from service.toolbox_factory import make_toolbox_factory

    seen: list[tuple[str, str | None]] = []
    hook = AlertmanagerWebhook.model_validate(json.loads(hot_vm_alert(tmp_path).read_text()))

    async def run():
        factory = make_toolbox_factory(settings)
        async with IncidentRunner(settings, factory) as runner:
            def probing(spec):
                toolbox = factory(spec)
                original = toolbox.current_time

                def current_time():
                    seen.extend((r.status, r.owner) for r in runner.registry.list())
                    return original()

                toolbox.current_time = current_time  # type: ignore[method-assign]
                return toolbox

            runner.toolbox_factory = probing
            return await runner.analyze(hook)

    out = asyncio.run(run())
    assert out.status.value == "awaiting_approval"
    assert seen and all(status == "running" and owner for status, owner in seen)
    row = IncidentRegistry(settings).get(out.incident_id)
    assert row.owner is None and row.decision_state == "pending"


def test_an_old_data_dir_is_migrated(tmp_path):
    """The schema before decisions, holding two open incidents of one fingerprint (as the race made)."""
    var = tmp_path / "var"
    var.mkdir()
    db = sqlite3.connect(var / "incidents.sqlite")
    db.execute("""CREATE TABLE aiops_incidents (incident_id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL,
        status TEXT NOT NULL, title TEXT NOT NULL, mode TEXT NOT NULL, plan_id TEXT, plan_hash TEXT,
        source TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL)""")
    for i, (created, status) in enumerate([("2026-01-01T00:00:00+00:00", "awaiting_approval"),
                                           ("2026-01-01T00:00:05+00:00", "awaiting_approval"),
                                           ("2026-01-02T00:00:00+00:00", "resolved")]):
        db.execute("INSERT INTO aiops_incidents VALUES (?, 'fp1', ?, 'old', 'rules', ?, 'h', '{}', ?, ?)",
                   [f"inc-old{i}", status, f"plan-old{i}", created, created])
    db.commit()
    db.close()
    listed = aiops(tmp_path, "incidents", "--json")
    assert listed.returncode == 0, listed.stderr
    by_id = {i["incident_id"]: (i["status"], i["decision_state"]) for i in json.loads(listed.stdout)["incidents"]}
    assert by_id == {"inc-old0": ("awaiting_approval", "pending"), "inc-old1": ("duplicate", None),
                     "inc-old2": ("resolved", None)}
    refused = aiops(tmp_path, "approve", "plan-old1", "--by", "alice")
    assert refused.returncode == 2 and "not awaiting approval" in refused.stderr


def test_an_old_postgres_registry_is_migrated(tmp_path):
    import psycopg

    with pg_database() as url:
        with psycopg.connect(url, autocommit=True) as pg:
            pg.execute("""CREATE TABLE aiops_incidents (incident_id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL,
                status TEXT NOT NULL, title TEXT NOT NULL, mode TEXT NOT NULL, plan_id TEXT, plan_hash TEXT,
                source TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL)""")
            for i, created in enumerate(["2026-01-01T00:00:00+00:00", "2026-01-01T00:00:05+00:00"]):
                pg.execute("INSERT INTO aiops_incidents VALUES (%s, 'fp1', 'awaiting_approval', 'old', 'rules', %s, "
                           "'h', '{}', %s, %s)", [f"inc-old{i}", f"plan-old{i}", created, created])
        registry = IncidentRegistry(load_settings(AIOPS_DATA_DIR=tmp_path / "var", DATABASE_URL=url))
        rows = {r.incident_id: (r.status, r.decision_state) for r in registry.list()}
        assert rows == {"inc-old0": ("awaiting_approval", "pending"), "inc-old1": ("duplicate", None)}
        assert [d.outcome for d in registry.decisions("inc-old1")] == ["closed"]
        assert registry.claim_new(_row("inc-new", fingerprint="fp1"), "me") == "inc-old0"  # the index is there
