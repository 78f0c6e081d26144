"""Event lines: JSON or text, bounded, and an alert's text cannot forge a line or a field."""

from __future__ import annotations

import io
import json
import logging

from core.events import EVENTS, MAX_VALUE, JsonFormatter, TextFormatter, configure_logging, event
from core.settings import Settings


def emit(formatter: logging.Formatter, **fields) -> str:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    logger = logging.getLogger(EVENTS)
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        event("alert.received", "1 alert(s) received", **fields)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)
    return out.getvalue()


def test_json_line_carries_the_fields() -> None:
    line = emit(JsonFormatter(), alerts=1, incident_ids=["inc-1", "inc-2"], group_key="x" * 5000, missing=None)
    (obj,) = [json.loads(ln) for ln in line.splitlines()]
    assert obj["event"] == "alert.received" and obj["msg"] == "1 alert(s) received" and obj["alerts"] == 1
    assert obj["incident_ids"] == ["inc-1", "inc-2"] and len(obj["group_key"]) == MAX_VALUE
    assert obj["ts"].endswith("+00:00") and obj["level"] == "INFO" and obj["missing"] is None


def test_text_line_quotes_what_could_forge_a_field_or_a_line() -> None:
    line = emit(TextFormatter(), alertname='Disk\nFAKE event=incident.closed', target="web-01", empty="")
    assert line.count("\n") == 1  # one line, whatever the alert says
    assert " event=alert.received " in line and " target=web-01" in line
    assert 'alertname="Disk\\nFAKE event=incident.closed"' in line and 'empty=""' in line


def test_configure_logging_sets_format_and_level(capsys) -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        configure_logging("WARNING", "json")
        event("incident.opened", "not shown at WARNING", incident_id="inc-1")
        logging.getLogger("aiops.test").warning("shown")
        err = capsys.readouterr().err.splitlines()
        assert [json.loads(ln)["msg"] for ln in err] == ["shown"]
        # the default of `aiops serve`: warnings, plus the event lines
        configure_logging("WARNING", "text", events_level="INFO")
        event("incident.opened", "an event", incident_id="inc-1")
        logging.getLogger("aiops.test").info("other INFO lines stay quiet")
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and "an event event=incident.opened incident_id=inc-1" in err[0]
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in handlers:
            root.addHandler(h)
        root.setLevel(level)
        logging.getLogger(EVENTS).setLevel(logging.NOTSET)


def test_settings_accept_any_case() -> None:
    s = Settings(LOG_LEVEL="info", LOG_FORMAT="JSON")  # type: ignore[arg-type]
    assert (s.LOG_LEVEL, s.LOG_FORMAT) == ("INFO", "json")


def test_text_line_time_is_the_records_second_in_utc() -> None:
    """The text format keeps the last second's text (one strftime a second): the same text as before."""
    from datetime import UTC, datetime

    formatter = TextFormatter()
    for created in (0.0, 1.5, 1733480000.999, 1733480001.0, 1733480000.2, 4102444800.5):
        record = logging.LogRecord("aiops.events", logging.INFO, __file__, 1, "m", None, None)
        record.created = created
        expected = datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert formatter.format(record).startswith(f"{expected} INFO aiops.events: m"), created
