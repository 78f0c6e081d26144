"""RedisCache against a real redis-server: keys, TTLs, counters, outage and recovery."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator

import pytest
import redis

from core.settings import load_settings
from memory.cache import CacheKind, NullCache, RedisCache, build_cache, cached_call, fingerprint
from tests.servers import RedisServer, redis_server  # noqa: F401  (pytest fixture)

pytestmark = pytest.mark.integration

LOGGER = "memory.cache"


class FakeClock:
    """Drives the cache's retry back-off by hand; Redis's own clock (key TTLs) stays real."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def raw(redis_server: RedisServer) -> Iterator[redis.Redis]:  # noqa: F811
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    client.close()


def _alert(started: str, request_id: str) -> dict[str, object]:
    return {
        "labels": {"alertname": "KubePodCrashLooping", "namespace": "shop", "pod": "cart"},
        "annotations": {"description": f"Pod restarted at {started} (request {request_id})"},
        "startsAt": started,
    }


def _data_keys(raw: redis.Redis) -> list[str]:
    return [k for k in raw.scan_iter("aiops:cache:v1:*") if ":stats:" not in k]


def test_hit_miss_and_shared_counters(redis_server: RedisServer, raw: redis.Redis) -> None:  # noqa: F811
    cache = RedisCache(redis_server.url)
    assert cache.get("analysis", {"q": 1}) is None
    cache.set("analysis", {"q": 1}, {"root_cause": "OOM"})
    assert cache.get("analysis", {"q": 1}) == {"root_cause": "OOM"}
    assert cache.get("analysis", {"q": 1}) == {"root_cause": "OOM"}
    assert cache.get("nl", {"q": 1}) is None

    assert cache.stats()["analysis"] == {"hits": 2, "misses": 1, "sets": 1, "errors": 0}
    assert raw.get("aiops:cache:v1:stats:analysis:hits") == "2"
    assert raw.get("aiops:cache:v1:stats:analysis:misses") == "1"
    assert raw.get("aiops:cache:v1:stats:nl:misses") == "1"
    # the value is plain JSON under the fingerprint key
    assert raw.get(fingerprint("analysis", {"q": 1})) == '{"root_cause":"OOM"}'

    # a second process (another cache object) shares entries and counters
    other = RedisCache(redis_server.url)
    assert other.get("analysis", {"q": 1}) == {"root_cause": "OOM"}
    assert other.stats()["analysis"]["hits"] == 1
    assert other.shared_stats() == {
        "analysis": {"hits": 3, "misses": 1},
        "playbook": {"hits": 0, "misses": 0},
        "nl": {"hits": 0, "misses": 1},
    }
    cache.close()
    other.close()


def test_ttl_set_per_kind(redis_server: RedisServer, raw: redis.Redis) -> None:  # noqa: F811
    settings = load_settings(_env_file=None, REDIS_URL=redis_server.url,
                             CACHE_TTL_ANALYSIS=600, CACHE_TTL_PLAYBOOK=1800, CACHE_TTL_NL=300)
    cache = build_cache(settings)
    assert isinstance(cache, RedisCache)
    for kind in ("analysis", "playbook", "nl"):
        cache.set(kind, {"q": "same"}, {"kind": kind})
    expected: dict[CacheKind, int] = {"analysis": 600_000, "playbook": 1_800_000, "nl": 300_000}
    for kind, ttl_ms in expected.items():
        pttl = raw.pttl(fingerprint(kind, {"q": "same"}))
        assert ttl_ms - 5_000 < pttl <= ttl_ms, (kind, pttl)
    assert raw.ttl("aiops:cache:v1:stats:analysis:hits") in (-1, -2)  # counters never expire


def test_entries_expire(redis_server: RedisServer, raw: redis.Redis) -> None:  # noqa: F811
    # Sub-second override so Redis really expires the key; only the nl kind is short.
    cache = RedisCache(redis_server.url, {"nl": 0.05, "analysis": 60})
    cache.set("nl", {"q": 1}, "short")
    cache.set("analysis", {"q": 1}, "long")
    assert 0 < raw.pttl(fingerprint("nl", {"q": 1})) <= 50
    deadline = time.monotonic() + 5  # wait for Redis to drop it; not a timing assertion
    while raw.exists(fingerprint("nl", {"q": 1})) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert cache.get("nl", {"q": 1}) is None
    assert cache.get("analysis", {"q": 1}) == "long"
    cache.close()


def test_normalised_requests_share_one_key(redis_server: RedisServer, raw: redis.Redis) -> None:  # noqa: F811
    cache = RedisCache(redis_server.url)
    calls: list[int] = []

    async def analyse() -> dict[str, str]:
        calls.append(1)
        return {"root_cause": "bad config push"}

    async def scenario() -> None:
        first = _alert("2026-11-24T21:00:00Z", "550e8400-e29b-41d4-a716-446655440000")
        again = _alert("2026-11-24T21:05:00.5Z", "123e4567-e89b-12d3-a456-426614174000")
        other = {**first, "labels": {"alertname": "KubePodCrashLooping", "namespace": "shop", "pod": "checkout"}}
        for payload in (first, again, first):
            assert await cached_call(cache, "analysis", payload, analyse) == {"root_cause": "bad config push"}
        assert len(calls) == 1
        await cached_call(cache, "analysis", other, analyse)
        assert len(calls) == 2

    asyncio.run(scenario())
    assert len(_data_keys(raw)) == 2
    cache.close()


def test_garbage_value_is_a_miss(redis_server: RedisServer, raw: redis.Redis) -> None:  # noqa: F811
    cache = RedisCache(redis_server.url)
    raw.set(fingerprint("nl", {"q": 1}), "not json {")
    assert cache.get("nl", {"q": 1}) is None
    assert cache.available


def test_outage_warns_once_and_recovers(
    redis_server: RedisServer, raw: redis.Redis, caplog: pytest.LogCaptureFixture  # noqa: F811
) -> None:
    clock = FakeClock()
    cache = RedisCache(redis_server.url, clock=clock)
    calls: list[int] = []

    async def compute() -> dict[str, int]:
        calls.append(1)
        return {"n": len(calls)}

    def run(payload: dict[str, object]) -> object:
        return asyncio.run(cached_call(cache, "analysis", payload, compute))

    assert run({"q": "warm"}) == {"n": 1}
    assert run({"q": "warm"}) == {"n": 1}  # hit while healthy

    caplog.set_level(logging.DEBUG, logger=LOGGER)
    redis_server.stop(kill=True)

    # many calls during the outage: all succeed uncached, ONE warning
    results = [run({"q": "warm"}) for _ in range(50)]
    assert results == [{"n": n} for n in range(2, 52)]
    cache.set("nl", {"q": 1}, "x")
    assert cache.get("nl", {"q": 1}) is None
    assert not cache.available
    assert cache.shared_stats() is None
    warnings = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "unreachable" in warnings[0].getMessage() and str(redis_server.port) in warnings[0].getMessage()
    # during the back-off Redis is not contacted at all: only the first call paid for a failed attempt
    assert cache.stats()["analysis"]["errors"] == 1

    # a probe after the back-off while still down: another failed attempt, still no second warning
    clock.advance(1.0)
    assert run({"q": "warm"}) == {"n": 52}
    assert cache.stats()["analysis"]["errors"] == 2
    clock.advance(1.9)  # back-off doubled to 2 s: not yet time for another probe
    run({"q": "warm"})
    assert cache.stats()["analysis"]["errors"] == 2

    # Redis comes back on the same port (empty: persistence is off)
    redis_server.start()
    clock.advance(10.0)
    assert run({"q": "warm"}) == {"n": 54}  # miss (fresh server), stored again
    assert cache.available
    assert run({"q": "warm"}) == {"n": 54}  # and served from Redis again
    assert cache.get("analysis", {"q": "warm"}) == {"n": 54}

    cache_records = [r for r in caplog.records if r.name == LOGGER]
    assert len([r for r in cache_records if r.levelno == logging.WARNING]) == 1
    recovered = [r for r in cache_records if r.levelno == logging.INFO and "reachable again" in r.getMessage()]
    assert len(recovered) == 1
    assert "after 1 failed probe" in recovered[0].getMessage()

    # a second outage is a new event: warned once more
    redis_server.stop(kill=True)
    for _ in range(10):
        run({"q": "other"})
    warnings = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]
    assert len(warnings) == 2
    cache.close()


def test_redis_down_at_startup(caplog: pytest.LogCaptureFixture) -> None:
    from tests.servers import free_port

    caplog.set_level(logging.WARNING, logger=LOGGER)
    cache = build_cache(load_settings(_env_file=None, REDIS_URL=f"redis://:secret@127.0.0.1:{free_port()}/0"))
    for i in range(20):
        cache.set("playbook", {"i": i}, {"ok": True})
        assert cache.get("playbook", {"i": i}) is None
    warnings = [r for r in caplog.records if r.name == LOGGER]
    assert len(warnings) == 1
    assert "secret" not in warnings[0].getMessage()  # password redacted
    assert cache.stats()["playbook"] == {"hits": 0, "misses": 20, "sets": 0, "errors": 1}


def test_caching_disabled_writes_nothing(redis_server: RedisServer, raw: redis.Redis) -> None:  # noqa: F811
    cache = build_cache(load_settings(_env_file=None, ENABLE_CACHING=False, REDIS_URL=redis_server.url))
    assert isinstance(cache, NullCache)
    calls: list[int] = []

    async def compute() -> str:
        calls.append(1)
        return "answer"

    async def scenario() -> None:
        for _ in range(3):
            assert await cached_call(cache, "nl", {"q": "why"}, compute) == "answer"

    asyncio.run(scenario())
    assert len(calls) == 3
    assert raw.dbsize() == 0


def test_refused_commands_are_not_an_outage(
    redis_server: RedisServer, raw: redis.Redis, caplog: pytest.LogCaptureFixture  # noqa: F811
) -> None:
    cache = RedisCache(redis_server.url)
    cache.set("nl", {"q": "before"}, "stored")
    # Redis answers but refuses writes: OOM under the noeviction policy
    raw.config_set("maxmemory-policy", "noeviction")
    raw.config_set("maxmemory", 1)
    caplog.set_level(logging.WARNING, logger=LOGGER)
    for i in range(5):
        cache.set("nl", {"q": i}, "x")
    assert cache.available  # not treated as an outage: reads keep working
    assert cache.get("nl", {"q": "before"}) == "stored"
    assert len([r for r in caplog.records if r.name == LOGGER]) == 1
    assert "OutOfMemoryError" in caplog.records[0].getMessage()
    # 5 refused SETs + the refused INCR of the shared hit counter after the (successful) GET
    assert cache.stats()["nl"]["errors"] == 6
    raw.config_set("maxmemory", 0)
    cache.close()


def test_non_redis_server_counts_as_down(caplog: pytest.LogCaptureFixture) -> None:
    """Wrong port pointing at an HTTP service: one warning, then back-off, no per-call round trips."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[int] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(1)
            with conn:
                conn.recv(1024)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    caplog.set_level(logging.WARNING, logger=LOGGER)
    cache = RedisCache(f"redis://127.0.0.1:{listener.getsockname()[1]}/0", clock=FakeClock())
    try:
        for i in range(20):
            assert cache.get("analysis", {"i": i}) is None
        assert not cache.available
        assert cache.stats()["analysis"]["errors"] == 1
        assert len(accepted) == 1
        assert len([r for r in caplog.records if r.name == LOGGER]) == 1
    finally:
        cache.close()
        listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        listener.close()
        thread.join(timeout=5)
