"""Incident and runbook memory in Milvus.

Two collections with explicit schemas:

* `incidents`: one row per remembered incident (symptoms, labels, root cause, actions taken, outcome,
  time) so a new alert can be matched against what was seen and fixed before;
* `runbooks`: one row per runbook (alert name, component, meaning, diagnosis, mitigation, source).

The default store is a milvus-lite file (`$AIOPS_DATA_DIR/milvus.db`); `MILVUS_URI` (+ `MILVUS_TOKEN`)
points at a Milvus standalone/cluster instead. Both are reached through `pymilvus.MilvusClient`.

Indexes, chosen deliberately (see docs/memory.md and benchmarks/memory_bench.py):
HNSW (M=16, efConstruction=200, search ef=64, COSINE) on the vectors, INVERTED on the scalar fields
used in filters. In milvus-lite rows sit in an un-indexed memtable until they are flushed into a
segment, and the memtable is searched by brute force in Python (~300 ms at 10k rows). So bulk writes
end with a flush, and single `remember` calls flush every `FLUSH_EVERY` rows.

Each collection records its schema version, embedding dimension and embedder name in its
properties. Opening a collection written by another version (or another embedding model) migrates it:
the rows are read back, the collection is re-created with the current schema and the rows re-embedded.
If the old rows cannot be read, the old collection is renamed to `<name>_backup_<ts>` and a fresh one
is created; either way one WARNING line says what happened. Nothing here raises on an old collection.

Construction is cheap: neither Milvus nor the embedding model is touched until the first call.

Resilience: every public operation is one call through the "milvus" circuit breaker
(`core.resilience.guarded_sync`; searches, counts and upserts by primary key are idempotent, so they
are retried with back-off). Texts are embedded before Milvus is touched, so an embeddings outage
("embeddings" breaker, see memory.embeddings) neither opens Milvus nor charges it. `remember` never
loses an incident: when memory is down the record goes to `$AIOPS_DATA_DIR/memory-pending.jsonl`
(store.pending) and `MemoryUnavailable` says so; the next successful `remember` stores the backlog.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from core.resilience import DependencyUnavailable, guarded_sync
from core.settings import get_settings
from memory.embeddings import Embedder, EmbeddingError, get_embedder
from memory.failures import PENDING_FILE, MemoryUnavailable, dependency_of, reason
from memory.lexical import BM25Index
from memory.records import (
    IncidentMatch,
    IncidentRecord,
    RunbookDoc,
    RunbookMatch,
    incident_text,
    is_rule_entry,
    runbook_body_text,
    runbook_dense_text,
    runbook_title_text,
)
from store.pending import PendingRecords

if TYPE_CHECKING:  # pragma: no cover
    from pymilvus import MilvusClient

    from core.settings import Settings

log = logging.getLogger(__name__)

# milvus-lite serves pymilvus over an in-process gRPC server; pymilvus probes RPCs the lite adapter
# does not implement (AllocTimestamp) and falls back, but grpc logs each probe as an ERROR traceback.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")


def _quiet_client_logs() -> None:
    """Called after pymilvus is imported (its logging config would reset earlier levels)."""
    logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
    # milvus-lite has no MVCC timestamp RPC; the iterator says so (harmlessly) on every read-back
    logging.getLogger("pymilvus.client.iterator.query_iterator").setLevel(logging.ERROR)

INCIDENTS = "incidents"
RUNBOOKS = "runbooks"
SCHEMA_VERSIONS = {INCIDENTS: 3, RUNBOOKS: 2}  # incidents v3: partitioned by alert-name bucket
PROP_VERSION = "aiops.schema_version"
PROP_DIM = "aiops.embedding_dim"
PROP_EMBEDDER = "aiops.embedder"

HNSW_PARAMS = {"M": 16, "efConstruction": 200}
SEARCH_PARAMS = {"metric_type": "COSINE", "params": {"ef": 64}}
FLUSH_EVERY = 512  # milvus-lite: rows left in the memtable are searched by brute force
# Incidents live in INCIDENT_BUCKETS partitions chosen by a hash of the alert name, and a search with
# an alert name only visits that partition. Why: milvus-lite 3.x makes one pure-Python pass over
# every row in scope per search (cross-segment dedup and tombstones, ~1 us/row), whatever the
# index: ~80-120 ms at 100k rows. Visiting 1/16 of the rows keeps the usual query (same alert) fast.
# Milvus standalone honours partition_names the same way.
INCIDENT_BUCKETS = 16
RUNBOOK_CANDIDATES = 50  # dense and lexical candidates each, before the hybrid rerank
# weights of the max-normalised BM25 scores (title field, body field) added to the cosine similarity
TITLE_WEIGHT = 0.3
BODY_WEIGHT = 0.5
# subtracted from a rule-catalogue entry (a rule's description and query, no steps: `is_rule_entry`), so a
# runbook with diagnosis or mitigation steps ranks first at equal relevance. Chosen on the dev half of the
# runbooks eval with the 1,155 awesome-prometheus-alerts rules as distractors (TITLE/BODY kept): docs/evals.md.
RULE_ENTRY_PENALTY = 0.4

# VARCHAR limits (Milvus counts bytes); longer values are cut at a character boundary
_LIMITS = {
    "id": 128,
    "signature": 256,
    "alertname": 256,
    "service": 256,
    "symptoms": 8192,
    "root_cause_component": 256,
    "root_cause": 4096,
    "outcome": 16,
    "source": 512,
    "component": 256,
    "meaning": 4096,
    "diagnosis": 8192,
    "mitigation": 8192,
}




def _cut(value: str, field: str) -> str:
    limit = _LIMITS[field]
    raw = value.encode("utf-8")
    if len(raw) <= limit:
        return value
    return raw[:limit].decode("utf-8", errors="ignore")


def _quote(value: str) -> str:
    """A Milvus filter string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _outcome(recovered: bool | None) -> str:
    return "unknown" if recovered is None else ("recovered" if recovered else "failed")


def _recovered(outcome: str | None) -> bool | None:
    return {"recovered": True, "failed": False}.get(outcome or "")


def _epoch_ms(ts: datetime) -> int:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return int(ts.timestamp() * 1000)


def alert_bucket(alertname: str) -> str:
    """The incidents partition for an alert name (stable across processes and versions)."""
    return f"b{zlib.crc32(alertname.encode('utf-8')) % INCIDENT_BUCKETS:02d}"


MILVUS = "milvus"  # the breaker's name in core.resilience


class MilvusError(RuntimeError):
    """Milvus (server or lite file) failed an operation; the message is pymilvus's, on one line."""


def _milvus_fault(exc: BaseException) -> bool:
    """Whether an error inside a Milvus operation is Milvus's fault (charged to its breaker). Embedding
    failures have their own breaker; a bad parameter is this client's mistake, not an outage."""
    if isinstance(exc, EmbeddingError | DependencyUnavailable | ValueError | TypeError | KeyError):
        return False
    try:
        from pymilvus.exceptions import ParamError
    except ImportError:  # pragma: no cover
        return True
    return not isinstance(exc, ParamError)


def is_lite_uri(uri: str) -> bool:
    """A plain path (no scheme) means an embedded milvus-lite file."""
    return "://" not in uri


# --- the store -----------------------------------------------------------------------------------


class IncidentMemory:
    """Milvus-backed memory of incidents and runbooks. Cheap to construct; connects on first use."""

    def __init__(self, uri: str, token: str | None = None, embedder: Embedder | None = None,
                 pending: Path | None = None) -> None:
        self.uri = uri
        self.token = token
        self._embedder = embedder
        # incidents that could not be stored yet (memory down); default: next to a lite file, else cwd
        self.pending = PendingRecords(pending or (Path(uri).expanduser().parent / PENDING_FILE if is_lite_uri(uri)
                                                    else Path(PENDING_FILE)), IncidentRecord.model_validate)
        self._client_obj: MilvusClient | None = None
        self._lock = threading.RLock()
        self._ready: set[str] = set()
        self._unflushed = 0
        self._lexical: tuple[BM25Index, BM25Index] | None = None
        self._lexical_docs: dict[str, RunbookDoc] = {}
        self._lexical_count = -1

    @classmethod
    def from_settings(cls, settings: Settings) -> IncidentMemory:
        return cls(settings.milvus_uri, settings.MILVUS_TOKEN, get_embedder(settings),
                   pending=settings.AIOPS_DATA_DIR / PENDING_FILE)

    # -- lazy plumbing --

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = get_embedder(get_settings())
        return self._embedder

    @property
    def is_lite(self) -> bool:
        return is_lite_uri(self.uri)

    def _client(self) -> MilvusClient:
        if self._client_obj is None:
            with self._lock:
                if self._client_obj is None:
                    from pymilvus import MilvusClient

                    _quiet_client_logs()
                    if self.is_lite:
                        Path(self.uri).expanduser().parent.mkdir(parents=True, exist_ok=True)
                        self._client_obj = MilvusClient(uri=str(Path(self.uri).expanduser()))
                    else:
                        self._client_obj = MilvusClient(uri=self.uri, token=self.token or "")
        return self._client_obj

    def _milvus(self, op: Any, *, idempotent: bool = True) -> Any:
        """Run `op()` (one public operation's Milvus work) through the "milvus" breaker."""
        def attempt() -> Any:
            try:
                return op()
            except Exception as exc:
                if not _milvus_fault(exc):
                    raise
                if not self.is_lite:
                    self._drop_client()  # a server that went away: reconnect on the next attempt
                message, code = getattr(exc, "message", None), getattr(exc, "code", None)
                if isinstance(message, str) and message:  # pymilvus.MilvusException: one readable line
                    raise MilvusError(f"{message} (code {code})") from exc
                raise

        return guarded_sync(MILVUS, attempt, idempotent=idempotent, counts=_milvus_fault,
                            never_retry=(EmbeddingError, DependencyUnavailable))

    def _drop_client(self) -> None:
        with self._lock:
            client, self._client_obj = self._client_obj, None
            self._ready.clear()
        if client is not None:
            try:
                client.close()
            except Exception:  # noqa: BLE001 - it is being thrown away because it failed
                log.debug("closing a failed Milvus client", exc_info=True)

    def close(self) -> None:
        with self._lock:
            if self._client_obj is not None:
                try:
                    if self.is_lite and self._unflushed:
                        for name in self._ready:
                            self._client_obj.flush(name)
                finally:
                    self._client_obj.close()
                    self._client_obj = None
                    self._ready.clear()

    def __enter__(self) -> IncidentMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _embedder_id(self) -> str:
        emb = self.embedder
        return f"{type(emb).__name__}:{getattr(emb, 'model_name', '?')}"

    # -- schemas --

    def _schema(self, name: str, dim: int) -> Any:
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(
            auto_id=False,
            enable_dynamic_field=False,
            description=f"aiops {name} schema v{SCHEMA_VERSIONS[name]}",
        )
        if name == INCIDENTS:
            # pk = "<partition>:<id>": a row never changes partition under the same pk (milvus-lite
            # would keep showing the old copy to searches scoped to the old partition)
            schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=_LIMITS["id"] + 8)
            schema.add_field("id", DataType.VARCHAR, max_length=_LIMITS["id"])
            schema.add_field("signature", DataType.VARCHAR, max_length=_LIMITS["signature"])
            schema.add_field("alertname", DataType.VARCHAR, max_length=_LIMITS["alertname"])
            schema.add_field("service", DataType.VARCHAR, max_length=_LIMITS["service"])
            schema.add_field("symptoms", DataType.VARCHAR, max_length=_LIMITS["symptoms"])
            schema.add_field("labels", DataType.JSON)
            schema.add_field("root_cause_component", DataType.VARCHAR, max_length=_LIMITS["root_cause_component"])
            schema.add_field("root_cause", DataType.VARCHAR, max_length=_LIMITS["root_cause"])
            schema.add_field("actions", DataType.JSON)  # {"items": [...]}: a JSON field holds an object
            schema.add_field("outcome", DataType.VARCHAR, max_length=_LIMITS["outcome"])
            schema.add_field("occurred_at", DataType.INT64)  # epoch milliseconds, UTC
            schema.add_field("source", DataType.VARCHAR, max_length=_LIMITS["source"])
        else:
            schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=_LIMITS["id"])
            schema.add_field("alertname", DataType.VARCHAR, max_length=_LIMITS["alertname"])
            schema.add_field("component", DataType.VARCHAR, max_length=_LIMITS["component"])
            schema.add_field("meaning", DataType.VARCHAR, max_length=_LIMITS["meaning"])
            schema.add_field("diagnosis", DataType.VARCHAR, max_length=_LIMITS["diagnosis"])
            schema.add_field("mitigation", DataType.VARCHAR, max_length=_LIMITS["mitigation"])
            schema.add_field("source", DataType.VARCHAR, max_length=_LIMITS["source"])
        schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=dim)
        return schema

    def _index_params(self, name: str) -> Any:
        client = self._client()
        params = client.prepare_index_params()
        params.add_index("embedding", index_type="HNSW", metric_type="COSINE", params=HNSW_PARAMS)
        scalar = ("id", "signature", "alertname", "service", "outcome") if name == INCIDENTS else ("alertname",)
        for field in scalar:
            params.add_index(field, index_type="INVERTED")
        return params

    def _create(self, name: str) -> None:
        dim = self.embedder.dim
        client = self._client()
        client.create_collection(
            name,
            schema=self._schema(name, dim),
            index_params=self._index_params(name),
            properties={PROP_VERSION: str(SCHEMA_VERSIONS[name]), PROP_DIM: str(dim), PROP_EMBEDDER: self._embedder_id()},
        )
        if name == INCIDENTS:
            for i in range(INCIDENT_BUCKETS):
                client.create_partition(name, f"b{i:02d}")

    def _stored_meta(self, name: str) -> tuple[int, int | None, str]:
        desc = self._client().describe_collection(name)
        props = desc.get("properties") or {}
        try:
            version = int(props.get(PROP_VERSION, 0))
        except (TypeError, ValueError):
            version = 0
        dim = None
        for field in desc.get("fields", []):
            if field.get("name") == "embedding":
                dim = int((field.get("params") or {}).get("dim", 0)) or None
        return version, dim, str(props.get(PROP_EMBEDDER, ""))

    def _ensure(self, name: str) -> None:
        if name in self._ready:
            return
        with self._lock:
            if name in self._ready:
                return
            client = self._client()
            if not client.has_collection(name):
                self._create(name)
                log.info("created Milvus collection %s (schema v%d) at %s", name, SCHEMA_VERSIONS[name], self.uri)
            else:
                version, dim, embedder_id = self._stored_meta(name)
                want = SCHEMA_VERSIONS[name]
                if version != want or dim != self.embedder.dim or (embedder_id and embedder_id != self._embedder_id()):
                    self._migrate(name, version, dim, embedder_id)
            client.load_collection(name)
            self._ready.add(name)

    def _migrate(self, name: str, version: int, dim: int | None, embedder_id: str) -> None:
        """Re-create `name` with the current schema, carrying the old rows over (re-embedded)."""
        client = self._client()
        why = (
            f"schema v{version} -> v{SCHEMA_VERSIONS[name]}, dim {dim} -> {self.embedder.dim}, "
            f"embedder {embedder_id or '?'} -> {self._embedder_id()}"
        )
        try:
            client.load_collection(name)
            rows = self._read_all(name)
        except Exception as exc:  # noqa: BLE001 - an unreadable old collection must not stop start-up
            backup = f"{name}_backup_{int(time.time())}"
            client.rename_collection(name, backup)
            self._create(name)
            log.warning("Milvus collection %s could not be read (%s; %s): kept as %s, created an empty one",
                        name, exc, why, backup)
            return
        converted: list[BaseModel] = []
        skipped = 0
        for row in rows:
            try:
                converted.append(_row_to_incident(row) if name == INCIDENTS else _row_to_runbook(row))
            except Exception:  # noqa: BLE001 - a row too old to interpret is dropped, and counted
                skipped += 1
        client.drop_collection(name)
        self._create(name)
        if converted:
            if name == INCIDENTS:
                self._upsert_incidents([r for r in converted if isinstance(r, IncidentRecord)])
            else:
                self._upsert_runbooks([r for r in converted if isinstance(r, RunbookDoc)])
            if self.is_lite:
                client.flush(name)
        log.warning("migrated Milvus collection %s (%s): %d rows re-embedded, %d unreadable rows dropped",
                    name, why, len(converted), skipped)

    def _read_all(self, name: str) -> list[dict[str, Any]]:
        client = self._client()
        out: list[dict[str, Any]] = []
        iterator = client.query_iterator(name, batch_size=1000, filter="", output_fields=["*"])
        try:
            while True:
                batch = iterator.next()
                if not batch:
                    break
                out.extend(dict(r) for r in batch)
        finally:
            iterator.close()
        return out

    # -- writes --

    def _incident_row(self, record: IncidentRecord, vector: list[float]) -> dict[str, Any]:
        return {
            "pk": f"{alert_bucket(record.alertname)}:{_cut(record.id, 'id')}",
            "id": _cut(record.id, "id"),
            "signature": _cut(record.signature, "signature"),
            "alertname": _cut(record.alertname, "alertname"),
            "service": _cut(record.service, "service"),
            "symptoms": _cut(record.symptoms, "symptoms"),
            "labels": {str(k): str(v) for k, v in record.labels.items()},
            "root_cause_component": _cut(record.root_cause_component, "root_cause_component"),
            "root_cause": _cut(record.root_cause, "root_cause"),
            "actions": {"items": json.loads(json.dumps(record.actions, default=str)),
                        **({"resolution": record.resolution[:2000]} if record.resolution else {})},
            "outcome": _outcome(record.recovered),
            "occurred_at": _epoch_ms(record.occurred_at),
            "source": _cut(record.source, "source"),
            "embedding": vector,
        }

    def _upsert_incidents(self, records: list[IncidentRecord], batch: int = 256) -> None:
        """Upsert by id, into the partition of the record's alert name (see insert_incident_rows)."""
        records = list({r.id: r for r in records}.values())
        for start in range(0, len(records), batch):
            chunk = records[start : start + batch]
            vectors = self.embedder.embed([incident_text(r) for r in chunk])
            self.insert_incident_rows([self._incident_row(r, v) for r, v in zip(chunk, vectors, strict=True)])

    def insert_incident_rows(self, rows: list[dict[str, Any]], *, fresh: bool = False) -> None:
        """Write prepared rows (see `_incident_row`) into their alert-name partitions.

        An id already stored under another alert name (so another partition and pk) is deleted
        there first; the same pk is upserted in place. `fresh=True` skips that look-up (bulk loads of
        ids known to be new, e.g. the benchmark)."""
        client = self._client()
        if not fresh:
            ids = [r["id"] for r in rows]
            new_pks = {r["pk"] for r in rows}
            stale: list[str] = []
            for start in range(0, len(ids), 500):
                flt = "id in [" + ", ".join(_quote(i) for i in ids[start : start + 500]) + "]"
                stale += [str(h["pk"]) for h in client.query(INCIDENTS, filter=flt, output_fields=["pk"])
                          if str(h["pk"]) not in new_pks]
            if stale:
                client.delete(INCIDENTS, ids=stale)
        by_bucket: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_bucket.setdefault(alert_bucket(row["alertname"]), []).append(row)
        for bucket, part in by_bucket.items():
            client.upsert(INCIDENTS, part, partition_name=bucket)

    def _upsert_runbooks(self, docs: list[RunbookDoc], batch: int = 256) -> None:
        client = self._client()
        for start in range(0, len(docs), batch):
            chunk = docs[start : start + batch]
            vectors = self.embedder.embed([runbook_dense_text(d) for d in chunk])
            rows = [
                {
                    "id": _cut(d.id, "id"),
                    "alertname": _cut(d.alertname, "alertname"),
                    "component": _cut(d.component, "component"),
                    "meaning": _cut(d.meaning, "meaning"),
                    "diagnosis": _cut(d.diagnosis, "diagnosis"),
                    "mitigation": _cut(d.mitigation, "mitigation"),
                    "source": _cut(d.source, "source"),
                    "embedding": v,
                }
                for d, v in zip(chunk, vectors, strict=True)
            ]
            client.upsert(RUNBOOKS, rows)

    def remember(self, record: IncidentRecord) -> None:
        """Upsert one incident by id (remembering the same incident twice keeps one row).

        When memory is down the record is kept in the pending file and `MemoryUnavailable` is raised
        (nothing is lost); after a successful store, the pending backlog is stored too.
        """
        try:
            self.remember_many([record])
        except Exception as exc:
            n = self.pending.add(record)
            raise MemoryUnavailable(
                dependency_of(exc),
                f"memory unavailable ({reason(exc)}): incident {record.id} kept in {self.pending.path} "
                f"({n} pending), stored when memory is back") from exc
        self.replay_pending()

    def replay_pending(self) -> int:
        """Store the incidents that were kept while memory was down; how many were stored (0 on failure)."""
        try:
            return self.pending.replay(self.remember_many)
        except Exception as exc:  # noqa: BLE001 - they stay pending; the next remember tries again
            log.warning("memory: %d pending incident(s) not stored yet (%s)", self.pending.count(), reason(exc))
            return 0

    def remember_many(self, records: list[IncidentRecord], batch: int = 256) -> int:
        """Bulk upsert (ingest); flushes milvus-lite so the rows land in an indexed segment.

        Each batch is embedded first, then written through the "milvus" breaker (an upsert by
        primary key is idempotent, so it is retried)."""
        if not records:
            return 0
        bulk = len(records) > 1
        records = list({r.id: r for r in records}.values())
        for start in range(0, len(records), batch):
            chunk = records[start : start + batch]
            vectors = self.embedder.embed([incident_text(r) for r in chunk])
            rows = [self._incident_row(r, v) for r, v in zip(chunk, vectors, strict=True)]
            self._milvus(lambda rows=rows: self._write_incidents(rows, bulk))
        return len(records)

    def _write_incidents(self, rows: list[dict[str, Any]], bulk: bool) -> None:
        self._ensure(INCIDENTS)
        with self._lock:
            self.insert_incident_rows(rows)
            self._unflushed += len(rows)
            if self.is_lite and (bulk or self._unflushed >= FLUSH_EVERY):
                self._client().flush(INCIDENTS)
                self._unflushed = 0

    def add_runbooks(self, docs: list[RunbookDoc]) -> int:
        """Upsert runbooks by id; returns how many were written (re-adding the same ids adds no rows)."""
        if not docs:
            return 0
        unique = list({d.id: d for d in docs}.values())

        def write() -> None:
            self._ensure(RUNBOOKS)
            with self._lock:
                self._upsert_runbooks(unique)
                if self.is_lite:
                    self._client().flush(RUNBOOKS)
                self._lexical = None

        self._milvus(write)  # upserts by id: idempotent
        return len(unique)

    # -- reads --

    def similar_incidents(
        self, text: str, *, service: str | None = None, alertname: str | None = None, limit: int = 5
    ) -> list[IncidentMatch]:
        """Nearest past incidents to `text`, optionally only those of the same service / alert name."""
        clauses = []
        if service:
            clauses.append(f"service == {_quote(service)}")
        if alertname:
            clauses.append(f"alertname == {_quote(alertname)}")
        vector = self.embedder.embed([text])[0]  # before Milvus: an embeddings outage never touches it

        def search() -> Any:
            self._ensure(INCIDENTS)
            return self._client().search(
                INCIDENTS,
                data=[vector],
                anns_field="embedding",
                limit=limit,
                filter=" and ".join(clauses),
                partition_names=[alert_bucket(alertname)] if alertname else None,
                output_fields=[f for f in _INCIDENT_FIELDS],
                search_params=SEARCH_PARAMS,
            )[0]

        hits = self._milvus(search)
        return [IncidentMatch(record=_row_to_incident(_entity(h)), score=float(h["distance"])) for h in hits]

    def _lexical_index(self) -> tuple[tuple[BM25Index, BM25Index], dict[str, RunbookDoc]]:
        """BM25 over runbook titles and bodies, rebuilt when the collection's row count changes."""
        count = self._count(RUNBOOKS)
        with self._lock:
            return self._lexical_index_locked(count)

    def _lexical_index_locked(self, count: int) -> tuple[tuple[BM25Index, BM25Index], dict[str, RunbookDoc]]:
        if self._lexical is None or count != self._lexical_count:
            rows = self._read_all(RUNBOOKS)
            docs = {}
            for row in rows:
                row.pop("embedding", None)
                doc = _row_to_runbook(row)
                docs[doc.id] = doc
            self._lexical = (
                BM25Index((d.id, runbook_title_text(d)) for d in docs.values()),
                BM25Index((d.id, runbook_body_text(d)) for d in docs.values()),
            )
            self._lexical_docs = docs
            self._lexical_count = count
        return self._lexical, self._lexical_docs

    def search_runbooks(
        self, text: str, *, alertname: str | None = None, limit: int = 3, mode: str = "hybrid"
    ) -> list[RunbookMatch]:
        """Runbooks for an alert text: dense and lexical candidates, reranked by a hybrid score.

        score = cosine + TITLE_WEIGHT * BM25(title) / max + BODY_WEIGHT * BM25(body) / max, where the
        maxima are taken over the candidates, minus RULE_ENTRY_PENALTY for a rule-catalogue entry. `alertname` is a strict filter (only that alert's
        runbooks). `mode="dense"` is cosine only (the eval reports both).
        """
        vector = self.embedder.embed([text])[0]  # before Milvus: an embeddings outage never touches it
        return list(self._milvus(lambda: self._search_runbooks(vector, text, alertname, limit, mode)))

    def _search_runbooks(self, vector: list[float], text: str, alertname: str | None, limit: int,
                         mode: str) -> list[RunbookMatch]:
        self._ensure(RUNBOOKS)
        client = self._client()
        flt = f"alertname == {_quote(alertname)}" if alertname else ""
        k = max(limit, RUNBOOK_CANDIDATES) if mode == "hybrid" else limit
        hits = client.search(
            RUNBOOKS, data=[vector], anns_field="embedding", limit=k, filter=flt,
            output_fields=list(_RUNBOOK_FIELDS), search_params=SEARCH_PARAMS,
        )[0]
        dense = {str(h["id"]): float(h["distance"]) for h in hits}
        docs = {str(h["id"]): _row_to_runbook(_entity(h)) for h in hits}
        if mode != "hybrid":
            ranked = sorted(dense.items(), key=lambda kv: -kv[1])[:limit]
            return [RunbookMatch(doc=docs[i], score=s) for i, s in ranked]
        (title_index, body_index), all_docs = self._lexical_index()
        title, body = title_index.scores(text), body_index.scores(text)
        if alertname:
            keep = {i for i, d in all_docs.items() if d.alertname == alertname}
            title = {i: s for i, s in title.items() if i in keep}
            body = {i: s for i, s in body.items() if i in keep}
        lexical = {i: TITLE_WEIGHT * title.get(i, 0.0) + BODY_WEIGHT * body.get(i, 0.0) for i in title.keys() | body.keys()}
        top_lex = sorted(lexical.items(), key=lambda kv: -kv[1])[:RUNBOOK_CANDIDATES]
        missing = [i for i, _ in top_lex if i not in dense and i in all_docs]
        if missing:  # exact cosine for lexical-only candidates
            for row in client.get(RUNBOOKS, ids=missing, output_fields=["id", "embedding"]):
                dense[str(row["id"])] = float(sum(a * b for a, b in zip(vector, row["embedding"], strict=False)))
                docs[str(row["id"])] = all_docs[str(row["id"])]
        max_title = max((title.get(i, 0.0) for i in dense), default=0.0) or 1.0
        max_body = max((body.get(i, 0.0) for i in dense), default=0.0) or 1.0
        fused = {
            i: d + TITLE_WEIGHT * title.get(i, 0.0) / max_title + BODY_WEIGHT * body.get(i, 0.0) / max_body
            - (RULE_ENTRY_PENALTY if is_rule_entry(docs[i]) else 0.0)
            for i, d in dense.items()
        }
        ranked = sorted(fused.items(), key=lambda kv: -kv[1])[:limit]
        return [RunbookMatch(doc=docs[i], score=s) for i, s in ranked]

    def _count(self, name: str) -> int:
        rows = self._client().query(name, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"]) if rows else 0

    def counts(self) -> dict[str, int]:
        """Rows per collection (exact: count(*), not the segment statistics that include deletes)."""
        def count_all() -> dict[str, int]:
            out = {}
            for name in (INCIDENTS, RUNBOOKS):
                self._ensure(name)
                out[name] = self._count(name)
            return out

        return dict(self._milvus(count_all))


_INCIDENT_FIELDS = (
    "id", "signature", "alertname", "service", "symptoms", "labels", "root_cause_component",
    "root_cause", "actions", "outcome", "occurred_at", "source",
)
_RUNBOOK_FIELDS = ("id", "alertname", "component", "meaning", "diagnosis", "mitigation", "source")


def _entity(hit: Any) -> dict[str, Any]:
    entity = dict(hit.get("entity") or {})
    entity.setdefault("id", hit.get("id"))
    return entity


def _json(value: Any, default: Any) -> Any:
    if value is None:
        return default
    if isinstance(value, str | bytes):
        try:
            return json.loads(value)
        except ValueError:
            return default
    return value


def _row_to_incident(row: dict[str, Any]) -> IncidentRecord:
    """Tolerant of rows written by older schemas: missing fields get defaults."""
    actions = _json(row.get("actions"), {})
    resolution = ""
    if isinstance(actions, dict):
        resolution = str(actions.get("resolution") or "")
        actions = actions.get("items", [])
    labels = _json(row.get("labels"), {})
    occurred = row.get("occurred_at")
    if isinstance(occurred, int | float):
        occurred_at = datetime.fromtimestamp(occurred / 1000, tz=UTC)
    elif isinstance(occurred, str) and occurred:
        occurred_at = datetime.fromisoformat(occurred)
    else:
        occurred_at = datetime.fromtimestamp(0, tz=UTC)
    recovered = row.get("recovered")
    if not isinstance(recovered, bool):
        recovered = _recovered(row.get("outcome"))
    return IncidentRecord(
        id=str(row["id"]),
        signature=str(row.get("signature") or ""),
        alertname=str(row.get("alertname") or ""),
        service=str(row.get("service") or ""),
        symptoms=str(row.get("symptoms") or row.get("text") or ""),
        labels={str(k): str(v) for k, v in (labels or {}).items()} if isinstance(labels, dict) else {},
        root_cause_component=str(row.get("root_cause_component") or ""),
        root_cause=str(row.get("root_cause") or ""),
        actions=[a for a in actions if isinstance(a, dict)] if isinstance(actions, list) else [],
        recovered=recovered,
        occurred_at=occurred_at,
        source=str(row.get("source") or "aiops"),
        resolution=resolution,
    )


def _row_to_runbook(row: dict[str, Any]) -> RunbookDoc:
    return RunbookDoc(
        id=str(row["id"]),
        alertname=str(row.get("alertname") or ""),
        component=str(row.get("component") or ""),
        meaning=str(row.get("meaning") or row.get("text") or ""),
        diagnosis=str(row.get("diagnosis") or ""),
        mitigation=str(row.get("mitigation") or ""),
        source=str(row.get("source") or ""),
    )
