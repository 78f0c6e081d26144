"""Response cache for analyses, generated playbooks and natural-language answers.

Why it exists: an LLM call costs money and seconds, and the same incident is analysed again and again
(Alertmanager re-sends a firing alert every `repeat_interval`, several people ask the same question).
The cache answers those repeats without calling the model.

Three backends behind one small protocol (`Cache`):

* `RedisCache`  when `REDIS_URL` is set: shared by every process, per-kind TTLs, hit/miss counters
  kept both in process and in Redis (`INCR` on counter keys), and *degrades instead of failing*: when
  Redis is unreachable every call proceeds uncached, one warning is logged per outage, and Redis is
  retried after a short back-off (one info line when it comes back).
* `LRUCache`    the embedded default with no `REDIS_URL`: bounded, TTL-aware, in-process.
* `NullCache`   when `ENABLE_CACHING=false`: every lookup misses, nothing is stored.

Keys are not the raw request: `fingerprint()` normalises the payload first (timestamps, UUIDs, hex ids,
long numbers, full-precision measurements, whitespace, dict key order, and a few volatile fields such as
Alertmanager's `startsAt`), so a re-fired alert maps onto the same key. `normalise()` is public so the
exact rules can be inspected; docs/cache.md lists them.

Values are stored as JSON (Pydantic models via `model_dump(mode="json")`); a hit returns the JSON form,
or a validated model when `cached_call(..., model=...)` is used.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import hashlib
import inspect
import json
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from pathlib import PurePath
from typing import Any, Literal, Protocol, TypeVar, get_args, runtime_checkable
from urllib.parse import urlparse

from pydantic import BaseModel, ValidationError
from pydantic_core import to_jsonable_python

from core.redis_errors import redis_outage
from core.resilience import CircuitOpenError, guarded_sync

log = logging.getLogger(__name__)

CacheKind = Literal["analysis", "playbook", "nl"]
KINDS: tuple[CacheKind, ...] = get_args(CacheKind)

#: Bump when the normalisation rules or the value format change: old entries then simply miss.
KEY_VERSION = "v1"
#: Prefix of every key this module writes (data keys and counter keys).
KEY_NAMESPACE = "aiops:cache"

T = TypeVar("T")

# ------------------------------------------------------------------------------------ normalise --
_MONTHS = "Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec"
_B = r"(?<![0-9A-Za-z])"  # left boundary: not glued to a letter or digit
_E = r"(?![0-9A-Za-z])"  # right boundary

#: (name, compiled pattern, placeholder), applied in this order to every string in the payload.
STRING_RULES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("uuid", re.compile(_B + r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}" + _E),
     "<uuid>"),
    # ISO 8601 / RFC 3339 date-time (also '/' dates and a space instead of 'T'), optional fraction and zone.
    ("iso-datetime", re.compile(
        _B + r"\d{4}[-/]\d{2}[-/]\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?"
        r"(?:Z|\s?UTC|\s?[+-]\d{2}(?::?\d{2})?)?" + _E), "<ts>"),
    # Common Log Format: 24/Nov/2026:21:24:15 +0000
    ("clf-datetime", re.compile(_B + r"\d{1,2}/(?:" + _MONTHS + r")/\d{4}:\d{2}:\d{2}:\d{2}(?: [+-]\d{4})?" + _E),
     "<ts>"),
    # syslog: Nov 24 21:24:15
    ("syslog-datetime", re.compile(r"\b(?:" + _MONTHS + r")\s+\d{1,2}\s+\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?" + _E),
     "<ts>"),
    ("date", re.compile(_B + r"\d{4}-\d{2}-\d{2}" + _E), "<ts>"),
    # 21:24:15 / 21:24:15.123, but not inside a MAC or IPv6 address (no ':' glued on either side).
    ("time-of-day", re.compile(r"(?<![0-9A-Za-z:])\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?(?![0-9A-Za-z]|:[0-9A-Fa-f])"),
     "<ts>"),
    # process ids whatever their length: `pid 4242`, `pid=4242`, `PID: 4242`, and syslog's `sshd[4242]:`.
    ("pid", re.compile(r"(?i)\b(pid[=:]?\s*)\d+" + _E), r"\1<id>"),
    ("syslog-pid", re.compile(r"(?<=[0-9A-Za-z_.-])\[\d+\](?=:)"), "[<id>]"),
    # full-precision measurements as Prometheus renders `{{ $value }}`: >= 3 decimals, not part of an
    # IP address or version (no neighbouring '.digit').
    ("measurement", re.compile(r"(?<![\d.])\d+\.\d{3,}(?!\d|\.\d)"), "<num>"),
    # 0x-prefixed hex, and runs of >= 8 hex digits that contain at least one digit (container ids,
    # git SHAs, trace ids, `inc-3f9a2b7c1d0e`); pure-digit runs of >= 8 are caught here too.
    ("hex-id", re.compile(_B + r"(?:0x[0-9a-fA-F]+|(?=[a-fA-F]*\d)[0-9a-fA-F]{8,})" + _E), "<id>"),
    # remaining digit runs of 6-7 digits: pids, request counters, byte offsets.
    ("long-number", re.compile(_B + r"\d{6,}" + _E), "<id>"),
)

_WS = re.compile(r"\s+")

#: Dict entries dropped before hashing, compared after lower-casing and removing `_ - @ .`.
VOLATILE_KEYS: frozenset[str] = frozenset({
    "timestamp", "ts", "requestid", "traceid", "spanid", "correlationid", "fingerprint",
})
#: ...and every key that names a point in time: `*_at` (snake case) or `*At` (camel case).
_TIME_KEY = re.compile(r"(?:^|_)at$|[a-z]At$")


def _is_volatile_key(key: str) -> bool:
    folded = re.sub(r"[-_@.]", "", key.lower())
    return folded in VOLATILE_KEYS or bool(_TIME_KEY.search(key))


def normalise_text(text: str) -> str:
    """Apply `STRING_RULES` then collapse whitespace (strip, any run of whitespace -> one space)."""
    for _name, pattern, placeholder in STRING_RULES:
        text = pattern.sub(placeholder, text)
    return _WS.sub(" ", text).strip()


def normalise(payload: Any) -> Any:
    """Turn `payload` into canonical JSON-able data with volatile parts erased.

    Pydantic models are dumped in JSON mode (by field name), dataclasses become dicts, tuples lists,
    sets sorted lists, enums their value, datetimes ISO strings (then erased like any timestamp).
    Unsupported types raise `TypeError` rather than being stringified into an accidental collision.
    """
    if isinstance(payload, BaseModel):
        return normalise(payload.model_dump(mode="json"))
    if dataclasses.is_dataclass(payload) and not isinstance(payload, type):
        return normalise(dataclasses.asdict(payload))
    if isinstance(payload, Mapping):
        out: dict[str, Any] = {}
        for key, value in payload.items():
            skey = str(key.value if isinstance(key, enum.Enum) else key)
            if _is_volatile_key(skey):
                continue
            out[skey] = normalise(value)
        return out
    if isinstance(payload, str):
        return normalise_text(payload)
    if isinstance(payload, enum.Enum):
        return normalise(payload.value)
    if payload is None or isinstance(payload, bool | int):
        return payload
    if isinstance(payload, float):
        return int(payload) if payload.is_integer() else payload
    if isinstance(payload, Decimal):
        return normalise(float(payload))
    if isinstance(payload, _dt.datetime | _dt.date | _dt.time):
        return normalise(payload.isoformat())
    if isinstance(payload, PurePath):
        return normalise(str(payload))
    if isinstance(payload, list | tuple):
        return [normalise(item) for item in payload]
    if isinstance(payload, set | frozenset):
        items = [normalise(item) for item in payload]
        return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
    raise TypeError(f"cannot fingerprint a {type(payload).__name__}; pass JSON-like data or a Pydantic model")


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown cache kind {kind!r} (expected one of {', '.join(KINDS)})")


def fingerprint(kind: CacheKind, payload: Any, *, namespace: str = KEY_NAMESPACE) -> str:
    """The cache key: `aiops:cache:v1:<kind>:<sha256 of the canonical normalised JSON>`."""
    _check_kind(kind)
    canonical = json.dumps(normalise(payload), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{namespace}:{KEY_VERSION}:{kind}:{digest}"


def _counter_key(namespace: str, kind: str, what: str) -> str:
    return f"{namespace}:{KEY_VERSION}:stats:{kind}:{what}"


def _dump_value(value: Any) -> str:
    """JSON text of a value; Pydantic models go through `model_dump(mode="json")`."""
    if isinstance(value, BaseModel):
        data = value.model_dump(mode="json")
    else:
        try:
            data = to_jsonable_python(value)
        except Exception as exc:  # pydantic_core.PydanticSerializationError
            raise TypeError(f"cache values must be JSON-serialisable: {exc}") from exc
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


# ------------------------------------------------------------------------------------- protocol --
@runtime_checkable
class Cache(Protocol):
    """What callers use. `get` returns the stored JSON value (dict/list/str/...) or None on a miss.
    Implementations also carry a `backend` name ("redis", "lru", "off") for logs and health output."""

    def get(self, kind: CacheKind, payload: Any) -> Any | None: ...

    def set(self, kind: CacheKind, payload: Any, value: Any) -> None: ...

    def stats(self) -> dict[str, dict[str, int]]: ...


class _Stats:
    """Per-kind counters for this process. `errors` counts failed backend calls (Redis only)."""

    FIELDS = ("hits", "misses", "sets", "errors")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, dict[str, int]] = {kind: dict.fromkeys(self.FIELDS, 0) for kind in KINDS}

    def inc(self, kind: str, what: str) -> None:
        with self._lock:
            self._counts[kind][what] += 1

    def snapshot(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {kind: dict(counts) for kind, counts in self._counts.items()}


def _ttls(ttl: Mapping[str, float] | None) -> dict[str, float]:
    defaults: dict[str, float] = {"analysis": 600, "playbook": 1800, "nl": 300}
    merged = {**defaults, **(ttl or {})}
    for kind in merged:
        _check_kind(kind)
    return merged


# ------------------------------------------------------------------------------------ backends --
class NullCache:
    """`ENABLE_CACHING=false`: always a miss, never stores, counts nothing."""

    backend = "off"

    def get(self, kind: CacheKind, payload: Any) -> Any | None:
        _check_kind(kind)
        return None

    def set(self, kind: CacheKind, payload: Any, value: Any) -> None:
        _check_kind(kind)

    def stats(self) -> dict[str, dict[str, int]]:
        return _Stats().snapshot()


class LRUCache:
    """In-process cache: at most `max_entries` values, least recently used evicted first, and each
    entry expires after its kind's TTL. A TTL <= 0 disables that kind. Values are kept as JSON text so
    a caller mutating a returned dict cannot change what the next caller gets."""

    backend = "lru"

    def __init__(
        self,
        ttl: Mapping[str, float] | None = None,
        *,
        max_entries: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        self.ttl = _ttls(ttl)
        self.max_entries = max_entries
        self._clock = clock
        self._data: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()
        self._stats = _Stats()

    def __len__(self) -> int:
        return len(self._data)

    def get(self, kind: CacheKind, payload: Any) -> Any | None:
        key = fingerprint(kind, payload)
        now = self._clock()
        with self._lock:
            entry = self._data.get(key)
            if entry is not None and entry[0] <= now:
                del self._data[key]
                entry = None
            if entry is not None:
                self._data.move_to_end(key)
        self._stats.inc(kind, "hits" if entry is not None else "misses")
        return json.loads(entry[1]) if entry is not None else None

    def set(self, kind: CacheKind, payload: Any, value: Any) -> None:
        key = fingerprint(kind, payload)
        ttl = self.ttl[kind]
        text = _dump_value(value)
        if ttl <= 0:
            return
        with self._lock:
            self._data[key] = (self._clock() + ttl, text)
            self._data.move_to_end(key)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)
        self._stats.inc(kind, "sets")

    def stats(self) -> dict[str, dict[str, int]]:
        return self._stats.snapshot()


def _redacted(url: str) -> str:
    parsed = urlparse(url)
    if parsed.password:
        netloc = f"{parsed.username or ''}:***@{parsed.hostname}" + (f":{parsed.port}" if parsed.port else "")
        return parsed._replace(netloc=netloc).geturl()
    return url


class RedisCache:
    """Redis-backed cache that never fails a request.

    Outage handling: every call goes through the process-wide "redis" circuit breaker (one attempt,
    no retry). The first connection error, timeout, authentication failure, non-Redis answer or open
    breaker marks Redis *down* for this cache, logs ONE warning and starts a back-off (`retry_after`, doubling per failed probe
    up to `max_retry_after`). While down, calls skip Redis entirely (a miss, no network). After the back-off the next call probes Redis; on
    success one info line is logged and caching resumes. Socket timeouts are short and the client's own
    retries are disabled, so a dead server costs milliseconds, not seconds.

    Errors where Redis answered (e.g. OOM on SET) are not an outage: the call is treated as a miss or a
    skipped store, and the first such error per process is logged as a warning.
    """

    backend = "redis"

    def __init__(
        self,
        url: str,
        ttl: Mapping[str, float] | None = None,
        *,
        namespace: str = KEY_NAMESPACE,
        socket_timeout: float = 0.25,
        retry_after: float = 1.0,
        max_retry_after: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self._redis_errors = redis.exceptions
        self.url = url
        self.ttl = _ttls(ttl)
        self.namespace = namespace
        self.retry_after = retry_after
        self.max_retry_after = max_retry_after
        self._clock = clock
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
            health_check_interval=0,
        )
        self._stats = _Stats()
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._next_probe = 0.0
        self._backoff = retry_after
        self._failed_probes = 0
        self._warned_response_error = False

    # -- outage bookkeeping -------------------------------------------------------------------------
    @property
    def available(self) -> bool:
        """False while Redis is considered down (between a failure and a successful probe)."""
        return self._down_since is None

    def _skip(self) -> bool:
        with self._lock:
            return self._down_since is not None and self._clock() < self._next_probe

    def _on_success(self) -> None:
        if self._down_since is None:
            return
        with self._lock:
            if self._down_since is None:
                return
            probes, self._failed_probes = self._failed_probes, 0
            self._down_since = None
            self._backoff = self.retry_after
        log.info("cache: Redis at %s is reachable again; caching resumed (after %d failed probe(s))",
                 _redacted(self.url), probes)

    def _on_connection_error(self, kind: str, exc: Exception) -> None:
        self._stats.inc(kind, "errors")
        with self._lock:
            now = self._clock()
            first = self._down_since is None
            if first:
                self._down_since = now
                self._backoff = self.retry_after
            else:
                self._failed_probes += 1
                self._backoff = min(self._backoff * 2, self.max_retry_after)
            self._next_probe = now + self._backoff
        if first:
            log.warning(
                "cache: Redis at %s is unreachable (%s: %s); continuing WITHOUT cache; a later call retries "
                "after %gs (back-off doubling to %gs); logged once per outage",
                _redacted(self.url), type(exc).__name__, exc, self.retry_after, self.max_retry_after,
            )
        else:
            log.debug("cache: Redis still unreachable: %s", exc)

    def _on_response_error(self, kind: str, exc: Exception) -> None:
        self._stats.inc(kind, "errors")
        if not self._warned_response_error:
            self._warned_response_error = True
            log.warning("cache: Redis refused a cache command (%s: %s); that call runs uncached "
                        "(further such errors are logged at debug level)", type(exc).__name__, exc)
        else:
            log.debug("cache: Redis refused a cache command: %s", exc)

    def _call(self, kind: str, fn: Callable[[], T]) -> tuple[bool, T | None]:
        """Run one Redis operation; (True, result) on success, (False, None) when it failed/was skipped."""
        if self._skip():
            return False, None

        errors = self._redis_errors
        try:
            # One attempt through the shared "redis" breaker: a cache lookup is not worth a retry (the
            # fallback, computing the answer, is always there), and while the breaker is open (opened
            # by the cache, the queue or the ledger) nothing is sent at all.
            result = guarded_sync("redis", fn, idempotent=False, counts=redis_outage)
        # InvalidResponse: something answered that does not speak RESP (wrong port, an HTTP proxy).
        except (CircuitOpenError, errors.ConnectionError, errors.TimeoutError, errors.InvalidResponse,
                OSError) as exc:
            self._on_connection_error(kind, exc)
            return False, None
        except errors.RedisError as exc:
            self._on_success()  # the server answered
            self._on_response_error(kind, exc)
            return False, None
        self._on_success()
        return True, result

    # -- Cache protocol -------------------------------------------------------------------------------
    def get(self, kind: CacheKind, payload: Any) -> Any | None:
        key = fingerprint(kind, payload, namespace=self.namespace)
        ok, raw = self._call(kind, lambda: self._client.get(key))
        value: Any | None = None
        if ok and raw is not None:
            try:
                value = json.loads(raw)
            except ValueError:
                log.debug("cache: ignoring a non-JSON value at %s", key)
                value = None
        hit = value is not None
        self._stats.inc(kind, "hits" if hit else "misses")
        if ok:  # shared counters; skipped when Redis is down (in-process stats still count)
            what = "hits" if hit else "misses"
            self._call(kind, lambda: self._client.incr(_counter_key(self.namespace, kind, what)))
        return value

    def set(self, kind: CacheKind, payload: Any, value: Any) -> None:
        key = fingerprint(kind, payload, namespace=self.namespace)
        text = _dump_value(value)
        ttl_ms = int(self.ttl[kind] * 1000)
        if ttl_ms <= 0:
            return
        ok, _ = self._call(kind, lambda: self._client.set(key, text.encode("utf-8"), px=ttl_ms))
        if ok:
            self._stats.inc(kind, "sets")

    def stats(self) -> dict[str, dict[str, int]]:
        """This process's counters (hits, misses, sets, errors) per kind."""
        return self._stats.snapshot()

    def shared_stats(self) -> dict[str, dict[str, int]] | None:
        """Hits and misses of every process using this Redis (the INCR counters); None if unreachable."""
        keys = [_counter_key(self.namespace, kind, what) for kind in KINDS for what in ("hits", "misses")]
        ok, values = self._call("analysis", lambda: self._client.mget(keys))
        if not ok or values is None:
            return None
        it = iter(int(v) if v is not None else 0 for v in values)
        return {kind: {"hits": next(it), "misses": next(it)} for kind in KINDS}

    def close(self) -> None:
        self._client.close()


# ------------------------------------------------------------------------------------- factory --
def build_cache(settings: Any, *, max_entries: int = 1024, clock: Callable[[], float] | None = None) -> Cache:
    """Pick the backend from settings: no-op when `ENABLE_CACHING` is false, Redis when `REDIS_URL` is
    set, else the in-process LRU. Never connects here: a Redis that is down at start-up is handled like
    any other outage, on first use."""
    ttl = {
        "analysis": settings.CACHE_TTL_ANALYSIS,
        "playbook": settings.CACHE_TTL_PLAYBOOK,
        "nl": settings.CACHE_TTL_NL,
    }
    extra: dict[str, Any] = {"clock": clock} if clock is not None else {}
    if not settings.ENABLE_CACHING:
        log.info("cache: disabled (ENABLE_CACHING=false)")
        return NullCache()
    if settings.REDIS_URL:
        log.info("cache: Redis at %s", _redacted(settings.REDIS_URL))
        return RedisCache(settings.REDIS_URL, ttl, **extra)
    log.info("cache: in-process LRU (%d entries); set REDIS_URL to share it between processes", max_entries)
    return LRUCache(ttl, max_entries=max_entries, **extra)


async def cached_call(
    cache: Cache,
    kind: CacheKind,
    payload: Any,
    fn: Callable[[], Awaitable[Any]] | Callable[[], Any],
    *,
    model: type[BaseModel] | None = None,
) -> Any:
    """Return the cached value for (kind, payload), or await `fn()`, store its result and return it.

    Without `model` a hit returns the JSON form (a dict for a Pydantic result) while a miss returns what
    `fn` returned; pass `model=` to get the same type both ways (a stored value that no longer validates
    is treated as a miss and overwritten). `None` results are not stored; exceptions propagate and
    nothing is stored. Concurrent misses for one key each call `fn` (no single-flight).
    """
    cached = cache.get(kind, payload)
    if cached is not None:
        if model is None:
            return cached
        try:
            return model.model_validate(cached)
        except ValidationError:
            log.debug("cache: stored %s value no longer validates as %s; recomputing", kind, model.__name__)
    result = fn()
    if inspect.isawaitable(result):
        result = await result
    if result is not None:
        cache.set(kind, payload, result)
    return result
