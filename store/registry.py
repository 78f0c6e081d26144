"""The incident registry: one row per incident, for listing, dedupe, plan-id lookup and decisions.

The graph's checkpoints hold the full state; this table is the index over them (SQLite file by
default, the same Postgres database as the checkpointer when DATABASE_URL is set). It is also where
a plan's decision is claimed, because only the store can make "exactly once" true across processes:

    pending --approve--> approved --> executing --> done
            --reject---> rejected ---------------> done
            --(too late)-------------------------> expired
    approved | rejected | executing --(owner died)--> interrupted --(explicit new decision)--> ...

    pending --(the incident is closed by a person)--> withdrawn   (never decided, never executed)

Each arrow is a compare-and-set (`UPDATE ... WHERE decision_state = <expected>`, rowcount checked):
of concurrent deciders exactly one sees rowcount 1. Every attempt, won or not, is appended to the
`aiops_decisions` audit table. A unique partial index allows one open incident per fingerprint.

The on-call columns (acknowledged, assignee, snoozed, closed: service/lifecycle.py) move by a
compare-and-set on the row's `version`, so two people changing one incident at once never lose an update;
each change is a line of the same audit trail (who, when, through which channel).
"""

from __future__ import annotations

import builtins
import json
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from core.models import utcnow
from core.settings import Settings
from store import pg as pgconn
from store.errors import StoreError, corrupted, is_corruption
from store.lease import owner_alive

OPEN_STATUSES = ("running", "awaiting_approval", "executing", "executed", "escalated")
# Open: being worked on, waiting for a human (approval, or escalated: a human has it), or executed but
# not verified. An interrupted execution stays open (a human must look at it); an analysis interrupted
# before any decision does not block the fingerprint (nothing ran), so the next alert starts afresh.
_OPEN_SQL = ("(status IN ('running', 'awaiting_approval', 'executing', 'executed', 'escalated') "
             "OR (status = 'interrupted' AND decision_state = 'interrupted'))")


class DecisionState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXECUTING = "executing"
    DONE = "done"
    INTERRUPTED = "interrupted"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"  # the incident was closed while its plan waited: it can never be decided


IN_FLIGHT = (DecisionState.APPROVED.value, DecisionState.REJECTED.value, DecisionState.EXECUTING.value)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS aiops_incidents (
    incident_id TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    status TEXT NOT NULL,
    title TEXT NOT NULL,
    mode TEXT NOT NULL,
    plan_id TEXT,
    plan_hash TEXT,
    source TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
)"""
_AUDIT = """
CREATE TABLE IF NOT EXISTS aiops_decisions (
    decision_id TEXT PRIMARY KEY,
    at TEXT NOT NULL,
    incident_id TEXT,
    plan_id TEXT NOT NULL,
    approver TEXT NOT NULL,
    channel TEXT NOT NULL,
    decision TEXT NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT NOT NULL
)"""
# Added after the first release: migrated into existing files with ALTER TABLE.
_DECISION_COLUMNS = ("decision_state", "decision", "decided_by", "decided_at", "owner", "heartbeat_at")
_INDEXES = ("CREATE INDEX IF NOT EXISTS aiops_incidents_fp ON aiops_incidents (fingerprint, status)",
            "CREATE INDEX IF NOT EXISTS aiops_incidents_plan ON aiops_incidents (plan_id)",
            "CREATE INDEX IF NOT EXISTS aiops_decisions_incident ON aiops_decisions (incident_id, at)",
            f"CREATE UNIQUE INDEX IF NOT EXISTS aiops_incidents_one_open ON aiops_incidents (fingerprint) "
            f"WHERE {_OPEN_SQL}")
# The on-call lifecycle (service/lifecycle.py), migrated the same way; `version` is its compare-and-set.
_LIFECYCLE_COLUMNS = ("ack_by", "ack_at", "assignee", "snoozed_until", "closed_by", "closed_at", "close_reason")
_COLUMNS = ("incident_id", "fingerprint", "status", "title", "mode", "plan_id", "plan_hash", "source",
            "created_at", "updated_at")
_ALL = _COLUMNS + _DECISION_COLUMNS + _LIFECYCLE_COLUMNS + ("version",)
_AUDIT_COLUMNS = ("decision_id", "at", "incident_id", "plan_id", "approver", "channel", "decision", "outcome",
                  "reason")


class IncidentRow(BaseModel):
    incident_id: str
    fingerprint: str
    status: str
    title: str
    mode: str
    plan_id: str | None = None
    plan_hash: str | None = None
    source: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    decision_state: str | None = None
    decision: str | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    owner: str | None = None  # host:pid:starttime of the process working on it right now
    heartbeat_at: datetime | None = None
    ack_by: str | None = None
    ack_at: datetime | None = None
    assignee: str | None = None
    snoozed_until: datetime | None = None
    closed_by: str | None = None
    closed_at: datetime | None = None
    close_reason: str | None = None
    version: int = 0  # bumped by every lifecycle change (the compare-and-set of service/lifecycle.py)


class DecisionRecord(BaseModel):
    """One line of the audit trail: a decision attempt and what became of it."""

    at: datetime
    incident_id: str | None
    plan_id: str
    approver: str
    channel: str
    decision: str
    outcome: str  # won | lost | refused | interrupted | closed | done (a lifecycle change)
    reason: str = ""


class IncidentRegistry:
    def __init__(self, settings: Settings) -> None:
        self._pg = settings.DATABASE_URL
        self._path = settings.AIOPS_DATA_DIR / "incidents.sqlite"
        with self._conn() as c:
            if self._pg:  # concurrent first starts must not race on CREATE TABLE / ALTER TABLE
                c.execute("SELECT pg_advisory_xact_lock(7341002)")
            c.execute(_SCHEMA)
            c.execute(_AUDIT)
            self._migrate(c)
            for stmt in _INDEXES:
                c.execute(stmt)

    # ------------------------------------------------------------------------------ plumbing --
    @contextmanager
    def _conn(self) -> Iterator[Any]:
        """One transaction. SQLite takes the write lock up front (BEGIN IMMEDIATE) so that two
        deciders serialise instead of both reading 'pending' and failing on the lock upgrade."""
        if self._pg:
            # Through the "postgres" breaker: StoreUnavailable when down (the API answers 503, a
            # worker waits); the statements are never retried, only the connect.
            with pgconn.outage_as_unavailable(), pgconn.connect(self._pg) as pg:  # commits on a clean exit
                yield _PgAdapter(pg)
            return
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self._path, timeout=30, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise corrupted(self._path, "incident registry", exc) from None
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if is_corruption(exc):
                raise corrupted(self._path, "incident registry", exc) from None
            raise
        finally:
            conn.close()

    def _migrate(self, c: Any) -> None:
        """Old data dirs: add the decision columns, mark their paused plans pending, and close all but
        the first of any open incidents that share a fingerprint (the unique index needs it)."""
        if self._pg:
            have = {r[0] for r in c.execute("SELECT column_name FROM information_schema.columns "
                                            "WHERE table_name = 'aiops_incidents'").fetchall()}
        else:
            have = {r[1] for r in c.execute("PRAGMA table_info(aiops_incidents)").fetchall()}
        for col in _LIFECYCLE_COLUMNS:
            if col not in have:
                c.execute(f"ALTER TABLE aiops_incidents ADD COLUMN {col} TEXT")
        if "version" not in have:
            c.execute("ALTER TABLE aiops_incidents ADD COLUMN version INTEGER NOT NULL DEFAULT 0")
        missing = [col for col in _DECISION_COLUMNS if col not in have]
        for col in missing:
            c.execute(f"ALTER TABLE aiops_incidents ADD COLUMN {col} TEXT")
        if not missing:
            return
        c.execute("UPDATE aiops_incidents SET decision_state = 'pending' "
                  "WHERE status = 'awaiting_approval' AND plan_id IS NOT NULL AND decision_state IS NULL")
        rows = c.execute(f"SELECT incident_id, fingerprint FROM aiops_incidents WHERE {_OPEN_SQL} "
                         "ORDER BY created_at").fetchall()
        first: dict[str, str] = {}
        for incident_id, fingerprint in rows:
            if fingerprint not in first:
                first[fingerprint] = incident_id
                continue
            c.execute("UPDATE aiops_incidents SET status = 'duplicate', decision_state = NULL "
                      "WHERE incident_id = ?", [incident_id])
            self._record(c, DecisionRecord(at=utcnow(), incident_id=incident_id, plan_id="-", approver="migration",
                                           channel="store", decision="-", outcome="closed",
                                           reason=f"duplicate of {first[fingerprint]} (one open incident per "
                                                  "fingerprint)"))

    # ------------------------------------------------------------------------------ incidents --
    def upsert(self, row: IncidentRow) -> None:
        """Write the index columns (not the decision columns: those move only by compare-and-set)."""
        values = row.model_dump(mode="json")
        values["source"] = json.dumps(row.source)
        cols = ", ".join(_COLUMNS)
        marks = ", ".join("?" for _ in _COLUMNS)
        # A run finishing after a person closed the incident does not reopen it.
        updates = ", ".join("status = CASE WHEN aiops_incidents.status = 'closed' THEN aiops_incidents.status "
                            "ELSE excluded.status END" if c == "status" else f"{c} = excluded.{c}"
                            for c in _COLUMNS if c not in ("incident_id", "created_at"))
        with self._conn() as c:
            c.execute(f"INSERT INTO aiops_incidents ({cols}) VALUES ({marks}) "
                      f"ON CONFLICT (incident_id) DO UPDATE SET {updates}", [values[k] for k in _COLUMNS])

    def claim_new(self, row: IncidentRow, owner: str) -> str | None:
        """Insert a new incident as `running`, owned by `owner`, at the start of its analysis.

        Returns None when it is now the one open incident of its fingerprint, else the id of the
        open incident it duplicates (the unique index refused the insert)."""
        values = row.model_dump(mode="json")
        values.update(source=json.dumps(row.source), owner=owner, heartbeat_at=utcnow().isoformat())
        cols = (*_COLUMNS, "owner", "heartbeat_at")
        with self._conn() as c:
            cur = c.execute(f"INSERT INTO aiops_incidents ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)}) "
                            "ON CONFLICT DO NOTHING", [values[k] for k in cols])
            if cur.rowcount == 1:
                return None
            if c.execute("SELECT 1 FROM aiops_incidents WHERE incident_id = ?", [row.incident_id]).fetchone():
                # The same incident again (a queue redelivered its alert after a worker died): take it over.
                c.execute("UPDATE aiops_incidents SET owner = ?, heartbeat_at = ? WHERE incident_id = ?",
                          [owner, values["heartbeat_at"], row.incident_id])
                return None
            found = c.execute(f"SELECT incident_id FROM aiops_incidents WHERE fingerprint = ? AND {_OPEN_SQL}",
                              [row.fingerprint]).fetchone()
        if found is None:  # it closed in between: try again
            return self.claim_new(row, owner)
        return str(found[0])

    def set_status(self, incident_id: str, status: str) -> None:
        with self._conn() as c:
            c.execute("UPDATE aiops_incidents SET status = ?, updated_at = ? WHERE incident_id = ?",
                      [status, utcnow().isoformat(), incident_id])

    def close(self, incident_id: str, status: str, reason: str) -> None:
        """Close an incident (its alert resolved). A plan still pending ends with it, in the audit trail.
        One a person closed stays closed (with their reason)."""
        with self._conn() as c:
            row = c.execute("SELECT plan_id, decision_state FROM aiops_incidents WHERE incident_id = ? "
                            "AND status <> 'closed'", [incident_id]).fetchone()
            c.execute("UPDATE aiops_incidents SET status = ?, updated_at = ?, decision_state = CASE "
                      "WHEN decision_state = 'pending' THEN 'done' ELSE decision_state END WHERE incident_id = ? "
                      "AND status <> 'closed'", [status, utcnow().isoformat(), incident_id])
            if row is not None and row[1] == DecisionState.PENDING.value:
                self._record(c, DecisionRecord(at=utcnow(), incident_id=incident_id, plan_id=row[0] or "-",
                                               approver="alertmanager", channel="store", decision="-",
                                               outcome="closed", reason=reason))

    def _rows(self, where: str, params: list[Any], limit: int = 1000) -> list[IncidentRow]:
        with self._conn() as c:
            cur = c.execute(f"SELECT {', '.join(_ALL)} FROM aiops_incidents {where} "
                            f"ORDER BY created_at DESC LIMIT {int(limit)}", params)
            rows = cur.fetchall()
        return [IncidentRow.model_validate({**dict(zip(_ALL, r, strict=True)),
                                            "source": json.loads(r[_ALL.index("source")])}) for r in rows]

    def open_incident(self, fingerprint: str) -> str | None:
        self.reap()
        rows = self._rows(f"WHERE fingerprint = ? AND {_OPEN_SQL}", [fingerprint], 1)
        return rows[0].incident_id if rows else None

    def by_plan(self, plan_id: str) -> IncidentRow | None:
        self.reap()
        rows = self._rows("WHERE plan_id = ?", [plan_id], 1)
        return rows[0] if rows else None

    def get(self, incident_id: str) -> IncidentRow | None:
        self.reap()
        rows = self._rows("WHERE incident_id = ?", [incident_id], 1)
        return rows[0] if rows else None

    def list(self, limit: int = 50, status: str | None = None) -> list[IncidentRow]:
        self.reap()
        if status:
            return self._rows("WHERE status = ?", [status], limit)
        return self._rows("", [], limit)

    # ------------------------------------------------------------------------------ decisions --
    def set_pending(self, incident_id: str, plan_id: str, owner: str) -> None:
        """The graph paused at the gate: the plan can now be decided (once)."""
        with self._conn() as c:
            c.execute("UPDATE aiops_incidents SET decision_state = 'pending', owner = NULL, heartbeat_at = NULL "
                      "WHERE incident_id = ? AND plan_id = ? AND (owner = ? OR owner IS NULL) AND status <> 'closed' "
                      "AND (decision_state IS NULL OR decision_state = 'pending')", [incident_id, plan_id, owner])

    def claim_decision(self, plan_id: str, *, decision: str, approver: str, owner: str,
                       expected: str = DecisionState.PENDING.value) -> bool:
        """The compare-and-set that makes a decision count: True for exactly one concurrent caller."""
        to = DecisionState.APPROVED if decision == "approve" else DecisionState.REJECTED
        now = utcnow().isoformat()
        with self._conn() as c:
            cur = c.execute(
                "UPDATE aiops_incidents SET decision_state = ?, decision = ?, decided_by = ?, decided_at = ?, "
                "owner = ?, heartbeat_at = ?, status = ?, updated_at = ? WHERE plan_id = ? AND decision_state = ? "
                "AND status <> 'closed'",
                [to.value, decision, approver, now, owner, now,
                 "executing" if to == DecisionState.APPROVED else "rejected", now, plan_id, expected])
            return bool(cur.rowcount == 1)

    def advance(self, incident_id: str, owner: str, to: DecisionState, *, status: str | None = None,
                expected: tuple[str, ...] = IN_FLIGHT) -> bool:
        """Move a claimed decision on; only its owner can (and not once it was declared dead)."""
        marks = ", ".join("?" for _ in expected)
        sets = "decision_state = ?, updated_at = ?" + (", status = ?" if status else "")
        params: list[Any] = [to.value, utcnow().isoformat(), *([status] if status else [])]
        with self._conn() as c:
            cur = c.execute(f"UPDATE aiops_incidents SET {sets} WHERE incident_id = ? AND owner = ? "
                            f"AND decision_state IN ({marks})", [*params, incident_id, owner, *expected])
            return bool(cur.rowcount == 1)

    def claim_execution(self, incident_id: str, plan_id: str, plan_hash: str, approver: str, owner: str) -> bool:
        """Execution starts (also for a policy auto-approval, which never paused): a crash from now on
        leaves the incident interrupted, and blocking, rather than silently re-runnable. False when the
        incident was closed by a person: its plan must not run."""
        now = utcnow().isoformat()
        with self._conn() as c:
            if c.execute("SELECT 1 FROM aiops_incidents WHERE incident_id = ? AND status = 'closed'",
                         [incident_id]).fetchone():
                return False
            c.execute("UPDATE aiops_incidents SET decision_state = 'executing', status = 'executing', plan_id = ?, "
                      "plan_hash = ?, decision = COALESCE(decision, 'approve'), "
                      "decided_by = COALESCE(decided_by, ?), decided_at = COALESCE(decided_at, ?), updated_at = ? "
                      "WHERE incident_id = ? AND owner = ?", [plan_id, plan_hash, approver, now, now, incident_id, owner])
        return True

    def release(self, incident_id: str, owner: str, decision_state: DecisionState | None = None) -> None:
        """The owner is done with the incident (its final state is in the row and the checkpoint)."""
        with self._conn() as c:
            if decision_state is not None:
                c.execute("UPDATE aiops_incidents SET decision_state = ? WHERE incident_id = ? AND owner = ? "
                          "AND decision_state IS NOT NULL AND decision_state <> 'pending'",
                          [decision_state.value, incident_id, owner])
            c.execute("UPDATE aiops_incidents SET owner = NULL, heartbeat_at = NULL WHERE incident_id = ? AND owner = ?",
                      [incident_id, owner])

    def adopt(self, incident_id: str, owner: str) -> None:
        """Take over an incident whose owner died (a queue redelivered its work to this process)."""
        with self._conn() as c:
            c.execute("UPDATE aiops_incidents SET owner = ?, heartbeat_at = ? WHERE incident_id = ?",
                      [owner, utcnow().isoformat(), incident_id])

    def heartbeat(self, incident_id: str, owner: str) -> None:
        with self._conn() as c:
            c.execute("UPDATE aiops_incidents SET heartbeat_at = ? WHERE incident_id = ? AND owner = ?",
                      [utcnow().isoformat(), incident_id, owner])

    def mark_interrupted(self, incident_id: str, owner: str, reason: str) -> bool:
        """Declare the owner's work interrupted (it died, or it failed with an exception).

        The compare-and-set includes the owner, so a claim that moved on (released, or taken over by
        an explicit new decision) is left alone."""
        with self._conn() as c:
            row = c.execute("SELECT decision_state, plan_id, decision, decided_by FROM aiops_incidents "
                            "WHERE incident_id = ? AND owner = ?", [incident_id, owner]).fetchone()
            if row is None:
                return False
            state, plan_id, decision, decided_by = row
            new_state = DecisionState.INTERRUPTED.value if state in IN_FLIGHT else state
            cur = c.execute("UPDATE aiops_incidents SET status = CASE WHEN status = 'closed' THEN status ELSE "
                            "'interrupted' END, decision_state = ?, owner = NULL, "
                            "heartbeat_at = NULL, updated_at = ? WHERE incident_id = ? AND owner = ?",
                            [new_state, utcnow().isoformat(), incident_id, owner])
            if cur.rowcount != 1:
                return False
            if state in IN_FLIGHT:
                self._record(c, DecisionRecord(at=utcnow(), incident_id=incident_id, plan_id=plan_id or "-",
                                               approver=decided_by or "?", channel="store", decision=decision or "-",
                                               outcome="interrupted", reason=reason))
            return True

    def reap(self) -> builtins.list[str]:
        """Find claims whose owner is dead and mark them interrupted. Returns the incident ids."""
        with self._conn() as c:
            rows = c.execute("SELECT incident_id, owner, heartbeat_at FROM aiops_incidents "
                             "WHERE owner IS NOT NULL").fetchall()
        reaped = []
        for incident_id, owner, beat in rows:
            beat_at = datetime.fromisoformat(beat) if beat else None
            if owner_alive(owner, beat_at):
                continue
            if self.mark_interrupted(incident_id, owner, f"owner {owner} stopped (no process, or no heartbeat "
                                                         f"since {beat})"):
                reaped.append(incident_id)
        return reaped

    # ------------------------------------------------------------------------------ lifecycle --
    def change(self, incident_id: str, version: int, sets: dict[str, Any], rec: DecisionRecord, *,
               where: str = "", withdraw: bool = False) -> bool:
        """One on-call change (service/lifecycle.py) as a compare-and-set on the row's `version`: True when
        the row still had `version` (and matched `where`); the change and its audit line are one
        transaction. `withdraw`: a plan still pending is withdrawn with it (it can never be decided)."""
        assert set(sets) <= set(_LIFECYCLE_COLUMNS) | {"status"}
        values = [v.isoformat() if isinstance(v, datetime) else v for v in sets.values()]
        assigns = "".join(f"{k} = ?, " for k in sets)
        if withdraw:
            assigns += "decision_state = CASE WHEN decision_state = 'pending' THEN 'withdrawn' ELSE decision_state END, "
        if "status" in sets:
            assigns += "updated_at = ?, "
            values.append(utcnow().isoformat())
        with self._conn() as c:
            cur = c.execute(f"UPDATE aiops_incidents SET {assigns}version = version + 1 "
                            f"WHERE incident_id = ? AND version = ?{' AND ' + where if where else ''}",
                            [*values, incident_id, version])
            if cur.rowcount != 1:
                return False
            self._record(c, rec)
            return True

    # ------------------------------------------------------------------------------ audit trail --
    @staticmethod
    def _record(c: Any, rec: DecisionRecord) -> None:
        values = rec.model_dump(mode="json")
        values["decision_id"] = uuid.uuid4().hex
        c.execute(f"INSERT INTO aiops_decisions ({', '.join(_AUDIT_COLUMNS)}) "
                  f"VALUES ({', '.join('?' for _ in _AUDIT_COLUMNS)})", [values[k] for k in _AUDIT_COLUMNS])

    def record(self, rec: DecisionRecord) -> None:
        with self._conn() as c:
            self._record(c, rec)

    def decisions(self, incident_id: str) -> builtins.list[DecisionRecord]:
        with self._conn() as c:
            rows = c.execute(f"SELECT {', '.join(_AUDIT_COLUMNS)} FROM aiops_decisions WHERE incident_id = ? "
                             "ORDER BY at", [incident_id]).fetchall()
        return [DecisionRecord.model_validate(dict(zip(_AUDIT_COLUMNS, r, strict=True))) for r in rows]

    def status_counts(self) -> dict[str, int]:
        """Incidents per status (for /metrics)."""
        with self._conn() as c:
            rows = c.execute("SELECT status, COUNT(*) FROM aiops_incidents GROUP BY status").fetchall()
        return {str(status): int(count) for status, count in rows}

    def oldest_pending_since(self) -> datetime | None:
        """When the longest-waiting plan started waiting for a human (for /metrics), or None.

        A paused run's row is written (`updated_at`) when it reaches the gate, and nothing rewrites it
        while the plan is pending: correlated alerts join elsewhere, a decision moves `decision_state`."""
        with self._conn() as c:
            row = c.execute("SELECT MIN(updated_at) FROM aiops_incidents WHERE status = 'awaiting_approval' "
                            "AND decision_state = 'pending'").fetchone()
        return datetime.fromisoformat(row[0]) if row and row[0] else None


class _PgAdapter:
    """Lets the sqlite-flavoured SQL above ('?' placeholders) run on psycopg."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, params: list[Any] | None = None) -> Any:
        return self._conn.execute(sql.replace("?", "%s"), params or [])


__all__ = ["DecisionRecord", "DecisionState", "IncidentRegistry", "IncidentRow", "StoreError"]
