"""The correlation index: which open incident an alert belongs to, answered by index look-ups.

Three tables beside the incident registry:

- `aiops_corr_incidents`: incidents that can still take related alerts (closed when all their alerts
  resolved or a fix resolved the incident),
- `aiops_corr_keys`: the keys an incident is known by (fingerprint, group and target, service, target, topology
  node) with when each was last seen. Correlating an alert is one indexed `key IN (...)` look-up,
  never a scan of incidents, so a storm of 10,000 alerts costs 10,000 look-ups;
- `aiops_corr_alerts`: every alert of an incident (the one that opened it and the related ones), with
  why it joined and whether it is still firing, so a resolved alert closes only what it belongs to;
- `aiops_corr_notifications`: where each notification landed (keyed by the incident id it would open,
  which is derived from its content): admitting the same notification again (the webhook answers with
  the landing at once, the worker runs it later; a re-send; a redelivery) gives the same answer, however
  long after, for as long as that incident is open.

An incident id is derived from the notification that opens it, so the same notification may open the
same id again after it closed (e.g. it was re-sent after its run was dead-lettered): that re-opens the
row, it is not a second incident.

`correlate` and `resolve` each run in one exclusive transaction: two workers that receive alerts of
the same problem at the same instant still open one incident.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime

from core.models import RelatedAlert
from core.settings import Settings
from store.sql import SqlStore, Tx, marks

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS aiops_corr_incidents (
        incident_id TEXT PRIMARY KEY, opened_at DOUBLE PRECISION NOT NULL,
        last_seen DOUBLE PRECISION NOT NULL, closed_at DOUBLE PRECISION)""",
    """CREATE TABLE IF NOT EXISTS aiops_corr_keys (
        key TEXT NOT NULL, incident_id TEXT NOT NULL, origin TEXT NOT NULL,
        last_seen DOUBLE PRECISION NOT NULL, PRIMARY KEY (key, incident_id))""",
    """CREATE TABLE IF NOT EXISTS aiops_corr_alerts (
        incident_id TEXT NOT NULL, fingerprint TEXT NOT NULL, alertname TEXT NOT NULL,
        service TEXT NOT NULL, target TEXT NOT NULL, reason TEXT NOT NULL, status TEXT NOT NULL,
        joined_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (incident_id, fingerprint))""",
    """CREATE TABLE IF NOT EXISTS aiops_corr_notifications (
        notification_id TEXT PRIMARY KEY, incident_id TEXT NOT NULL, reason TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS aiops_corr_notifications_inc ON aiops_corr_notifications (incident_id)",
    "CREATE INDEX IF NOT EXISTS aiops_corr_keys_seen ON aiops_corr_keys (key, last_seen)",
    "CREATE INDEX IF NOT EXISTS aiops_corr_alerts_fp ON aiops_corr_alerts (fingerprint, status)",
)


@dataclass(frozen=True)
class Key:
    """One thing an alert is known by. Lower `rank` wins when several open incidents match."""

    kind: str  # fingerprint | group | service | target | topology
    value: str
    rank: int

    @property
    def text(self) -> str:
        return f"{self.kind}:{self.value}"


@dataclass(frozen=True)
class Member:
    """An alert to record under an incident."""

    fingerprint: str
    alertname: str
    service: str
    target: str
    reason: str


@dataclass(frozen=True)
class Match:
    incident_id: str
    key: Key
    origin: str  # the service of the alert that registered the key on the incident


@dataclass(frozen=True)
class Landing:
    """Where a notification landed: the open incident it joined (`joined`, with why), or the one it opened."""

    incident_id: str
    joined: bool
    reason: str


def _ts(when: datetime) -> float:
    return when.timestamp()


class CorrelationStore:
    def __init__(self, settings: Settings) -> None:
        self._db = SqlStore(settings, _SCHEMA, "aiops-correlation")

    def close(self) -> None:
        self._db.close()

    def batch(self) -> AbstractContextManager[object]:
        """One transaction around several calls on this thread (group commit): each call inside is a
        savepoint of it (undone alone if it raises), and all of them are committed together on exit,
        or none if the commit fails. The webhook's admissions of concurrent requests share one."""
        return self._db.transaction()

    def correlate(self, keys: list[Key], origin: str, members: list[Member], new_incident_id: str,
                  now: datetime, window_seconds: float, reason_for: Callable[[Match], str],
                  defer_join: bool = False) -> Landing:
        """Join the best-matching open incident seen within the window, or open `new_incident_id`.

        A notification admitted before (the same `new_incident_id`) lands where it landed then while that
        incident is open. Otherwise the members are recorded under the match, with `reason_for(match)`,
        or under `new_incident_id`, opened (or re-opened) for them. `defer_join` (the webhook's hot path)
        records only where a joining notification landed; its keys and alerts are recorded when its run
        admits it again. An incident it opens is recorded at once, so the rest of a storm joins it.
        """
        if not keys:
            raise ValueError("an alert has at least its fingerprint as a key")
        by_text = {k.text: k for k in keys}
        now_ts = _ts(now)
        with self._db.transaction() as tx:
            before = tx.rows(
                "SELECT n.incident_id, n.reason FROM aiops_corr_notifications n JOIN aiops_corr_incidents i "
                "ON i.incident_id = n.incident_id WHERE n.notification_id = ? AND i.closed_at IS NULL",
                [new_incident_id])
            if before:
                incident_id, reason = before[0]
                if incident_id != new_incident_id:
                    members = [Member(m.fingerprint, m.alertname, m.service, m.target, reason) for m in members]
                self._record(tx, incident_id, keys, origin, members, now_ts)
                return Landing(incident_id=incident_id, joined=True, reason=reason)
            rows = tx.rows(
                "SELECT k.key, k.incident_id, k.origin, k.last_seen FROM aiops_corr_keys k "
                "JOIN aiops_corr_incidents i ON i.incident_id = k.incident_id "
                f"WHERE k.key IN ({marks(len(by_text))}) AND k.last_seen >= ? AND i.closed_at IS NULL",
                [*by_text, now_ts - window_seconds])
            if rows:
                # Best key kind first, then the most recently active incident.
                key_text, incident_id, key_origin, _ = min(rows, key=lambda r: (by_text[r[0]].rank, -r[3]))
                reason = reason_for(Match(incident_id=incident_id, key=by_text[key_text], origin=key_origin))
                if not defer_join:
                    self._record(tx, incident_id, keys, origin, [
                        Member(m.fingerprint, m.alertname, m.service, m.target, reason) for m in members], now_ts)
                self._admit(tx, new_incident_id, incident_id, reason)
                return Landing(incident_id=incident_id, joined=True, reason=reason)
            tx.execute("INSERT INTO aiops_corr_incidents (incident_id, opened_at, last_seen) VALUES (?, ?, ?) "
                       "ON CONFLICT (incident_id) DO UPDATE SET closed_at = NULL, last_seen = excluded.last_seen",
                       [new_incident_id, now_ts, now_ts])
            self._record(tx, new_incident_id, keys, origin, members, now_ts)
            self._admit(tx, new_incident_id, new_incident_id, "opened the incident")
            return Landing(incident_id=new_incident_id, joined=False, reason="no open incident matches")

    @staticmethod
    def _admit(tx: Tx, notification_id: str, incident_id: str, reason: str) -> None:
        tx.execute("INSERT INTO aiops_corr_notifications (notification_id, incident_id, reason) VALUES (?, ?, ?) "
                   "ON CONFLICT (notification_id) DO UPDATE SET incident_id = excluded.incident_id, "
                   "reason = excluded.reason", [notification_id, incident_id, reason])

    @staticmethod
    def _record(t: Tx, incident_id: str, keys: list[Key], origin: str, members: list[Member],
                now_ts: float) -> None:
        for k in keys:
            t.execute("INSERT INTO aiops_corr_keys (key, incident_id, origin, last_seen) VALUES (?, ?, ?, ?) "
                      "ON CONFLICT (key, incident_id) DO UPDATE SET last_seen = excluded.last_seen",
                      [k.text, incident_id, origin, now_ts])
        for m in members:
            t.execute("INSERT INTO aiops_corr_alerts (incident_id, fingerprint, alertname, service, target, "
                      "reason, status, joined_at) VALUES (?, ?, ?, ?, ?, ?, 'firing', ?) "
                      "ON CONFLICT (incident_id, fingerprint) DO UPDATE SET status = 'firing'",
                      [incident_id, m.fingerprint, m.alertname, m.service, m.target, m.reason, now_ts])
        t.execute("UPDATE aiops_corr_incidents SET last_seen = ? WHERE incident_id = ?",
                  [now_ts, incident_id])

    def resolve(self, fingerprints: list[str], now: datetime) -> tuple[list[str], list[str]]:
        """Mark these alerts resolved in the open incidents they belong to.

        Returns (incidents they belonged to, those of them now closed because no alert is firing).
        An incident with other alerts still firing stays open: a resolved alert closes only its own.
        """
        if not fingerprints:
            return [], []
        with self._db.transaction() as tx:
            owners = [r[0] for r in tx.rows(
                "SELECT DISTINCT a.incident_id FROM aiops_corr_alerts a JOIN aiops_corr_incidents i "
                "ON i.incident_id = a.incident_id WHERE i.closed_at IS NULL "
                f"AND a.fingerprint IN ({marks(len(fingerprints))})", fingerprints)]
            closed = []
            for incident_id in owners:
                tx.execute(f"UPDATE aiops_corr_alerts SET status = 'resolved' WHERE incident_id = ? "
                           f"AND fingerprint IN ({marks(len(fingerprints))})", [incident_id, *fingerprints])
                firing = tx.rows("SELECT COUNT(*) FROM aiops_corr_alerts WHERE incident_id = ? "
                                 "AND status = 'firing'", [incident_id])[0][0]
                if firing == 0:
                    self._close(tx, incident_id, now)
                    closed.append(incident_id)
        return owners, closed

    def close_incident(self, incident_id: str, now: datetime) -> None:
        """No more joins: the incident was resolved (e.g. a verified fix); a new alert opens a new one."""
        with self._db.transaction() as tx:
            self._close(tx, incident_id, now)

    @staticmethod
    def _close(tx: Tx, incident_id: str, now: datetime) -> None:
        # A closed incident is never matched again: its keys go (the index stays the size of what is open);
        # its alerts stay, for the report.
        tx.execute("UPDATE aiops_corr_incidents SET closed_at = ? WHERE incident_id = ? AND closed_at IS NULL",
                   [_ts(now), incident_id])
        tx.execute("DELETE FROM aiops_corr_keys WHERE incident_id = ?", [incident_id])
        tx.execute("DELETE FROM aiops_corr_notifications WHERE incident_id = ?", [incident_id])

    def open_incident_of(self, fingerprint: str) -> str | None:
        """The open incident this alert is firing in (as the one that opened it or as a related alert)."""
        with self._db.transaction() as tx:
            rows = tx.rows("SELECT a.incident_id FROM aiops_corr_alerts a JOIN aiops_corr_incidents i "
                           "ON i.incident_id = a.incident_id WHERE a.fingerprint = ? AND a.status = 'firing' "
                           "AND i.closed_at IS NULL ORDER BY a.joined_at DESC LIMIT 1", [fingerprint])
        return rows[0][0] if rows else None

    def is_open(self, incident_id: str) -> bool:
        with self._db.transaction() as tx:
            rows = tx.rows("SELECT closed_at FROM aiops_corr_incidents WHERE incident_id = ?", [incident_id])
        return bool(rows) and rows[0][0] is None

    def related(self, incident_id: str, limit: int = 100) -> tuple[list[RelatedAlert], int]:
        """The alerts that joined the incident (not the ones that opened it), oldest first, and their count."""
        with self._db.transaction() as tx:
            total = tx.rows("SELECT COUNT(*) FROM aiops_corr_alerts WHERE incident_id = ? AND reason NOT LIKE ?",
                            [incident_id, "opened%"])[0][0]
            rows = tx.rows("SELECT fingerprint, alertname, service, target, reason, status, joined_at "
                           "FROM aiops_corr_alerts WHERE incident_id = ? AND reason NOT LIKE ? "
                           f"ORDER BY joined_at, fingerprint LIMIT {int(limit)}", [incident_id, "opened%"])
        return [RelatedAlert(fingerprint=r[0], alertname=r[1], service=r[2], target=r[3], reason=r[4],
                             status=r[5], joined_at=datetime.fromtimestamp(r[6], UTC)) for r in rows], int(total)
