"""The incident registry: one row per incident, for listing, dedupe and plan-id lookup.

The graph's checkpoints hold the full state; this table is the index over them (SQLite file by
default, the same Postgres database as the checkpointer when DATABASE_URL is set).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from core.models import utcnow
from core.settings import Settings

OPEN_STATUSES = ("running", "awaiting_approval", "executed", "escalated")  # escalated: a human has it

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
_INDEXES = ("CREATE INDEX IF NOT EXISTS aiops_incidents_fp ON aiops_incidents (fingerprint, status)",
            "CREATE INDEX IF NOT EXISTS aiops_incidents_plan ON aiops_incidents (plan_id)")
_COLUMNS = ("incident_id", "fingerprint", "status", "title", "mode", "plan_id", "plan_hash", "source",
            "created_at", "updated_at")


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


class IncidentRegistry:
    def __init__(self, settings: Settings) -> None:
        self._pg = settings.DATABASE_URL
        self._path = settings.AIOPS_DATA_DIR / "incidents.sqlite"
        with self._conn() as c:
            c.execute(_SCHEMA)
            for stmt in _INDEXES:
                c.execute(stmt)

    @contextmanager
    def _conn(self) -> Iterator[Any]:
        if self._pg:
            import psycopg

            with psycopg.connect(self._pg, autocommit=True) as pg:
                yield _PgAdapter(pg)
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self._path, timeout=30)
        try:
            with conn:
                yield conn
        finally:
            conn.close()

    def upsert(self, row: IncidentRow) -> None:
        values = row.model_dump(mode="json")
        values["source"] = json.dumps(row.source)
        cols = ", ".join(_COLUMNS)
        marks = ", ".join("?" for _ in _COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c not in ("incident_id", "created_at"))
        with self._conn() as c:
            c.execute(f"INSERT INTO aiops_incidents ({cols}) VALUES ({marks}) "
                      f"ON CONFLICT (incident_id) DO UPDATE SET {updates}", [values[k] for k in _COLUMNS])

    def set_status(self, incident_id: str, status: str) -> None:
        with self._conn() as c:
            c.execute("UPDATE aiops_incidents SET status = ?, updated_at = ? WHERE incident_id = ?",
                      [status, utcnow().isoformat(), incident_id])

    def _rows(self, where: str, params: list[Any], limit: int = 1000) -> list[IncidentRow]:
        with self._conn() as c:
            cur = c.execute(f"SELECT {', '.join(_COLUMNS)} FROM aiops_incidents {where} "
                            f"ORDER BY created_at DESC LIMIT {int(limit)}", params)
            rows = cur.fetchall()
        return [IncidentRow.model_validate({**dict(zip(_COLUMNS, r, strict=True)),
                                            "source": json.loads(r[_COLUMNS.index("source")])}) for r in rows]

    def open_incident(self, fingerprint: str) -> str | None:
        marks = ", ".join("?" for _ in OPEN_STATUSES)
        rows = self._rows(f"WHERE fingerprint = ? AND status IN ({marks})", [fingerprint, *OPEN_STATUSES], 1)
        return rows[0].incident_id if rows else None

    def by_plan(self, plan_id: str) -> IncidentRow | None:
        rows = self._rows("WHERE plan_id = ?", [plan_id], 1)
        return rows[0] if rows else None

    def get(self, incident_id: str) -> IncidentRow | None:
        rows = self._rows("WHERE incident_id = ?", [incident_id], 1)
        return rows[0] if rows else None

    def list(self, limit: int = 50, status: str | None = None) -> list[IncidentRow]:
        if status:
            return self._rows("WHERE status = ?", [status], limit)
        return self._rows("", [], limit)

    def status_counts(self) -> dict[str, int]:
        """Incidents per status (for /metrics)."""
        with self._conn() as c:
            rows = c.execute("SELECT status, COUNT(*) FROM aiops_incidents GROUP BY status").fetchall()
        return {str(status): int(count) for status, count in rows}


class _PgAdapter:
    """Lets the sqlite-flavoured SQL above ('?' placeholders) run on psycopg."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, params: list[Any] | None = None) -> Any:
        return self._conn.execute(sql.replace("?", "%s"), params or [])
