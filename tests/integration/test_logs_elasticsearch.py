"""The real AsyncElasticsearch client, through ElasticsearchSource, against the local ES 8 wire double.

Elasticsearch itself cannot run on these machines; tests/sim/elasticsearch.py answers with bodies
shaped as the ES 8 REST reference documents them, and the client's own product check
(`X-Elastic-Product`) and (de)serialisation run for real.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.sim.elasticsearch import ElasticsearchDouble
from tools.log_types import LogQuery, LogSourceError
from tools.logs.elasticsearch import ElasticFields, ElasticsearchSource

pytestmark = pytest.mark.integration

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _docs() -> list[dict]:
    docs = []
    for i in range(25):  # two lines per second, so timestamps tie and the tiebreaker matters
        docs.append({
            "_index": "logs-app-2024.05.01", "_id": f"d{i:02d}",
            "_source": {
                "@timestamp": (T0 + timedelta(seconds=i // 2)).isoformat().replace("+00:00", "Z"),
                "message": f"request {i} failed upstream" if i % 3 == 0 else f"request {i} ok",
                "service": {"name": "api" if i % 2 else "db"},
                "log": {"level": "ERROR" if i % 3 == 0 else "INFO"},
                "host": {"name": f"h{i % 2}"},
            },
        })
    docs.append({"_index": "metrics-x", "_id": "m1", "_source": {"@timestamp": T0.isoformat(), "message": "other"}})
    return docs


@pytest.fixture
def es() -> Iterator[ElasticsearchDouble]:
    with ElasticsearchDouble(_docs()) as double:
        yield double


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


async def _with_source(es: ElasticsearchDouble, fn, **kw):  # type: ignore[no-untyped-def]
    src = ElasticsearchSource(es.url, index="logs-*", **kw)
    try:
        return await fn(src)
    finally:
        await src.close()


QUERY = LogQuery(start=T0, end=T0 + timedelta(hours=1), limit=1000)


def test_pagination_across_pages_with_search_after_and_pit(es: ElasticsearchDouble) -> None:
    recs = run(_with_source(es, lambda s: s.search(QUERY), page_size=4))
    assert [r.fields["_id"] for r in recs] == [f"d{i:02d}" for i in range(25)]  # all, in order, no dupes
    searches = [r for r in es.requests if r["path"].endswith("/_search")]
    assert len(searches) == 7  # 6 full pages of 4 + 1 short page
    assert "search_after" not in searches[0]["body"] and all("search_after" in r["body"] for r in searches[1:])
    assert all(r["body"]["pit"]["id"] for r in searches) and es.open_pits == 0  # PIT closed afterwards
    assert searches[0]["body"]["sort"][1] == {"_shard_doc": {"order": "asc"}}
    first = recs[0]
    assert (first.service, first.level, first.host, first.message) == ("db", "ERROR", "h0", "request 0 failed upstream")
    assert first.timestamp == T0


def test_limit_stops_paging(es: ElasticsearchDouble) -> None:
    recs = run(_with_source(es, lambda s: s.search(QUERY.model_copy(update={"limit": 6})), page_size=4))
    assert len(recs) == 6
    sizes = [r["body"]["size"] for r in es.requests if r["path"].endswith("/_search")]
    assert sizes == [4, 2]


def test_filters_service_level_text_and_time(es: ElasticsearchDouble) -> None:
    q = QUERY.model_copy(update={"service": "api", "level": "error", "text": "failed upstream"})
    recs = run(_with_source(es, lambda s: s.search(q)))
    assert [r.fields["_id"] for r in recs] == ["d03", "d09", "d15", "d21"]
    window = QUERY.model_copy(update={"start": T0 + timedelta(seconds=10), "end": T0 + timedelta(seconds=11)})
    recs = run(_with_source(es, lambda s: s.search(window)))
    assert [r.fields["_id"] for r in recs] == ["d20", "d21", "d22", "d23"]


def test_without_pit_uses_index_and_a_tiebreaker_field(es: ElasticsearchDouble) -> None:
    recs = run(_with_source(es, lambda s: s.search(QUERY), page_size=10, use_pit=False, tiebreaker="_doc"))
    assert len(recs) == 25
    assert all(r["path"] == "/logs-*/_search" for r in es.requests)


def test_terms_and_date_histogram_aggregations(es: ElasticsearchDouble) -> None:
    counts = run(_with_source(es, lambda s: s.count_by("service.name", QUERY)))
    assert counts == {"db": 13, "api": 12}
    errors = run(_with_source(es, lambda s: s.count_by("host.name", QUERY.model_copy(update={"level": "error"}))))
    assert errors == {"h0": 5, "h1": 4}
    q = QUERY.model_copy(update={"end": T0 + timedelta(seconds=20)})
    hist = run(_with_source(es, lambda s: s.histogram(q, "5s")))
    assert hist == [(T0, 10), (T0 + timedelta(seconds=5), 10), (T0 + timedelta(seconds=10), 5),
                    (T0 + timedelta(seconds=15), 0), (T0 + timedelta(seconds=20), 0)]


def test_custom_field_names(es: ElasticsearchDouble) -> None:
    fields = ElasticFields(service="host.name", level="log.level")
    q = QUERY.model_copy(update={"service": "h1", "limit": 3})
    recs = run(_with_source(es, lambda s: s.search(q), fields=fields))
    assert [r.service for r in recs] == ["h1", "h1", "h1"]


def test_server_errors_become_one_readable_line(es: ElasticsearchDouble) -> None:
    es.fail_next(400, "search_phase_execution_exception", "No mapping found for [@timestamp] in order to sort on")
    with pytest.raises(LogSourceError, match=r"HTTP 400.*No mapping found"):
        run(_with_source(es, lambda s: s.search(QUERY)))


def test_server_that_is_not_elasticsearch_is_refused(es: ElasticsearchDouble) -> None:
    es.impersonate_other_product()
    with pytest.raises(LogSourceError, match="not Elasticsearch"):
        run(_with_source(es, lambda s: s.search(QUERY)))


def test_unreachable_server_is_a_clear_error() -> None:
    with ElasticsearchDouble([]) as gone:
        url = gone.url
    async def go() -> None:
        src = ElasticsearchSource(url, timeout=2.0)
        try:
            await src.search(QUERY)
        finally:
            await src.close()
    with pytest.raises(LogSourceError, match="cannot reach"):
        run(go())
