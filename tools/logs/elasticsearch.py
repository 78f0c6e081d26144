"""`LogSource` over Elasticsearch 8 (the official async client), fields mapped ECS-style by default."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from core.models import utc
from core.resilience import CircuitOpenError, breaker, guarded
from tools.log_types import LogQuery, LogRecord, LogSourceError, LogsUnavailable

BREAKER = "elasticsearch"


def _status(exc: BaseException) -> int | None:
    meta = getattr(exc, "meta", None)
    status = getattr(meta, "status", None)
    return int(status) if isinstance(status, int) else None


def is_outage(exc: BaseException) -> bool:
    """Elasticsearch's fault (cannot connect, timed out, 5xx, 429): counts against its breaker. A 4xx
    (bad query, missing index, auth) or a server that is not Elasticsearch is a refusal: not charged."""
    from elasticsearch import ApiError, UnsupportedProductError

    if isinstance(exc, UnsupportedProductError):
        return False
    if isinstance(exc, ApiError):
        status = _status(exc) or 0
        return status >= 500 or status == 429
    return True  # TransportError (ConnectionError, ConnectionTimeout) and anything unexpected


def outage_reason(exc: BaseException) -> str:
    """A few words for a report: "breaker open", "connection refused", "timed out", "HTTP 500"."""
    from elastic_transport import ConnectionTimeout

    if isinstance(exc, CircuitOpenError):
        return "breaker open"
    if isinstance(exc, ConnectionTimeout):
        return "timed out"
    if (status := _status(exc)) is not None:
        return f"HTTP {status}"
    cur: BaseException | None = exc
    while cur is not None:  # the transport's ConnectionError prints only "Connection error": look under it
        if isinstance(cur, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cur, TimeoutError):
            return "timed out"
        cur = cur.__cause__ or cur.__context__
    return type(exc).__name__


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
        return utc(datetime.fromisoformat(str(value).replace("Z", "+00:00")))
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

            # One retry layer only: core.resilience.guarded, whose attempts the "elasticsearch"
            # breaker sees; the transport's own retries would multiply it unseen.
            client = AsyncElasticsearch(
                hosts=[url], api_key=api_key or None, request_timeout=timeout, max_retries=0,
                retry_on_timeout=False, retry_on_status=(),
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
                   api_key=settings.ELASTICSEARCH_API_KEY, timeout=settings.ELASTICSEARCH_TIMEOUT)

    async def close(self) -> None:
        await self.client.close()

    # -- query building --------------------------------------------------------------------------
    def build_query(self, query: LogQuery) -> dict[str, Any]:
        """The `bool` query for a LogQuery: filters (cacheable, unscored) plus a full-text `match`."""
        f = self.fields
        filters: list[dict[str, Any]] = [
            {"range": {f.timestamp: {"gte": utc(query.start).isoformat(), "lte": utc(query.end).isoformat(),
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

    async def _call(self, what: str, call: Callable[[], Awaitable[Any]]) -> Any:
        """One read through the "elasticsearch" breaker, retried with back-off when Elasticsearch (not
        the query) failed; a timeout is not retried (each retry would cost another `timeout`)."""
        from elastic_transport import ConnectionTimeout
        from elasticsearch import ApiError, TransportError, UnsupportedProductError

        try:
            return await guarded(BREAKER, call, counts=is_outage, never_retry=(ConnectionTimeout,))
        except CircuitOpenError as exc:
            raise LogsUnavailable(BREAKER, "breaker open", f"Elasticsearch {what} skipped: {exc}") from None
        except UnsupportedProductError as exc:
            raise LogSourceError(f"{self.url or 'server'} is not Elasticsearch ({what}): {exc}") from None
        except ApiError as exc:
            reason = exc.message
            try:
                reason = exc.body["error"]["root_cause"][0]["reason"]  # type: ignore[index]
            except (KeyError, IndexError, TypeError):
                pass
            text = f"Elasticsearch {what} failed (HTTP {exc.meta.status}): {reason}"
            if is_outage(exc):
                raise LogsUnavailable(BREAKER, outage_reason(exc), text) from None
            raise LogSourceError(text) from None
        except TransportError as exc:
            why, detail = outage_reason(exc), getattr(exc, "message", "") or str(exc)
            breaker(BREAKER).last_error = f"{type(exc).__name__}: {why}: {detail}"[:300]  # str(exc) says little
            raise LogsUnavailable(BREAKER, why, f"Elasticsearch {what} failed: cannot reach "
                                                f"{self.url or 'server'}: {why}: {detail}") from None

    # -- LogSource --------------------------------------------------------------------------------
    async def search(self, query: LogQuery) -> list[LogRecord]:
        """Records in time order, up to `query.limit`, fetched page by page with search_after."""
        body_query = self.build_query(query)
        sort = [{self.fields.timestamp: {"order": "asc"}},
                {self.tiebreaker: {"order": "asc"}}]
        pit_id: str | None = None
        if self.use_pit:
            resp = await self._call("open point-in-time",
                                    lambda: self.client.open_point_in_time(index=self.index, keep_alive="1m"))
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
                resp = await self._call("search", functools.partial(self.client.search, **kwargs))
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
                    await guarded(BREAKER, lambda: self.client.close_point_in_time(id=pit_id),
                                  attempts=1, counts=is_outage)
                except Exception:  # noqa: BLE001 - a leaked PIT expires by itself after keep_alive
                    pass
        return out[: query.limit]

    async def count_by(self, field: str, query: LogQuery, size: int = 10) -> dict[str, int]:
        """Top values of `field` (a keyword field, e.g. `service.name`) with their line counts."""
        resp = await self._call("terms aggregation", lambda: self.client.search(
            index=self.index, query=self.build_query(query), size=0,
            aggs={"by": {"terms": {"field": field, "size": size}}},
        ))
        return {str(b["key"]): int(b["doc_count"]) for b in resp["aggregations"]["by"]["buckets"]}

    async def histogram(self, query: LogQuery, interval: str = "1m") -> list[tuple[datetime, int]]:
        """Line counts per fixed interval (`30s`, `1m`, `1h`), empty buckets included, in time order."""
        resp = await self._call("date_histogram aggregation", lambda: self.client.search(
            index=self.index, query=self.build_query(query), size=0,
            aggs={"over_time": {"date_histogram": {
                "field": self.fields.timestamp, "fixed_interval": interval, "min_doc_count": 0,
                "extended_bounds": {"min": utc(query.start).isoformat(), "max": utc(query.end).isoformat()},
            }}},
        ))
        out = []
        for b in resp["aggregations"]["over_time"]["buckets"]:
            out.append((datetime.fromtimestamp(b["key"] / 1000, tz=UTC), int(b["doc_count"])))
        return out

