"""Log tools: a `LogSource` protocol, its backends, and LangChain tool wrappers."""

from __future__ import annotations

import asyncio
import glob
import os
import re
import struct
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field


class LogRecord(BaseModel):
    timestamp: datetime
    message: str
    service: str = ""
    level: str = ""
    host: str = ""
    fields: dict[str, str] = Field(default_factory=dict)


class LogQuery(BaseModel):
    start: datetime
    end: datetime
    service: str | None = None
    level: str | None = None  # minimum is not implied: an exact level name, case-insensitive
    text: str | None = None  # substring (backends may treat it as a full-text query)
    limit: int = Field(default=500, ge=1, le=100_000)


@runtime_checkable
class LogSource(Protocol):
    name: str

    async def search(self, query: LogQuery) -> list[LogRecord]: ...


class InMemoryLogSource:
    """Records held in memory (a recorded incident replay). Never returns records after `now`."""

    name = "recorded"

    def __init__(self, records: Iterable[LogRecord], now: datetime | None = None) -> None:
        self._records = sorted(records, key=lambda r: r.timestamp)
        self.now = now

    async def search(self, query: LogQuery) -> list[LogRecord]:
        end = min(query.end, self.now) if self.now is not None else query.end
        text = re.compile(re.escape(query.text), re.I) if query.text else None
        out = []
        for r in self._records:
            if not (query.start <= r.timestamp <= end):
                continue
            if query.service and r.service != query.service:
                continue
            if query.level and r.level.lower() != query.level.lower():
                continue
            if text and not text.search(r.message):
                continue
            out.append(r)
            if len(out) >= query.limit:
                break
        return out


# ------------------------------------------------------------------------------------------------
# Shared helpers
# ------------------------------------------------------------------------------------------------


class LogSourceError(RuntimeError):
    """A backend failed in a way the caller should see as one readable line (bad URL, timeout, 4xx)."""


def _utc(ts: datetime) -> datetime:
    """Naive datetimes are taken as UTC, so naive and aware bounds compare without TypeError."""
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


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


# ------------------------------------------------------------------------------------------------
# Elasticsearch
# ------------------------------------------------------------------------------------------------


class ElasticFields(BaseModel):
    """Where each LogRecord attribute lives in the indexed documents. Defaults follow ECS."""

    timestamp: str = "@timestamp"
    message: str = "message"
    service: str = "service.name"
    level: str = "log.level"
    host: str = "host.name"


def _dig(doc: dict[str, Any], dotted: str) -> Any:
    """Value at `a.b.c` in a `_source`, whether stored nested ({"a": {"b": ..}}) or flat ({"a.b": ..})."""
    if dotted in doc:
        return doc[dotted]
    cur: Any = doc
    for i, part in enumerate(dotted.split(".")):
        if not isinstance(cur, dict):
            return None
        if part in cur:
            cur = cur[part]
            continue
        rest = ".".join(dotted.split(".")[i:])
        return cur.get(rest)
    return cur


def _parse_es_time(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, int | float):  # epoch millis
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    try:
        return _utc(datetime.fromisoformat(str(value).replace("Z", "+00:00")))
    except ValueError:
        return None


class ElasticsearchSource:
    """Logs in Elasticsearch 8, through the official async client.

    `search` pages with `search_after` over a point-in-time (sort `@timestamp`, then `_shard_doc` as
    the tiebreaker), so deep result sets are consistent and never use `from`. When PITs are not
    allowed (some hosted/read-only setups) pass `use_pit=False` and a unique `tiebreaker` field.
    """

    name = "elasticsearch"

    def __init__(
        self,
        url: str | None = None,
        index: str = "logs-*",
        api_key: str | None = None,
        *,
        fields: ElasticFields | None = None,
        timeout: float = 10.0,
        page_size: int = 500,
        use_pit: bool = True,
        tiebreaker: str = "_shard_doc",
        client: Any = None,
    ) -> None:
        if client is None:
            if not url:
                raise LogSourceError("ElasticsearchSource needs a URL (ELASTICSEARCH_URL)")
            from elasticsearch import AsyncElasticsearch

            client = AsyncElasticsearch(
                hosts=[url], api_key=api_key or None, request_timeout=timeout, max_retries=2,
                retry_on_timeout=True,
            )
        self.client = client
        self.url = url or ""
        self.index = index
        self.fields = fields or ElasticFields()
        self.timeout = timeout
        self.page_size = page_size
        self.use_pit = use_pit
        self.tiebreaker = tiebreaker

    @classmethod
    def from_settings(cls, settings: Any) -> ElasticsearchSource:
        return cls(url=settings.ELASTICSEARCH_URL, index=settings.ELASTICSEARCH_INDEX,
                   api_key=settings.ELASTICSEARCH_API_KEY)

    async def close(self) -> None:
        await self.client.close()

    # -- query building --------------------------------------------------------------------------
    def build_query(self, query: LogQuery) -> dict[str, Any]:
        """The `bool` query for a LogQuery: filters (cacheable, unscored) plus a full-text `match`."""
        f = self.fields
        filters: list[dict[str, Any]] = [
            {"range": {f.timestamp: {"gte": _utc(query.start).isoformat(), "lte": _utc(query.end).isoformat(),
                                     "format": "strict_date_optional_time"}}}
        ]
        if query.service:
            filters.append({"term": {f.service: {"value": query.service}}})
        if query.level:
            filters.append({"term": {f.level: {"value": query.level, "case_insensitive": True}}})
        must: list[dict[str, Any]] = []
        if query.text:
            must.append({"match": {f.message: {"query": query.text, "operator": "and"}}})
        return {"bool": {"filter": filters, "must": must}}

    def _record(self, hit: dict[str, Any]) -> LogRecord | None:
        src = hit.get("_source") or {}
        f = self.fields
        ts = _parse_es_time(_dig(src, f.timestamp))
        if ts is None:
            return None
        extra = {"_index": str(hit.get("_index", "")), "_id": str(hit.get("_id", ""))}
        return LogRecord(
            timestamp=ts, message=str(_dig(src, f.message) or ""), service=str(_dig(src, f.service) or ""),
            level=str(_dig(src, f.level) or ""), host=str(_dig(src, f.host) or ""), fields=extra,
        )

    async def _call(self, what: str, coro: Any) -> Any:
        from elasticsearch import ApiError, TransportError, UnsupportedProductError

        try:
            return await coro
        except UnsupportedProductError as exc:
            raise LogSourceError(f"{self.url or 'server'} is not Elasticsearch ({what}): {exc}") from None
        except ApiError as exc:
            reason = exc.message
            try:
                reason = exc.body["error"]["root_cause"][0]["reason"]  # type: ignore[index]
            except (KeyError, IndexError, TypeError):
                pass
            raise LogSourceError(f"Elasticsearch {what} failed (HTTP {exc.meta.status}): {reason}") from None
        except TransportError as exc:
            raise LogSourceError(f"Elasticsearch {what} failed: cannot reach {self.url or 'server'}: {exc}") from None

    # -- LogSource --------------------------------------------------------------------------------
    async def search(self, query: LogQuery) -> list[LogRecord]:
        """Records in time order, up to `query.limit`, fetched page by page with search_after."""
        body_query = self.build_query(query)
        sort = [{self.fields.timestamp: {"order": "asc"}},
                {self.tiebreaker: {"order": "asc"}}]
        pit_id: str | None = None
        if self.use_pit:
            resp = await self._call("open point-in-time",
                                    self.client.open_point_in_time(index=self.index, keep_alive="1m"))
            pit_id = resp["id"]
        out: list[LogRecord] = []
        after: list[Any] | None = None
        try:
            while len(out) < query.limit:
                size = min(self.page_size, query.limit - len(out))
                kwargs: dict[str, Any] = {"query": body_query, "sort": sort, "size": size,
                                          "track_total_hits": False, "timeout": f"{int(self.timeout * 1000)}ms"}
                if pit_id:
                    kwargs["pit"] = {"id": pit_id, "keep_alive": "1m"}
                else:
                    kwargs["index"] = self.index
                if after is not None:
                    kwargs["search_after"] = after
                resp = await self._call("search", self.client.search(**kwargs))
                if pit_id and resp.get("pit_id"):
                    pit_id = resp["pit_id"]
                hits = resp["hits"]["hits"]
                for hit in hits:
                    rec = self._record(hit)
                    if rec is not None:
                        out.append(rec)
                if len(hits) < size:
                    break
                after = hits[-1]["sort"]
        finally:
            if pit_id:
                try:
                    await self.client.close_point_in_time(id=pit_id)
                except Exception:  # noqa: BLE001 - a leaked PIT expires by itself after keep_alive
                    pass
        return out[: query.limit]

    async def count_by(self, field: str, query: LogQuery, size: int = 10) -> dict[str, int]:
        """Top values of `field` (a keyword field, e.g. `service.name`) with their line counts."""
        resp = await self._call("terms aggregation", self.client.search(
            index=self.index, query=self.build_query(query), size=0,
            aggs={"by": {"terms": {"field": field, "size": size}}},
        ))
        return {str(b["key"]): int(b["doc_count"]) for b in resp["aggregations"]["by"]["buckets"]}

    async def histogram(self, query: LogQuery, interval: str = "1m") -> list[tuple[datetime, int]]:
        """Line counts per fixed interval (`30s`, `1m`, `1h`), empty buckets included, in time order."""
        resp = await self._call("date_histogram aggregation", self.client.search(
            index=self.index, query=self.build_query(query), size=0,
            aggs={"over_time": {"date_histogram": {
                "field": self.fields.timestamp, "fixed_interval": interval, "min_doc_count": 0,
                "extended_bounds": {"min": _utc(query.start).isoformat(), "max": _utc(query.end).isoformat()},
            }}},
        ))
        out = []
        for b in resp["aggregations"]["over_time"]["buckets"]:
            out.append((datetime.fromtimestamp(b["key"] / 1000, tz=UTC), int(b["doc_count"])))
        return out


# ------------------------------------------------------------------------------------------------
# Files (the embedded default): plain text and journald export format
# ------------------------------------------------------------------------------------------------

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
        return _utc(datetime.fromisoformat(text))
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
        self.now = _utc(now) if now is not None else None
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
        start, end = _utc(query.start), _utc(query.end)
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


def log_source_from_settings(settings: Any) -> LogSource:
    """Elasticsearch when `ELASTICSEARCH_URL` is set, else the file source over `LOG_FILES`."""
    if getattr(settings, "ELASTICSEARCH_URL", None):
        return ElasticsearchSource.from_settings(settings)
    return FileLogSource.from_settings(settings)


# ------------------------------------------------------------------------------------------------
# LangChain tools
# ------------------------------------------------------------------------------------------------


class SearchLogsArgs(BaseModel):
    service: str | None = Field(None, description="service / unit / program name; omit for all services")
    minutes: int = Field(15, ge=1, le=7 * 24 * 60, description="look back this many minutes from the end time")
    end: datetime | None = Field(None, description="end of the window (ISO8601, UTC); default: now")
    level: str | None = Field(None, description="exact level, e.g. error, warning")
    text: str | None = Field(None, description="words the message must contain")
    limit: int = Field(50, ge=1, le=500, description="maximum lines returned")


class SummarizeLogsArgs(BaseModel):
    service: str | None = Field(None, description="service / unit / program name; omit for all services")
    minutes: int = Field(15, ge=1, le=7 * 24 * 60, description="window length in minutes, ending at `end`")
    end: datetime | None = Field(None, description="end of the window (ISO8601, UTC); default: now")
    baseline_minutes: int = Field(60, ge=0, le=7 * 24 * 60,
                                  description="baseline window just before it; 0 = no comparison")
    level: str | None = Field(None, description="exact level, e.g. error")
    top: int = Field(15, ge=1, le=100, description="number of templates returned")


def make_log_tools(
    source: LogSource, now: Callable[[], datetime] | None = None, max_lines: int = 20_000
) -> list[BaseTool]:
    """LangChain tools over `source`. `now` fixes "the present" (recorded-incident replay)."""
    from tools.analysis.log_templates import summarize_logs
    from tools.analysis.redact import redact

    clock = now or (lambda: datetime.now(UTC))

    def window(end: datetime | None, minutes: int) -> tuple[datetime, datetime]:
        stop = _utc(end) if end is not None else _utc(clock())
        stop = min(stop, _utc(clock()))
        return stop - timedelta(minutes=minutes), stop

    async def search_logs(service: str | None = None, minutes: int = 15, end: datetime | None = None,
                          level: str | None = None, text: str | None = None, limit: int = 50) -> str:
        start, stop = window(end, minutes)
        try:
            records = await source.search(LogQuery(start=start, end=stop, service=service, level=level,
                                                   text=text, limit=limit))
        except LogSourceError as exc:
            return f"error: {exc}"
        if not records:
            return f"no log lines for {service or 'any service'} between {start.isoformat()} and {stop.isoformat()}"
        lines = [f"{len(records)} line(s) from {source.name}, {start.isoformat()} .. {stop.isoformat()}:"]
        for r in records:
            who = r.service or "-"
            lines.append(f"{r.timestamp.isoformat()} {who} {r.level or '-'}: {redact(r.message)[:400]}")
        return "\n".join(lines)

    async def summarize_log_templates(service: str | None = None, minutes: int = 15,
                                      end: datetime | None = None, baseline_minutes: int = 60,
                                      level: str | None = None, top: int = 15) -> str:
        start, stop = window(end, minutes)
        try:
            records = await source.search(LogQuery(start=start, end=stop, service=service, level=level,
                                                   limit=max_lines))
            baseline = None
            if baseline_minutes:
                baseline = await source.search(LogQuery(
                    start=start - timedelta(minutes=baseline_minutes), end=start - timedelta(microseconds=1),
                    service=service, level=level, limit=max_lines))
        except LogSourceError as exc:
            return f"error: {exc}"
        if not records:
            return f"no log lines for {service or 'any service'} between {start.isoformat()} and {stop.isoformat()}"
        stats = summarize_logs(records, baseline, top=top, window_seconds=minutes * 60.0,
                               baseline_seconds=baseline_minutes * 60.0 or None)
        head = (f"{len(records)} line(s) in {minutes} min"
                + (f", baseline {len(baseline)} line(s) in the {baseline_minutes} min before" if baseline is not None else "")
                + f"; top {len(stats)} template(s), most interesting first:")
        lines = [head]
        for s in stats:
            tags = []
            if s.is_new:
                tags.append("NEW")
            if s.spike_ratio is not None:
                tags.append(f"x{s.spike_ratio:g} vs baseline")
            if s.levels:
                tags.append(",".join(f"{k}:{v}" for k, v in sorted(s.levels.items())))
            lines.append(f"[{s.count}] {s.template}  ({'; '.join(tags) or 'steady'})\n    e.g. {s.example[:300]}")
        return "\n".join(lines)

    return [
        StructuredTool.from_function(
            coroutine=search_logs, name="search_logs", args_schema=SearchLogsArgs,
            description="Read log lines (redacted) for a service over a recent time window, optionally "
                        "filtered by level and text. Use for specific evidence after summarizing.",
        ),
        StructuredTool.from_function(
            coroutine=summarize_log_templates, name="summarize_log_templates", args_schema=SummarizeLogsArgs,
            description="Summarise a window of logs into templates with counts, flagging templates that "
                        "are new or spiking against the preceding baseline window. Start here.",
        ),
    ]
