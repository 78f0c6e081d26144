"""`LogSource` over local files, the embedded default: plain text (ISO8601 / syslog) and journald export."""

from __future__ import annotations

import asyncio
import glob
import os
import re
import struct
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from core.models import utc
from tools.log_types import LogQuery, LogRecord, LogSourceError

_LEVEL_WORD = re.compile(
    r"\b(FATAL|CRITICAL|CRIT|EMERG|ALERT|PANIC|SEVERE|ERROR|ERR|WARNING|WARN|NOTICE|INFO|DEBUG|TRACE)\b"
)
_LEVEL_ALIASES = {"err": "error", "warn": "warning", "crit": "critical", "emerg": "emergency"}
# journald / syslog PRIORITY 0..7
_PRIORITY_LEVELS = ("emergency", "alert", "critical", "error", "warning", "notice", "info", "debug")


def _level_from_text(message: str) -> str:
    m = _LEVEL_WORD.search(message[:200])
    if not m:
        return ""
    word = m.group(1).lower()
    return _LEVEL_ALIASES.get(word, word)


def _level_matches(record_level: str, wanted: str) -> bool:
    a, b = record_level.lower(), wanted.lower()
    return _LEVEL_ALIASES.get(a, a) == _LEVEL_ALIASES.get(b, b)



_ISO_TS = re.compile(
    r"^\[?(?P<ts>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})?)\]?\s*(?P<rest>.*)$"
)
_SYSLOG_TS = re.compile(
    r"^(?P<mon>Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +(?P<day>\d{1,2}) "
    r"(?P<time>\d{2}:\d{2}:\d{2})\s+(?P<rest>.*)$"
)
_SYSLOG_REST = re.compile(r"^(?P<host>\S+)\s+(?P<prog>[^\s:\[]+)(?:\[(?P<pid>\d+)\])?:\s?(?P<msg>.*)$")
_MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}


def _parse_iso(text: str) -> datetime | None:
    text = text.replace(",", ".").replace("Z", "+00:00")
    if "." in text:  # fromisoformat wants at most 6 fractional digits
        head, _, frac = text.partition(".")
        digits = "".join(c for c in frac if c.isdigit())
        tz = frac[len(digits):]
        text = f"{head}.{digits[:6].ljust(6, '0')}{tz}"
    try:
        return utc(datetime.fromisoformat(text))
    except ValueError:
        return None


def parse_plain_line(line: str, year: int, default_service: str = "") -> LogRecord | None:
    """A record if `line` starts with an ISO8601 or syslog timestamp, else None (continuation/unknown)."""
    m = _ISO_TS.match(line)
    if m:
        ts = _parse_iso(m.group("ts"))
        if ts is not None:
            rest = m.group("rest")
            return LogRecord(timestamp=ts, message=rest, service=default_service, level=_level_from_text(rest))
    m = _SYSLOG_TS.match(line)
    if m:
        hh, mm, ss = (int(x) for x in m.group("time").split(":"))
        try:
            ts = datetime(year, _MONTHS[m.group("mon")], int(m.group("day")), hh, mm, ss, tzinfo=UTC)
        except ValueError:
            return None
        rest = m.group("rest")
        sm = _SYSLOG_REST.match(rest)
        if sm:
            msg = sm.group("msg")
            fields = {"pid": sm.group("pid")} if sm.group("pid") else {}
            return LogRecord(timestamp=ts, message=msg, service=sm.group("prog"), host=sm.group("host"),
                             level=_level_from_text(msg), fields=fields)
        return LogRecord(timestamp=ts, message=rest, service=default_service, level=_level_from_text(rest))
    return None


def read_plain_log(path: Path) -> list[LogRecord]:
    """Parse a text log. Lines without a timestamp: indented ones continue the previous record (stack
    traces); others become records stamped like their predecessor, or with the file's mtime when the
    file has no timestamps at all (file order is then the only order)."""
    stat = path.stat()
    mtime = datetime.fromtimestamp(stat.st_mtime, tz=UTC)
    service = path.name.split(".")[0]
    out: list[LogRecord] = []
    with path.open(encoding="utf-8", errors="replace") as fh:
        for raw in fh:
            line = raw.rstrip("\n").rstrip("\r")
            if not line.strip():
                continue
            rec = parse_plain_line(line, mtime.year, service)
            if rec is not None and rec.timestamp > mtime + timedelta(days=1) and _SYSLOG_TS.match(line):
                rec = rec.model_copy(update={"timestamp": rec.timestamp.replace(year=mtime.year - 1)})
            if rec is None:
                if out and line[:1] in (" ", "\t"):
                    out[-1].message += "\n" + line
                    continue
                ts = out[-1].timestamp if out else mtime
                rec = LogRecord(timestamp=ts, message=line, service=service, level=_level_from_text(line))
            rec.fields.setdefault("file", str(path))
            out.append(rec)
    return out


def parse_journal_export(data: bytes) -> list[LogRecord]:
    """Parse `journalctl -o export` output.

    Each entry is a run of fields ended by an empty line. A field is `KEY=VALUE\\n`, or, for values
    holding newlines or binary data, `KEY\\n` + a 64-bit little-endian length + the raw bytes + `\\n`.
    """
    out: list[LogRecord] = []
    entry: dict[str, str] = {}
    pos, n = 0, len(data)

    def flush() -> None:
        if entry:
            rec = _journal_record(entry)
            if rec is not None:
                out.append(rec)
            entry.clear()

    while pos < n:
        nl = data.find(b"\n", pos)
        if nl == -1:
            nl = n
        line = data[pos:nl]
        if not line:
            flush()
            pos = nl + 1
            continue
        eq = line.find(b"=")
        if eq != -1:
            entry[line[:eq].decode("utf-8", "replace")] = line[eq + 1 :].decode("utf-8", "replace")
            pos = nl + 1
            continue
        key = line.decode("utf-8", "replace")
        start = nl + 1
        if start + 8 > n:
            raise ValueError(f"journal export: truncated length of binary field {key!r}")
        size = struct.unpack("<Q", data[start : start + 8])[0]
        value = data[start + 8 : start + 8 + size]
        if len(value) != size:
            raise ValueError(f"journal export: truncated binary field {key!r}")
        entry[key] = value.decode("utf-8", "replace")
        pos = start + 8 + size + 1  # the value is followed by a newline
    flush()
    return out


def _journal_record(entry: dict[str, str]) -> LogRecord | None:
    try:
        ts = datetime.fromtimestamp(int(entry["__REALTIME_TIMESTAMP"]) / 1_000_000, tz=UTC)
    except (KeyError, ValueError):
        return None
    level = ""
    prio = entry.get("PRIORITY", "")
    if prio.isdigit() and int(prio) < len(_PRIORITY_LEVELS):
        level = _PRIORITY_LEVELS[int(prio)]
    unit = entry.get("_SYSTEMD_UNIT", "")
    ident = entry.get("SYSLOG_IDENTIFIER", "")
    keep = {k: v for k, v in entry.items()
            if k in ("_SYSTEMD_UNIT", "SYSLOG_IDENTIFIER", "_PID", "_COMM", "PRIORITY", "__CURSOR")}
    return LogRecord(
        timestamp=ts, message=entry.get("MESSAGE", ""), service=unit or ident, level=level,
        host=entry.get("_HOSTNAME", ""), fields=keep,
    )


def _is_journal_export(head: bytes) -> bool:
    first = head.split(b"\n", 1)[0]
    return first.startswith((b"__CURSOR=", b"__REALTIME_TIMESTAMP=", b"__MONOTONIC_TIMESTAMP="))


class FileLogSource:
    """Logs read from local files: plain text (ISO8601 / syslog timestamps) or journald export files.

    `paths` are files or globs (`/var/log/*.log`), as a list or one comma-separated string (the
    `LOG_FILES` setting). Files are re-read only when their size or mtime changed. `now`, when set,
    hides records after it (replaying a recorded incident must not see the future).
    """

    name = "files"

    def __init__(self, paths: Sequence[str] | str, now: datetime | None = None) -> None:
        if isinstance(paths, str):
            paths = [p.strip() for p in paths.split(",") if p.strip()]
        self.patterns = list(paths)
        self.now = utc(now) if now is not None else None
        self._cache: dict[Path, tuple[tuple[int, float], list[LogRecord]]] = {}

    @classmethod
    def from_settings(cls, settings: Any) -> FileLogSource:
        return cls(settings.LOG_FILES or "")

    def files(self) -> list[Path]:
        found: list[Path] = []
        for pattern in self.patterns:
            expanded = os.path.expanduser(pattern)
            matches = sorted(glob.glob(expanded)) if glob.has_magic(expanded) else [expanded]
            for m in matches:
                p = Path(m)
                if p.is_file() and p not in found:
                    found.append(p)
        return found

    def _load(self, path: Path) -> list[LogRecord]:
        st = path.stat()
        key = (st.st_size, st.st_mtime)
        cached = self._cache.get(path)
        if cached and cached[0] == key:
            return cached[1]
        with path.open("rb") as fh:
            head = fh.read(64)
        if _is_journal_export(head):
            records = parse_journal_export(path.read_bytes())
            for r in records:
                r.fields.setdefault("file", str(path))
        else:
            records = read_plain_log(path)
        self._cache[path] = (key, records)
        return records

    def _load_all(self) -> list[LogRecord]:
        records: list[LogRecord] = []
        for path in self.files():
            try:
                records.extend(self._load(path))
            except OSError as exc:
                raise LogSourceError(f"cannot read log file {path}: {exc}") from None
            except ValueError as exc:
                raise LogSourceError(f"{path}: {exc}") from None
        records.sort(key=lambda r: r.timestamp)  # stable: file order kept for equal stamps
        return records

    async def search(self, query: LogQuery) -> list[LogRecord]:
        records = await asyncio.to_thread(self._load_all)
        start, end = utc(query.start), utc(query.end)
        if self.now is not None:
            end = min(end, self.now)
        text = re.compile(re.escape(query.text), re.I) if query.text else None
        out = []
        for r in records:
            if not (start <= r.timestamp <= end):
                continue
            if query.service and query.service not in (
                r.service, r.service.removesuffix(".service"), r.fields.get("SYSLOG_IDENTIFIER", "")
            ):
                continue
            if query.level and not _level_matches(r.level, query.level):
                continue
            if text and not text.search(r.message):
                continue
            out.append(r)
            if len(out) >= query.limit:
                break
        return out

