"""FileLogSource: plain text (ISO8601, syslog, no timestamps) and journald export files."""

from __future__ import annotations

import asyncio
import os
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.settings import load_settings
from tools.log_types import LogQuery, LogSourceError
from tools.logs.elasticsearch import ElasticsearchSource
from tools.logs.files import FileLogSource, parse_journal_export
from tools.logs.sources import log_source_from_settings

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
WIDE = LogQuery(start=datetime(2000, 1, 1, tzinfo=UTC), end=datetime(2100, 1, 1, tzinfo=UTC), limit=1000)


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def _touch(path: Path, when: datetime) -> None:
    os.utime(path, (when.timestamp(), when.timestamp()))


def test_iso_lines_levels_and_stack_trace_continuation(tmp_path: Path) -> None:
    log = tmp_path / "api.log"
    log.write_text(
        "2024-05-01T12:00:01.123Z INFO started\n"
        "2024-05-01 12:00:02,500 ERROR request failed\n"
        "  at handler (app.py:10)\n"
        "[2024-05-01T14:00:03+02:00] WARN slow query\n"
    )
    recs = run(FileLogSource(str(log)).search(WIDE))
    assert [r.level for r in recs] == ["info", "error", "warning"]
    assert recs[1].message == "ERROR request failed\n  at handler (app.py:10)"
    assert recs[1].timestamp == T0 + timedelta(seconds=2.5)
    assert recs[2].timestamp == T0 + timedelta(seconds=3)  # +02:00 converted to UTC
    assert {r.service for r in recs} == {"api"}


def test_syslog_lines_take_host_and_program(tmp_path: Path) -> None:
    log = tmp_path / "syslog"
    log.write_text(
        "May  1 12:00:05 web1 sshd[812]: Failed password for root from 10.0.0.1 port 22 ssh2\n"
        "May  1 12:00:06 web1 kernel: eth0: link down\n"
    )
    _touch(log, datetime(2024, 5, 2, tzinfo=UTC))
    recs = run(FileLogSource([str(log)]).search(WIDE))
    assert [(r.service, r.host) for r in recs] == [("sshd", "web1"), ("kernel", "web1")]
    assert recs[0].timestamp == T0 + timedelta(seconds=5) and recs[0].fields["pid"] == "812"
    only = run(FileLogSource([str(log)]).search(WIDE.model_copy(update={"service": "kernel"})))
    assert [r.message for r in only] == ["eth0: link down"]


def test_syslog_year_rolls_back_when_the_date_would_be_in_the_future(tmp_path: Path) -> None:
    log = tmp_path / "old.log"
    log.write_text("Dec 31 23:59:59 h app: last line of the year\n")
    _touch(log, datetime(2025, 1, 1, 0, 5, tzinfo=UTC))
    (rec,) = run(FileLogSource(str(log)).search(WIDE))
    assert rec.timestamp.year == 2024


def test_lines_without_timestamps_keep_file_order_at_mtime(tmp_path: Path) -> None:
    log = tmp_path / "plain.txt"
    log.write_text("first\nsecond ERROR\nthird\n")
    _touch(log, T0)
    recs = run(FileLogSource(str(log)).search(WIDE))
    assert [r.message for r in recs] == ["first", "second ERROR", "third"]
    assert {r.timestamp for r in recs} == {T0} and recs[1].level == "error"


def test_globs_filters_time_window_and_now(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_text("2024-05-01T12:00:00Z INFO a1\n2024-05-01T12:10:00Z ERROR a2 timeout\n")
    (tmp_path / "b.log").write_text("2024-05-01T12:05:00Z ERROR b1 timeout\n")
    src = FileLogSource(f"{tmp_path}/*.log")
    q = LogQuery(start=T0, end=T0 + timedelta(minutes=30), level="ERROR", text="TIMEOUT")
    assert [r.message for r in run(src.search(q))] == ["ERROR b1 timeout", "ERROR a2 timeout"]
    naive = q.model_copy(update={"start": datetime(2024, 5, 1, 12, 6), "end": datetime(2024, 5, 1, 12, 30)})
    assert [r.message for r in run(src.search(naive))] == ["ERROR a2 timeout"]
    replay = FileLogSource(f"{tmp_path}/*.log", now=T0 + timedelta(minutes=7))
    assert [r.message for r in run(replay.search(q))] == ["ERROR b1 timeout"]


def _field(key: str, value: bytes) -> bytes:
    if b"\n" in value or any(b < 32 and b not in (9,) for b in value):
        return key.encode() + b"\n" + struct.pack("<Q", len(value)) + value + b"\n"
    return key.encode() + b"=" + value + b"\n"


def _entry(fields: dict[str, bytes]) -> bytes:
    return b"".join(_field(k, v) for k, v in fields.items()) + b"\n"


def _journal_bytes() -> bytes:
    us = int(T0.timestamp() * 1_000_000)
    return (
        _entry({"__CURSOR": b"s=1;i=1", "__REALTIME_TIMESTAMP": str(us).encode(), "__MONOTONIC_TIMESTAMP": b"5",
                "_HOSTNAME": b"web1", "PRIORITY": b"3", "_SYSTEMD_UNIT": b"nginx.service",
                "SYSLOG_IDENTIFIER": b"nginx", "MESSAGE": b"upstream timed out"})
        + _entry({"__CURSOR": b"s=1;i=2", "__REALTIME_TIMESTAMP": str(us + 1_500_000).encode(),
                  "PRIORITY": b"6", "SYSLOG_IDENTIFIER": b"app",
                  "MESSAGE": b"multi\nline \x01 message", "_PID": b"42"})
    )


def test_journal_export_binary_fields_priorities_and_units(tmp_path: Path) -> None:
    recs = parse_journal_export(_journal_bytes())
    assert [(r.service, r.level, r.host) for r in recs] == [("nginx.service", "error", "web1"), ("app", "info", "")]
    assert recs[1].message == "multi\nline \x01 message"
    assert recs[1].timestamp == T0 + timedelta(seconds=1.5)
    path = tmp_path / "system.journal.export"
    path.write_bytes(_journal_bytes())
    src = FileLogSource(str(path))
    assert [r.message for r in run(src.search(WIDE.model_copy(update={"service": "nginx"})))] == ["upstream timed out"]
    assert len(run(src.search(WIDE.model_copy(update={"level": "err"})))) == 1


def test_truncated_journal_is_a_clear_error(tmp_path: Path) -> None:
    data = _journal_bytes()
    path = tmp_path / "cut.export"
    path.write_bytes(data[: data.index(b"multi") + 3])
    with pytest.raises(LogSourceError, match="truncated"):
        run(FileLogSource(str(path)).search(WIDE))


def test_source_choice_follows_settings(tmp_path: Path) -> None:
    assert isinstance(log_source_from_settings(load_settings(LOG_FILES=str(tmp_path / "*.log"))), FileLogSource)
    es = log_source_from_settings(load_settings(ELASTICSEARCH_URL="http://127.0.0.1:9"))
    assert isinstance(es, ElasticsearchSource) and es.index == "logs-*"
    run(es.close())
