"""What the self-healing guards remember: the automatic actions taken, and the run-time kill switch.

`aiops_auto_actions` holds one row per automatic action (target, action, the objects it acted on,
the alert's fingerprint, time, the rule that allowed it, and whether verification confirmed it).
The guards key on (action, target, object) as executed; the fingerprint a sender supplies is only
kept for the report. `decide_and_record` reads the history and
inserts the new rows in one exclusive transaction, so two workers deciding at once cannot both spend
the last action of a rate limit. `aiops_switches` holds the run-time switch that
`POST /api/v1/self-healing` flips; it lives in the database, so every worker and process sees it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel

from core.settings import Settings
from store.sql import SqlStore, Tx

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS aiops_auto_actions (
        id INTEGER PRIMARY KEY, incident_id TEXT NOT NULL, plan_id TEXT NOT NULL, fingerprint TEXT NOT NULL,
        target TEXT NOT NULL, action TEXT NOT NULL, rule TEXT NOT NULL, at DOUBLE PRECISION NOT NULL,
        verified INTEGER, object TEXT NOT NULL DEFAULT '')""",
    "CREATE INDEX IF NOT EXISTS aiops_auto_actions_at ON aiops_auto_actions (at)",
    "CREATE INDEX IF NOT EXISTS aiops_auto_actions_plan ON aiops_auto_actions (plan_id)",
    """CREATE TABLE IF NOT EXISTS aiops_switches (
        name TEXT PRIMARY KEY, enabled INTEGER NOT NULL, changed_by TEXT NOT NULL,
        changed_at DOUBLE PRECISION NOT NULL)""",
)
_PG_SCHEMA = tuple(s.replace("id INTEGER PRIMARY KEY", "id BIGSERIAL PRIMARY KEY") for s in _SCHEMA)
SWITCH = "self_healing"
HISTORY_HORIZON = timedelta(days=2)  # far longer than any window a guard looks at


class AutoAction(BaseModel):
    """One automatic action in the history the guards read ."""

    incident_id: str
    plan_id: str
    fingerprint: str
    target: str
    action: str
    rule: str
    at: datetime
    verified: bool | None = None  # None until verification ran (or when nothing could be verified)
    object: str = ""  # the objects it acted on besides the target ("vmid=101,node=pve-01", "path=/var/log")

    @property
    def key(self) -> tuple[str, str, str]:
        """What was executed: the guards compare this, never the sender's fingerprint."""
        return self.action, self.target, self.object


class SwitchState(BaseModel):
    enabled: bool
    changed_by: str = ""
    changed_at: datetime | None = None

    @property
    def note(self) -> str:
        if self.changed_at is None:
            return ""
        return f" by {self.changed_by} at {self.changed_at:%Y-%m-%d %H:%M:%S}Z"


Decide = Callable[[list[AutoAction], SwitchState], tuple[bool, str, str]]


class SelfHealingStore:
    def __init__(self, settings: Settings) -> None:
        self._db = SqlStore(settings, _PG_SCHEMA if settings.DATABASE_URL else _SCHEMA, "aiops-self-healing")
        with self._db.transaction() as tx:  # a database from before the object column: add it
            if settings.DATABASE_URL:
                tx.execute("ALTER TABLE aiops_auto_actions ADD COLUMN IF NOT EXISTS object TEXT NOT NULL DEFAULT ''")
            elif "object" not in {r[1] for r in tx.rows("PRAGMA table_info(aiops_auto_actions)")}:
                tx.execute("ALTER TABLE aiops_auto_actions ADD COLUMN object TEXT NOT NULL DEFAULT ''")

    def close(self) -> None:
        self._db.close()

    @staticmethod
    def _history(tx: Tx, since: datetime) -> list[AutoAction]:
        rows = tx.rows("SELECT incident_id, plan_id, fingerprint, target, action, rule, at, verified, object "
                       "FROM aiops_auto_actions WHERE at >= ? ORDER BY at, id", [since.timestamp()])
        return [AutoAction(incident_id=r[0], plan_id=r[1], fingerprint=r[2], target=r[3], action=r[4], rule=r[5],
                           at=datetime.fromtimestamp(r[6], UTC), verified=None if r[7] is None else bool(r[7]),
                           object=r[8] or "")
                for r in rows]

    @staticmethod
    def _switch(tx: Tx) -> SwitchState:
        rows = tx.rows("SELECT enabled, changed_by, changed_at FROM aiops_switches WHERE name = ?", [SWITCH])
        if not rows:
            return SwitchState(enabled=True)
        return SwitchState(enabled=bool(rows[0][0]), changed_by=rows[0][1],
                           changed_at=datetime.fromtimestamp(rows[0][2], UTC))

    def history(self, now: datetime) -> list[AutoAction]:
        with self._db.transaction() as tx:
            return self._history(tx, now - HISTORY_HORIZON)

    def decide_and_record(self, *, incident_id: str, plan_id: str, fingerprint: str,
                          actions: list[tuple[str, str, str]], now: datetime, decide: Decide) -> tuple[bool, str, str]:
        """Run `decide(history, switch)`; when it allows, record `actions` ((name, target, object)) at once."""
        with self._db.transaction() as tx:
            result = decide(self._history(tx, now - HISTORY_HORIZON), self._switch(tx))
            if result[0]:
                for name, target, obj in actions:
                    tx.execute("INSERT INTO aiops_auto_actions (incident_id, plan_id, fingerprint, target, action, "
                               "rule, at, object) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                               [incident_id, plan_id, fingerprint, target, name, result[1], now.timestamp(), obj])
        return result

    def forget(self, plan_id: str) -> None:
        with self._db.transaction() as tx:
            tx.execute("DELETE FROM aiops_auto_actions WHERE plan_id = ?", [plan_id])

    def set_verified(self, plan_id: str, verified: bool | None) -> None:
        with self._db.transaction() as tx:
            tx.execute("UPDATE aiops_auto_actions SET verified = ? WHERE plan_id = ?",
                       [None if verified is None else int(verified), plan_id])

    def switch(self) -> SwitchState:
        with self._db.transaction() as tx:
            return self._switch(tx)

    def set_switch(self, enabled: bool, by: str, now: datetime) -> SwitchState:
        with self._db.transaction() as tx:
            tx.execute("INSERT INTO aiops_switches (name, enabled, changed_by, changed_at) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT (name) DO UPDATE SET enabled = excluded.enabled, "
                       "changed_by = excluded.changed_by, changed_at = excluded.changed_at",
                       [SWITCH, int(enabled), by, now.timestamp()])
            return self._switch(tx)
