"""A small local stand-in for Elasticsearch 8, speaking its HTTP wire protocol.

Elasticsearch cannot run on the build machines, so the *real* `AsyncElasticsearch` client is tested
against this double. It answers the calls `tools.logs.elasticsearch.ElasticsearchSource` makes, with bodies shaped
as the Elasticsearch 8 REST reference documents them:

* `GET /` (cluster info), `POST /<index>/_pit?keep_alive=..` and `DELETE /_pit` (point in time);
* `POST /<index>/_search` and `POST /_search` with a `pit`: queries `bool` (filter / must / should /
  must_not), `range`, `term`, `terms`, `match`, `match_all`; `sort` (fields, `_doc`, `_shard_doc`,
  `_score`), `search_after`, `size`, `from`, `track_total_hits`; aggregations `terms` and
  `date_histogram` (`fixed_interval` / `calendar_interval`, `min_doc_count`, `extended_bounds`);
* every response carries `X-Elastic-Product: Elasticsearch` (the client refuses servers without it);
  errors use ES's `{"error": {"root_cause": [...], "type", "reason"}, "status"}` shape.

Not covered: scoring (hits score 1.0), analyzers beyond lower-cased word splitting, nested docs.
Usage: `with ElasticsearchDouble(docs) as es: es.url`.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import re
import socket
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

CONTENT_TYPE = "application/vnd.elasticsearch+json;compatible-with=8"
VERSION = "8.13.4"
_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_CALENDAR_MS = {"minute": 60_000, "1m": 60_000, "hour": 3_600_000, "1h": 3_600_000, "day": 86_400_000,
                "1d": 86_400_000}


class EsError(Exception):
    def __init__(self, status: int, type_: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.type, self.reason = status, type_, reason

    def body(self) -> dict[str, Any]:
        cause = {"type": self.type, "reason": self.reason}
        return {"error": {"root_cause": [cause], **cause}, "status": self.status}


def _get(doc: dict[str, Any], field: str) -> Any:
    if field in doc:
        return doc[field]
    cur: Any = doc
    for part in field.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _as_time(value: Any) -> datetime | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    if isinstance(value, str):
        try:
            ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    return None


def _millis(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


def _comparable(a: Any, b: Any) -> tuple[Any, Any]:
    ta, tb = _as_time(a), _as_time(b)
    if ta is not None and tb is not None and (isinstance(a, str) or isinstance(b, str)):
        return ta, tb
    return a, b


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"\W+", text.lower()) if w]


def _interval_ms(spec: dict[str, Any]) -> int:
    if "fixed_interval" in spec:
        m = re.fullmatch(r"(\d+)(ms|s|m|h|d)", str(spec["fixed_interval"]))
        if not m:
            raise EsError(400, "illegal_argument_exception", f"failed to parse [{spec['fixed_interval']}]")
        return int(m.group(1)) * _UNITS_MS[m.group(2)]
    if "calendar_interval" in spec:
        value = str(spec["calendar_interval"])
        if value not in _CALENDAR_MS:
            raise EsError(400, "illegal_argument_exception", f"The supplied interval [{value}] could not be "
                          "parsed as a calendar interval.")
        return _CALENDAR_MS[value]
    raise EsError(400, "illegal_argument_exception", "Invalid interval specified, must be non-null and non-empty")


class _Store:
    def __init__(self, docs: list[dict[str, Any]]) -> None:
        self.docs: list[dict[str, Any]] = []
        for i, d in enumerate(docs):
            self.docs.append({"_index": d.get("_index", "logs-app"), "_id": str(d.get("_id", f"doc-{i}")),
                              "_source": d["_source"] if "_source" in d else d, "_seq": i})
        self.pits: dict[str, list[str]] = {}
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    # -- query ----------------------------------------------------------------------------------
    def matches(self, query: dict[str, Any] | None, src: dict[str, Any]) -> bool:
        if not query:
            return True
        if len(query) != 1:
            raise EsError(400, "parsing_exception", "[_na] query malformed, must start with start_object")
        kind, body = next(iter(query.items()))
        if kind == "match_all":
            return True
        if kind == "bool":
            must = list(body.get("must", [])) + list(body.get("filter", []))
            must = [must] if isinstance(must, dict) else must
            if not all(self.matches(q, src) for q in must):
                return False
            if any(self.matches(q, src) for q in body.get("must_not", [])):
                return False
            should = body.get("should", [])
            if should:
                need = int(body.get("minimum_should_match", 0 if must else 1))
                if sum(self.matches(q, src) for q in should) < need:
                    return False
            return True
        if kind == "range":
            (field, cond), = body.items()
            value = _get(src, field)
            if value is None:
                return False
            for op, bound in cond.items():
                if op in ("format", "time_zone", "boost"):
                    continue
                a, b = _comparable(value, bound)
                ok = {"gte": a >= b, "gt": a > b, "lte": a <= b, "lt": a < b}.get(op)
                if ok is None:
                    raise EsError(400, "parsing_exception", f"[range] query does not support [{op}]")
                if not ok:
                    return False
            return True
        if kind == "term":
            (field, spec), = body.items()
            want = spec.get("value") if isinstance(spec, dict) else spec
            value = _get(src, field)
            if isinstance(spec, dict) and spec.get("case_insensitive") and isinstance(value, str):
                return value.lower() == str(want).lower()
            return value == want
        if kind == "terms":
            (field, values), = ((k, v) for k, v in body.items() if k != "boost")
            return _get(src, field) in values
        if kind == "match":
            (field, spec), = body.items()
            text = spec.get("query", "") if isinstance(spec, dict) else spec
            operator = (spec.get("operator", "or") if isinstance(spec, dict) else "or").lower()
            have = set(_words(str(_get(src, field) or "")))
            words = _words(str(text))
            if not words:
                return False
            return all(w in have for w in words) if operator == "and" else any(w in have for w in words)
        raise EsError(400, "parsing_exception", f"unknown query [{kind}]")

    # -- search ---------------------------------------------------------------------------------
    def _candidates(self, indices: list[str] | None) -> list[dict[str, Any]]:
        if indices is None:
            return list(self.docs)
        return [d for d in self.docs if any(fnmatch.fnmatchcase(d["_index"], p) for p in indices)]

    def _sort_spec(self, sort: Any) -> list[tuple[str, str]]:
        if sort is None:
            return []
        items = sort if isinstance(sort, list) else [sort]
        out = []
        for item in items:
            if isinstance(item, str):
                out.append((item, "desc" if item == "_score" else "asc"))
            else:
                (field, spec), = item.items()
                out.append((field, spec if isinstance(spec, str) else spec.get("order", "asc")))
        return out

    def _sort_value(self, doc: dict[str, Any], field: str) -> Any:
        if field in ("_doc", "_shard_doc"):
            return doc["_seq"]
        if field == "_score":
            return 1.0
        value = _get(doc["_source"], field)
        ts = _as_time(value) if isinstance(value, str) else None
        return _millis(ts) if ts is not None else value

    def search(self, indices: list[str] | None, body: dict[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        pit = body.get("pit")
        if pit is not None:
            if indices is not None:
                raise EsError(400, "action_request_validation_exception",
                              "Validation Failed: 1: [indices] cannot be used with point in time. Do not "
                              "specify any index with point in time.;")
            if pit.get("id") not in self.pits:
                raise EsError(404, "search_context_missing_exception", "No search context found for id")
            indices = self.pits[pit["id"]]
        spec = self._sort_spec(body.get("sort"))
        if any(f == "_shard_doc" for f, _ in spec) and pit is None:
            raise EsError(400, "illegal_argument_exception",
                          "[_shard_doc] sort field cannot be used without [point in time]")
        docs = [d for d in self._candidates(indices) if self.matches(body.get("query"), d["_source"])]
        total = len(docs)
        for field, order in reversed(spec):
            present = [d for d in docs if self._sort_value(d, field) is not None]
            missing = [d for d in docs if self._sort_value(d, field) is None]
            present.sort(key=functools.partial(self._sort_value, field=field), reverse=(order == "desc"))
            docs = present + missing  # ES puts missing values last
        after = body.get("search_after")
        if after is not None:
            if len(after) != len(spec):
                raise EsError(400, "illegal_argument_exception",
                              f"search_after has {len(after)} value(s) but sort has {len(spec)}.")

            def is_after(d: dict[str, Any]) -> bool:
                for (field, order), ref in zip(spec, after, strict=True):
                    v = self._sort_value(d, field)
                    if v == ref:
                        continue
                    return (v > ref) if order == "asc" else (v < ref)
                return False

            docs = [d for d in docs if is_after(d)]
        size = int(body.get("size", 10))
        start = int(body.get("from", 0))
        page = docs[start : start + size]
        hits = []
        for d in page:
            hit: dict[str, Any] = {"_index": d["_index"], "_id": d["_id"], "_score": None if spec else 1.0,
                                   "_source": d["_source"]}
            if spec:
                hit["sort"] = [self._sort_value(d, f) for f, _ in spec]
            hits.append(hit)
        hits_obj: dict[str, Any] = {"max_score": None if spec or not hits else 1.0, "hits": hits}
        track = body.get("track_total_hits", 10_000)
        if track is True:
            hits_obj["total"] = {"value": total, "relation": "eq"}
        elif track is not False:
            limit = int(track)
            hits_obj["total"] = ({"value": total, "relation": "eq"} if total <= limit
                                 else {"value": limit, "relation": "gte"})
        shards = len({d["_index"] for d in self._candidates(indices)}) or 1
        resp: dict[str, Any] = {
            "took": max(int((time.perf_counter() - started) * 1000), 1),
            "timed_out": False,
            "_shards": {"total": shards, "successful": shards, "skipped": 0, "failed": 0},
            "hits": {k: hits_obj[k] for k in ("total", "max_score", "hits") if k in hits_obj},
        }
        if pit is not None:
            resp = {"pit_id": pit["id"], **resp}
        aggs = body.get("aggs") or body.get("aggregations")
        if aggs:
            resp["aggregations"] = {name: self._agg(spec_, docs) for name, spec_ in aggs.items()}
        return resp

    def _agg(self, spec: dict[str, Any], docs: list[dict[str, Any]]) -> dict[str, Any]:
        if "terms" in spec:
            t = spec["terms"]
            counts: dict[Any, int] = {}
            for d in docs:
                v = _get(d["_source"], t["field"])
                if v is not None:
                    counts[v] = counts.get(v, 0) + 1
            ordered = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
            size = int(t.get("size", 10))
            top = ordered[:size]
            return {"doc_count_error_upper_bound": 0,
                    "sum_other_doc_count": sum(n for _, n in ordered[size:]),
                    "buckets": [{"key": k, "doc_count": n} for k, n in top]}
        if "date_histogram" in spec:
            h = spec["date_histogram"]
            step = _interval_ms(h)
            keys: dict[int, int] = {}
            for d in docs:
                ts = _as_time(_get(d["_source"], h["field"]))
                if ts is not None:
                    k = _millis(ts) // step * step
                    keys[k] = keys.get(k, 0) + 1
            min_count = int(h.get("min_doc_count", 1))
            lo = min(keys) if keys else None
            hi = max(keys) if keys else None
            bounds = h.get("extended_bounds")
            if bounds and min_count == 0:
                bmin, bmax = _as_time(bounds.get("min")), _as_time(bounds.get("max"))
                if bmin is not None:
                    b = _millis(bmin) // step * step
                    lo = b if lo is None else min(lo, b)
                if bmax is not None:
                    b = _millis(bmax) // step * step
                    hi = b if hi is None else max(hi, b)
            buckets = []
            if lo is not None and hi is not None:
                if min_count == 0:
                    k = lo
                    while k <= hi:
                        buckets.append(k)
                        k += step
                else:
                    buckets = sorted(keys)
            out = []
            for k in buckets:
                n = keys.get(k, 0)
                if n < min_count:
                    continue
                iso = datetime.fromtimestamp(k / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{k % 1000:03d}Z"
                out.append({"key_as_string": iso, "key": k, "doc_count": n})
            return {"buckets": out}
        raise EsError(400, "parsing_exception", f"unknown aggregation type in {list(spec)}")


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr
        return

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE)
        if self.server.product_header:
            self.send_header("X-Elastic-Product", "Elasticsearch")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise EsError(400, "parsing_exception", f"request body is not JSON: {exc}") from None

    def _route(self, method: str) -> None:
        store = self.server.store
        url = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(url.query).items()}
        parts = [p for p in url.path.split("/") if p]
        try:
            body = self._body()
            with store.lock:
                store.requests.append({"method": method, "path": url.path, "params": params, "body": body,
                                       "headers": dict(self.headers)})
            if self.server.fail_with is not None:
                status, type_, reason = self.server.fail_with
                raise EsError(status, type_, reason)
            if method in ("GET", "HEAD") and not parts:
                self._send(200, {"name": "sim", "cluster_name": "aiops-sim", "cluster_uuid": "sim",
                                 "version": {"number": VERSION, "build_flavor": "default"},
                                 "tagline": "You Know, for Search"})
                return
            if parts and parts[-1] == "_search" and method in ("GET", "POST"):
                indices = parts[0].split(",") if len(parts) == 2 else None
                self._send(200, store.search(indices, body))
                return
            if len(parts) == 2 and parts[1] == "_pit" and method == "POST":
                if "keep_alive" not in params:
                    raise EsError(400, "action_request_validation_exception",
                                  "Validation Failed: 1: [keep_alive] is not specified;")
                pit_id = uuid.uuid4().hex
                store.pits[pit_id] = parts[0].split(",")
                self._send(200, {"id": pit_id})
                return
            if parts == ["_pit"] and method == "DELETE":
                freed = 1 if store.pits.pop(body.get("id", ""), None) is not None else 0
                self._send(200 if freed else 404, {"succeeded": True, "num_freed": freed})
                return
            raise EsError(400, "invalid_request", f"no handler for [{method} {url.path}] in the simulator")
        except EsError as exc:
            self._send(exc.status, exc.body())

    def do_GET(self) -> None:  # noqa: N802
        self._route("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._route("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._route("DELETE")

    def do_HEAD(self) -> None:  # noqa: N802
        self._route("HEAD")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    store: _Store
    fail_with: tuple[int, str, str] | None = None
    product_header: bool = True  # False: behave like a proxy/impostor that the client must refuse
    connections: set[socket.socket]

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        self.connections.add(conn)  # kept so `stop()` can drop keep-alive connections, as a dying node does
        return conn, addr

    def shutdown_request(self, request: Any) -> None:
        self.connections.discard(request)
        super().shutdown_request(request)


class ElasticsearchDouble:
    """Serve `docs` (each `{"_index", "_id", "_source"}` or a bare source) on a free loopback port."""

    def __init__(self, docs: list[dict[str, Any]]) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.connections = set()
        self._server.store = _Store(docs)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def requests(self) -> list[dict[str, Any]]:
        return self._server.store.requests

    @property
    def open_pits(self) -> int:
        return len(self._server.store.pits)

    def fail_next(self, status: int, type_: str, reason: str) -> None:
        """Make every following request fail with this ES error (until `recover()`)."""
        self._server.fail_with = (status, type_, reason)

    def impersonate_other_product(self) -> None:
        """Stop sending `X-Elastic-Product` (what a non-Elasticsearch server looks like to the client)."""
        self._server.product_header = False

    def recover(self) -> None:
        self._server.fail_with = None

    def start(self) -> ElasticsearchDouble:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop like a dead node: no new connections, and the open keep-alive ones are dropped."""
        self._server.shutdown()
        self._server.server_close()
        for conn in list(self._server.connections):
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()
        self._server.connections.clear()

    def __enter__(self) -> ElasticsearchDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
