"""In-process LRU, the no-op cache, `build_cache` and `cached_call` (no server needed)."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel

from core.settings import load_settings
from memory.cache import Cache, LRUCache, NullCache, RedisCache, build_cache, cached_call


class FakeClock:
    """Monotonic time the test moves by hand, so TTL tests never sleep."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Answer(BaseModel):
    text: str
    score: float


def test_hit_miss_and_stats() -> None:
    cache = LRUCache()
    assert cache.get("nl", {"q": "why?"}) is None
    cache.set("nl", {"q": "why?"}, {"a": 1})
    assert cache.get("nl", {"q": "  why?\n"}) == {"a": 1}
    assert cache.get("analysis", {"q": "why?"}) is None  # kinds do not share entries
    assert cache.stats() == {
        "analysis": {"hits": 0, "misses": 1, "sets": 0, "errors": 0},
        "playbook": {"hits": 0, "misses": 0, "sets": 0, "errors": 0},
        "nl": {"hits": 1, "misses": 1, "sets": 1, "errors": 0},
    }


def test_ttl_per_kind() -> None:
    clock = FakeClock()
    cache = LRUCache({"analysis": 600, "playbook": 1800, "nl": 300}, clock=clock)
    for kind in ("analysis", "playbook", "nl"):
        cache.set(kind, {"q": 1}, kind)
    clock.advance(299)
    assert [cache.get(k, {"q": 1}) for k in ("analysis", "playbook", "nl")] == ["analysis", "playbook", "nl"]
    clock.advance(1)  # nl expires at exactly 300 s
    assert [cache.get(k, {"q": 1}) for k in ("analysis", "playbook", "nl")] == ["analysis", "playbook", None]
    clock.advance(300)
    assert [cache.get(k, {"q": 1}) for k in ("analysis", "playbook", "nl")] == [None, "playbook", None]
    clock.advance(1200)
    assert cache.get("playbook", {"q": 1}) is None
    assert len(cache) == 0  # expired entries are removed on access


def test_zero_ttl_disables_a_kind() -> None:
    cache = LRUCache({"nl": 0})
    cache.set("nl", {"q": 1}, "x")
    cache.set("analysis", {"q": 1}, "y")
    assert cache.get("nl", {"q": 1}) is None
    assert cache.get("analysis", {"q": 1}) == "y"


def test_lru_eviction_respects_recency() -> None:
    cache = LRUCache(max_entries=3)
    for i in range(3):
        cache.set("analysis", {"i": i}, i)
    assert cache.get("analysis", {"i": 0}) == 0  # 0 becomes most recently used; 1 is now oldest
    cache.set("analysis", {"i": 3}, 3)
    assert len(cache) == 3
    assert cache.get("analysis", {"i": 1}) is None
    assert [cache.get("analysis", {"i": i}) for i in (0, 2, 3)] == [0, 2, 3]
    # overwriting an existing key does not evict anything
    cache.set("analysis", {"i": 0}, "zero")
    assert len(cache) == 3 and cache.get("analysis", {"i": 0}) == "zero"


def test_values_are_json_copies() -> None:
    cache = LRUCache()
    cache.set("analysis", {"q": 1}, Answer(text="disk full", score=0.9))
    got = cache.get("analysis", {"q": 1})
    assert got == {"text": "disk full", "score": 0.9}
    got["text"] = "mutated"
    assert cache.get("analysis", {"q": 1}) == {"text": "disk full", "score": 0.9}
    with pytest.raises(TypeError, match="JSON-serialisable"):
        cache.set("analysis", {"q": 2}, object())


def test_null_cache() -> None:
    cache = NullCache()
    cache.set("nl", {"q": 1}, "x")
    assert cache.get("nl", {"q": 1}) is None
    assert cache.stats()["nl"] == {"hits": 0, "misses": 0, "sets": 0, "errors": 0}


def test_build_cache_picks_backend() -> None:
    lru = build_cache(load_settings(_env_file=None, REDIS_URL=None, CACHE_TTL_NL=7))
    assert isinstance(lru, LRUCache) and lru.ttl["nl"] == 7
    assert isinstance(lru, Cache)
    off = build_cache(load_settings(_env_file=None, ENABLE_CACHING=False, REDIS_URL="redis://127.0.0.1:1/0"))
    assert isinstance(off, NullCache)
    # building a Redis cache never connects: port 1 is closed and this still succeeds
    red = build_cache(load_settings(_env_file=None, REDIS_URL="redis://127.0.0.1:1/0", CACHE_TTL_PLAYBOOK=5))
    assert isinstance(red, RedisCache) and red.ttl == {"analysis": 600, "playbook": 5, "nl": 300}
    red.close()


def test_cached_call_stores_and_reuses() -> None:
    cache = LRUCache()
    calls: list[str] = []

    async def compute() -> Answer:
        calls.append("x")
        return Answer(text="restart web", score=0.7)

    async def scenario() -> None:
        first = await cached_call(cache, "analysis", {"alert": "HighCPU"}, compute, model=Answer)
        second = await cached_call(cache, "analysis", {"alert": "HighCPU"}, compute, model=Answer)
        raw = await cached_call(cache, "analysis", {"alert": "HighCPU"}, compute)
        assert first == second == Answer(text="restart web", score=0.7)
        assert isinstance(second, Answer)
        assert raw == {"text": "restart web", "score": 0.7}

    asyncio.run(scenario())
    assert calls == ["x"]
    assert cache.stats()["analysis"]["hits"] == 2


def test_cached_call_edge_cases() -> None:
    cache = LRUCache()
    calls: list[int] = []

    def sync_none() -> None:  # sync callables work too; None is never stored
        calls.append(1)

    async def boom() -> str:
        raise RuntimeError("llm down")

    async def scenario() -> None:
        assert await cached_call(cache, "nl", {"q": 1}, sync_none) is None
        assert await cached_call(cache, "nl", {"q": 1}, sync_none) is None
        with pytest.raises(RuntimeError, match="llm down"):
            await cached_call(cache, "nl", {"q": 2}, boom)
        # a stored value that no longer fits the model is recomputed and overwritten
        cache.set("analysis", {"q": 3}, {"old": "shape"})
        fresh = await cached_call(cache, "analysis", {"q": 3}, lambda: Answer(text="new", score=1.0), model=Answer)
        assert fresh == Answer(text="new", score=1.0)
        assert cache.get("analysis", {"q": 3}) == {"text": "new", "score": 1.0}

    asyncio.run(scenario())
    assert calls == [1, 1]
    assert cache.get("nl", {"q": 2}) is None


def test_disabled_cache_always_calls_through() -> None:
    cache = build_cache(load_settings(_env_file=None, ENABLE_CACHING=False))
    calls: list[int] = []

    async def compute() -> dict[str, int]:
        calls.append(1)
        return {"n": len(calls)}

    async def scenario() -> list[object]:
        return [await cached_call(cache, "playbook", {"p": 1}, compute) for _ in range(3)]

    assert asyncio.run(scenario()) == [{"n": 1}, {"n": 2}, {"n": 3}]
