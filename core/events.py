"""What the service does, one structured log line per event: an alert received, an incident opened,
joined or closed, a plan proposed, a decision, an action executed, a verification.

Every line names its event and the ids it is about (`incident_id`, `plan_id`, ...). With
`LOG_FORMAT=json` every log line of the process (these and the rest) is one JSON object, for a log
shipper; otherwise a readable line with `key=value` pairs. `LOG_LEVEL` sets the level (these lines
are INFO). Values come from alerts (untrusted): each is bounded, and in text lines quoted when it
holds a space, a quote or a control character, so no value can forge a second line or a field.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from datetime import UTC, datetime
from typing import Literal

EVENTS = "aiops.events"
MAX_VALUE = 300  # characters of one field's value
MAX_ITEMS = 20  # items of one list field

Value = str | int | float | bool | None | list[str]
_log = logging.getLogger(EVENTS)


def _bounded(value: Value) -> Value:
    if isinstance(value, str):
        return value[:MAX_VALUE]
    if isinstance(value, list):
        return [str(v)[:MAX_VALUE] for v in value[:MAX_ITEMS]]
    return value


def event(name: str, message: str, **fields: Value) -> None:
    """Log one event line (INFO on the `aiops.events` logger): `name` is the event's kind (e.g.
    "incident.opened"), `message` the readable sentence, `fields` the ids and facts."""
    if _log.isEnabledFor(logging.INFO):
        _log.info(message, extra={"event": name, "fields": {k: _bounded(v) for k, v in fields.items()}})


_QUOTED = re.compile(r'[ "=\\]')  # a value with one of these is quoted (as is an empty or unprintable one)


def _text_value(value: object) -> str:
    text = ",".join(value) if isinstance(value, list) else str(value)
    if text == "" or _QUOTED.search(text) or not text.isprintable():
        return json.dumps(text)
    return text


class TextFormatter(logging.Formatter):
    """`2026-03-10T12:00:00Z INFO aiops.events: incident opened event=incident.opened incident_id=inc-…`"""

    _second: tuple[int, str] = (-1, "")  # the last second formatted, and its text (one strftime a second)

    def _when(self, created: float) -> str:
        second = int(created)
        if second != self._second[0]:
            self._second = (second, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second)))
        return self._second[1]

    def format(self, record: logging.LogRecord) -> str:
        line = f"{self._when(record.created)} {record.levelname} {record.name}: {record.getMessage()}"
        name = getattr(record, "event", None)
        if name:
            pairs = {"event": name, **getattr(record, "fields", {})}
            line += " " + " ".join(f"{k}={_text_value(v)}" for k, v in pairs.items() if v is not None)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, and for events `event` and its fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "msg": record.getMessage()}
        name = getattr(record, "event", None)
        if name:
            out["event"] = name
            for k, v in getattr(record, "fields", {}).items():
                out.setdefault(k, v)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure_logging(level: str, fmt: Literal["text", "json"], *, events_level: str | None = None) -> None:
    """The root logger's one handler (stderr), in `fmt`, at `level`: replaces any handler set before.
    `events_level` sets the event lines' own level (e.g. INFO while everything else stays at WARNING)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Neither format prints the thread's or the process's name or id: a record need not look them up
    # (a few µs of every line, one line per webhook request).
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging.getLogger(EVENTS).setLevel(events_level or logging.NOTSET)
    # Client libraries log every HTTP request (a Telegram long poll, a model call) at INFO: only from DEBUG.
    for noisy in ("httpx", "httpcore", "aiogram.event"):
        logging.getLogger(noisy).setLevel(level if level == "DEBUG" else "WARNING")
