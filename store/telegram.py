"""What the bot must remember across restarts: which message shows which incident, and who was refused.

One SQLite file in `$AIOPS_DATA_DIR/telegram.sqlite`, shared by the bot and the notifier (any process
on the data dir): the notifier sends an incident card, the bot edits that same message after a press,
and a later event (executed, verified) edits it again. `stage` orders the edits, so a late retry of an
older event never overwrites a newer card.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from store.errors import named_if_corrupted

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS cards (
        incident_id TEXT NOT NULL, chat_id INTEGER NOT NULL, message_id INTEGER NOT NULL,
        stage INTEGER NOT NULL, updated_at REAL NOT NULL, PRIMARY KEY (incident_id, chat_id))""",
    """CREATE TABLE IF NOT EXISTS pings (
        incident_id TEXT NOT NULL, chat_id INTEGER NOT NULL, kind TEXT NOT NULL, at REAL NOT NULL,
        PRIMARY KEY (incident_id, chat_id, kind))""",
    """CREATE TABLE IF NOT EXISTS strangers (
        user_id INTEGER PRIMARY KEY, username TEXT, first_seen REAL NOT NULL, attempts INTEGER NOT NULL)""",
)


def telegram_store(settings: Any) -> TelegramStore:
    return TelegramStore(settings.AIOPS_DATA_DIR / "telegram.sqlite")


class Card(BaseModel):
    incident_id: str
    chat_id: int
    message_id: int
    stage: int
    photo: bool = False  # the card is a chart's caption (edited with editMessageCaption)


class TelegramStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with named_if_corrupted(path, "telegram cards"), self._conn() as c:
            for stmt in _SCHEMA:
                c.execute(stmt)
            if "photo" not in {r[1] for r in c.execute("PRAGMA table_info(cards)")}:  # a store from before charts
                c.execute("ALTER TABLE cards ADD COLUMN photo INTEGER NOT NULL DEFAULT 0")

    @contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=30)
        try:
            with conn:
                yield conn
        finally:
            conn.close()

    def cards(self, incident_id: str) -> list[Card]:
        with self._conn() as c:
            rows = c.execute("SELECT incident_id, chat_id, message_id, stage, photo FROM cards WHERE incident_id = ?",
                             [incident_id]).fetchall()
        return [Card(incident_id=r[0], chat_id=r[1], message_id=r[2], stage=r[3], photo=bool(r[4])) for r in rows]

    def card_at(self, chat_id: int, message_id: int) -> Card | None:
        with self._conn() as c:
            r = c.execute("SELECT incident_id, chat_id, message_id, stage, photo FROM cards WHERE chat_id = ? AND "
                          "message_id = ?", [chat_id, message_id]).fetchone()
        return Card(incident_id=r[0], chat_id=r[1], message_id=r[2], stage=r[3], photo=bool(r[4])) if r else None

    def save_card(self, incident_id: str, chat_id: int, message_id: int, stage: int, photo: bool = False) -> None:
        with self._conn() as c:
            c.execute("INSERT INTO cards (incident_id, chat_id, message_id, stage, updated_at, photo) "
                      "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (incident_id, chat_id) DO UPDATE SET "
                      "message_id = excluded.message_id, stage = excluded.stage, updated_at = excluded.updated_at, "
                      "photo = excluded.photo", [incident_id, chat_id, message_id, stage, time.time(), int(photo)])

    def advance(self, incident_id: str, chat_id: int, stage: int) -> bool:
        """Claim the right to show `stage` on this card: False when a newer stage is already shown."""
        with self._conn() as c:
            cur = c.execute("UPDATE cards SET stage = ?, updated_at = ? WHERE incident_id = ? AND chat_id = ? "
                            "AND stage <= ?", [stage, time.time(), incident_id, chat_id, stage])
            return cur.rowcount == 1

    def pinged(self, incident_id: str, chat_id: int, kind: str) -> bool:
        with self._conn() as c:
            return c.execute("SELECT 1 FROM pings WHERE incident_id = ? AND chat_id = ? AND kind = ?",
                             [incident_id, chat_id, kind]).fetchone() is not None

    def mark_pinged(self, incident_id: str, chat_id: int, kind: str) -> None:
        """An extra message (an escalation) went to this chat: a retry of the event must not repeat it."""
        with self._conn() as c:
            c.execute("INSERT OR IGNORE INTO pings VALUES (?, ?, ?, ?)", [incident_id, chat_id, kind, time.time()])

    def first_refusal(self, user_id: int, username: str | None) -> bool:
        """Record an unknown user; True only the first time (they are answered once, then ignored)."""
        with self._conn() as c:
            cur = c.execute("INSERT INTO strangers VALUES (?, ?, ?, 1) ON CONFLICT (user_id) DO UPDATE SET "
                            "attempts = attempts + 1", [user_id, username, time.time()])
            row = c.execute("SELECT attempts FROM strangers WHERE user_id = ?", [user_id]).fetchone()
            del cur
            return bool(row and row[0] == 1)
